"""Alembic's table comparison without per-table or per-column queries, and without partitions.

Alembic (``autogenerate/compare/tables.py``) lists every live table, partitions
included, reads their columns, keys, indexes and constraints in bulk, then builds
a SQLAlchemy ``Table`` for each, and for each integer column defaulting to
``nextval(...)`` asks the server whether the sequence belongs to the column
(a SERIAL). On a schema with 40 tables of 30 partitions that is 1,500 tables
reflected to compare 300, and one query per SERIAL column.

This comparator runs first for ``("schema", "tables")`` and stops Alembic's own:

- a partition is part of its parent, not a table of its own (sovren-db's
  ``include_object`` rejects every partition, ``core/runtime.py``): partitions
  that are not declared are dropped from the live tables before anything is
  read about them, instead of being reflected and then rejected;
- the table options (access method, parents, storage parameters, tablespace)
  are read with the parents looked up per table through pg_inherits' index:
  SQLAlchemy's query aggregates all of pg_inherits (5,800 rows with 1,200
  partitions and their indexes) and, on a catalog not yet analysed (a check run
  right after a migrate), the planner repeats that aggregate for every table;
- the owned sequences of the whole database are read in one query and the
  SERIAL defaults removed from the bulk-read columns, which is what Alembic's
  ``PostgresqlImpl.autogen_column_reflect`` does one query per column;
- Alembic asks the server whether two differently written defaults are equal,
  once per column (``SELECT 'new'::character varying = 'new'``); the same two
  texts get the same answer, so each distinct question is asked once per run
  (a volatile default such as ``nextval(...)`` is unequal to itself every time);
- everything else is Alembic's own code: the same bulk read
  (``_InspectorConv.pre_cache_tables``) and the same ``_compare_tables``, which
  emits create/drop table operations, applies include_object and include_name,
  and dispatches the ``"table"`` and ``"column"`` comparators, so columns,
  types, server defaults, indexes, unique constraints, foreign keys and comments
  are compared exactly as Alembic compares them;
- a reflected CHECK constraint's dialect options (PostgreSQL reports
  ``{"dialect_options": {"not_valid": True}}`` for a NOT VALID one, and
  ``no_inherit`` for NO INHERIT) are given as the keywords ``CheckConstraint``
  takes (``postgresql_not_valid=True``): SQLAlchemy's reflection
  (``Inspector._reflect_check_constraints``, 2.1) passes each entry whole as
  ``CheckConstraint(**entry)``, so ``dialect_options=`` reached it as a keyword
  of no dialect ("Can't validate argument 'dialect_options'"), while it unpacks
  the same key for indexes and unique constraints. An option the dialect does
  not take on a CHECK constraint (``no_inherit``) is left out: the constraint
  would refuse it, and Alembic does not compare CHECK constraints.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Any

from alembic.autogenerate.compare.tables import _compare_tables
from alembic.autogenerate.compare.util import _InspectorConv
from alembic.ddl.postgresql import PostgresqlImpl
from alembic.util import DispatchPriority, PriorityDispatchResult
from sqlalchemy import CheckConstraint, Float, Numeric, text
from sqlalchemy.dialects.postgresql import BIGINT, INTEGER
from sqlalchemy.util import OrderedSet

from .table_forms import IN_SCHEMA as _IN_SCHEMA
from .table_forms import TablesInStep

_PARTITIONS = text(f"SELECT c.relname {_IN_SCHEMA} AND c.relispartition AND c.relkind IN ('r', 'p')")

# What PGDialect.get_multi_table_options reads (PostgreSQL 12 and later), the parents found per table.
_TABLE_OPTIONS = text(f"""
SELECT c.relname, c.reloptions,
       (SELECT spcname FROM pg_tablespace WHERE oid = c.reltablespace) AS tablespace,
       (SELECT amname FROM pg_am WHERE oid = c.relam
           AND amname <> current_setting('default_table_access_method')) AS access_method,
       ARRAY(SELECT p.relname FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent
              WHERE i.inhrelid = c.oid ORDER BY i.inhseqno) AS parents
 {_IN_SCHEMA} AND c.relkind IN ('r', 'p', 'f') AND c.relname = ANY(CAST(:names AS name[]))""")

# Alembic's SERIAL query (PostgresqlImpl.autogen_column_reflect) for every sequence at once; the
# sequence is named as regclass prints it, which is how nextval('...'::regclass) names it.
_OWNED_SEQUENCES = text("""
SELECT CAST(CAST(c.oid AS regclass) AS text) AS sequence, a.attname
  FROM pg_class c
  JOIN pg_depend d ON d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
  JOIN pg_class t ON t.oid = d.refobjid
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
 WHERE c.relkind = 'S'
""")
_NEXTVAL = re.compile(r"nextval\('(.+?)'::regclass\)")


def compare_tables(autogen_context, upgrade_ops, schemas: set[str | None]) -> PriorityDispatchResult:
    """Alembic's ``_autogen_for_tables`` without undeclared partitions; stops Alembic's own."""
    inspector = autogen_context.inspector
    migration_context = autogen_context.migration_context
    version_table = (migration_context.version_table_schema, migration_context.version_table)
    declared_names = [(table.schema, table.name) for table in autogen_context.table_key_to_table.values()
                      if (table.schema, table.name) != version_table]
    in_step = TablesInStep(autogen_context, declared_names)
    conn_table_names: set[tuple[str | None, str]] = set()
    for schema_name in schemas:
        tablenames, available = _live_tables(autogen_context, schema_name, version_table, in_step)
        skipped = in_step.skip(schema_name, tablenames)
        tablenames = [t for t in tablenames if t not in skipped]
        conn_table_names.update((schema_name, t) for t in tablenames)
        if tablenames:
            _read_in_bulk(autogen_context, schema_name, tablenames, available)
    _drop_serial_defaults(autogen_context)
    # Alembic's order (by foreign key dependency) for the declared tables it compares, sorted only when there
    # are some: sorting all 300 cost a check that skips every one 2.5 ms (bench/doctor.py).
    remaining = set(declared_names) - in_step.skipped
    metadata_table_names = OrderedSet([(table.schema, table.name) for table in autogen_context.sorted_tables
                                       if (table.schema, table.name) in remaining] if remaining else [])
    before = len(upgrade_ops.ops)
    with _server_default_answers_remembered(migration_context.impl):
        _compare_tables(conn_table_names, metadata_table_names, inspector, upgrade_ops, autogen_context)
    in_step.remember(conn_table_names & set(metadata_table_names), upgrade_ops.ops[before:])
    return PriorityDispatchResult.STOP


def _live_tables(autogen_context, schema_name: str | None, version_table,
                 in_step: TablesInStep) -> tuple[list[str], set[str]]:
    """The live tables to compare (name filters applied, undeclared partitions out), and all tables."""
    listed = in_step.tables(schema_name)
    if listed is None:
        available = set(autogen_context.inspector.get_table_names(schema=schema_name))
        partitions = undeclared_partitions(autogen_context, schema_name)
    else:
        available, partitions = listed[0], listed[1] - _declared_names(autogen_context, schema_name)
    tables = available - {version_table[1]} if schema_name == version_table[0] else available
    # partitions out first: the name filters (Alembic's include_name hooks) then run on 300 names, not 1,500
    candidates = [t for t in tables if t not in partitions]
    return [t for t in candidates if autogen_context.run_name_filters(t, "table", {"schema_name": schema_name})], \
        available


def _read_in_bulk(autogen_context, schema_name: str | None, tablenames: list[str], available: set[str]) -> None:
    """Fill the inspector's cache as Alembic's pre_cache_tables does, table options read our way."""
    inspector = autogen_context.inspector
    if "alembic_table_options" not in inspector.info_cache and autogen_context.dialect.server_version_info >= (12,):
        inspector.info_cache["alembic_table_options"] = table_options(
            autogen_context.connection, schema_name, tablenames)
    # ``available`` keeps the partitions: with them, reading 300 of 1,500 tables filters by name.
    _InspectorConv(inspector).pre_cache_tables(schema_name, tablenames, available)
    _check_options_as_keywords(autogen_context)


def _check_options_as_keywords(autogen_context) -> None:
    """The bulk-read CHECK constraints' ``dialect_options`` as ``postgresql_<option>`` keys (module docstring)."""
    checks = autogen_context.inspector.info_cache.get("alembic_check_constraints")
    if not isinstance(checks, dict):
        return
    dialect = autogen_context.dialect
    taken = dict(getattr(dialect, "construct_arguments", None) or ()).get(CheckConstraint, {})
    for table in checks.values():
        for check in table or ():
            options = check.pop("dialect_options", None) or {}
            check.update({f"{dialect.name}_{key}": value for key, value in options.items() if key in taken})


def table_options(connection, schema_name: str | None, names: list[str]) -> dict[tuple, dict[str, Any]]:
    """Inspector.get_multi_table_options(schema_name, filter_names=names) for PostgreSQL 12 and later."""
    found = {}
    for row in connection.execute(_TABLE_OPTIONS, {"schema": schema_name, "names": list(names)}):
        options: dict[str, Any] = {}
        if row.access_method is not None:
            options["postgresql_using"] = row.access_method
        if row.parents:
            options["postgresql_inherits"] = tuple(row.parents)
        if row.reloptions:
            options["postgresql_with"] = dict(option.split("=", 1) for option in row.reloptions)
        if row.tablespace is not None:
            options["postgresql_tablespace"] = row.tablespace
        found[(schema_name, row.relname)] = options
    return found


def undeclared_partitions(autogen_context, schema_name: str | None) -> set[str]:
    """Names of the partitions in ``schema_name`` that the metadata does not declare as tables."""
    found = autogen_context.connection.execute(_PARTITIONS, {"schema": schema_name}).scalars()
    return set(found) - _declared_names(autogen_context, schema_name)


def _declared_names(autogen_context, schema_name: str | None) -> set[str]:
    default = autogen_context.dialect.default_schema_name
    return {t.name for t in autogen_context.sorted_tables if (t.schema if t.schema != default else None) == schema_name}


def _drop_serial_defaults(autogen_context) -> None:
    """Remove the defaults of SERIAL columns from the bulk-read columns, as Alembic's hook would."""
    impl = autogen_context.migration_context.impl
    if type(impl).autogen_column_reflect is not PostgresqlImpl.autogen_column_reflect:
        return  # a dialect impl of its own: leave its hook to do its own work
    columns = autogen_context.inspector.info_cache.get("alembic_columns")
    if not isinstance(columns, dict):
        return
    candidates = [(column, match.group(1)) for table in columns.values() for column in table or ()
                  if (match := _serial_default(column))]
    if not candidates:
        return
    owners: dict[str, str] = {}
    for row in autogen_context.connection.execute(_OWNED_SEQUENCES):
        owners.setdefault(row.sequence, row.attname)
    for column, sequence in candidates:
        if owners.get(sequence) == column["name"]:
            del column["default"]


def _serial_default(column: dict[str, Any]) -> re.Match | None:
    if not column.get("default") or not isinstance(column["type"], (INTEGER, BIGINT)):
        return None
    return _NEXTVAL.match(column["default"])


@contextmanager
def _server_default_answers_remembered(impl):
    """While tables are compared, ``impl.compare_server_default`` answers a question it was asked before."""
    if (type(impl).compare_server_default is not PostgresqlImpl.compare_server_default
            or "compare_server_default" in vars(impl)):
        yield  # a dialect impl of its own, or one patched by someone else: its answers are its own
        return
    ask, answers = impl.compare_server_default, {}

    def compare(inspector_column, metadata_column, rendered_metadata_default, rendered_inspector_default):
        # Everything PostgresqlImpl.compare_server_default reads, so that equal keys get equal answers.
        default = metadata_column.server_default
        key = (rendered_inspector_default, rendered_metadata_default,
               None if default is None else isinstance(default.arg, str),
               isinstance(inspector_column.type, (Numeric, Float)),
               metadata_column.primary_key and metadata_column is metadata_column.table._autoincrement_column)
        if key not in answers:
            answers[key] = ask(inspector_column, metadata_column, rendered_metadata_default, rendered_inspector_default)
        return answers[key]

    impl.compare_server_default = compare
    try:
        yield
    finally:
        del impl.compare_server_default


def setup(plugin) -> None:
    plugin.add_autogenerate_comparator(compare_tables, "schema", "tables", qualifier="postgresql",
                                       priority=DispatchPriority.FIRST)
