"""Type changes and renames of a live column, online: expand now, contract in a later revision.

``ALTER COLUMN ... TYPE`` rewrites the table under ACCESS EXCLUSIVE; ``RENAME COLUMN`` breaks every
running client at once. The path pgroll made known instead:

* ``op.expand_column(table, column, type_=..., new_name=..., version="v2")``: for a type change a
  new column ``_new_<column>`` is added, a trigger keeps both in step in both directions (a write
  of either computes the other: ``using`` from the old value, ``back`` from the new one), and the
  existing rows are backfilled in throttled keyset batches (:mod:`.backfill`, resumable after a
  kill). Old clients keep using the table; new clients set ``search_path`` to ``sovren_<version>``
  where a view of the same name shows the new version (the new column under its final name, the old
  one hidden). A rename alone is only that view: no copy is needed.
* ``op.contract_column(table, column, new_name=..., version="v2")``, once every client is on the
  new version: drops the view, then in one brief lock (taken by the lock-wait guard: never queued in
  front of the workload) drops the trigger and the old column and gives the new one its final name.
  A NOT NULL old column makes the new one NOT NULL through a check validated beforehand without
  blocking writes.

``using`` and ``back`` are SQL expressions over the column's bare name (``using`` over the old
column, ``back`` over the new one under its final name), e.g. ``using="amount_cents::numeric / 100"``.
Indexes, unique and check constraints on the old column are copied to the new one during the expand
and take the old names back at the contract (:mod:`.expand_deps`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from alembic.autogenerate import render, renderers
from alembic.operations import MigrateOperation, Operations, ops
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.types import TypeEngine

from ..core.errors import MigrationFailed
from .backfill import BackfillOp, run_backfill
from .expand_deps import Copies, _q, swap_sql


def _type_sql(type_: TypeEngine | str) -> str:
    return type_ if isinstance(type_, str) else type_.compile(dialect=postgresql.dialect())


class _ColumnChange(MigrateOperation):
    def __init__(self, table_name: str, column_name: str, *, new_name: str | None = None,
                 type_: TypeEngine | str | None = None, version: str = "next", schema: str | None = None):
        if new_name is None and type_ is None:
            raise MigrationFailed(f"{type(self).op_name} on {table_name}.{column_name} needs type_= or new_name=.")
        if version == "db":
            raise MigrationFailed(f"{type(self).op_name} on {table_name}.{column_name}: version 'db' would name "
                                  "sovren-db's own schema (sovren_db); choose another.")
        self.table_name, self.column_name, self.new_name, self.type_ = table_name, column_name, new_name, type_
        self.version, self.schema = version, schema

    @property
    def table(self) -> str:
        return f"{_q(self.schema)}.{_q(self.table_name)}" if self.schema else _q(self.table_name)

    @property
    def final(self) -> str:
        return self.new_name or self.column_name

    @property
    def shadow(self) -> str:
        """The new column while both exist (63 bytes at most, the identifier limit)."""
        return f"_new_{self.column_name}"[:63]

    @property
    def view_schema(self) -> str:
        return f"sovren_{self.version}"

    @property
    def sync_name(self) -> str:
        return f"sovren_sync_{self.table_name}_{self.column_name}"[:63]

    @classmethod
    def invoke_op(cls, operations: Operations, table_name: str, column_name: str, **kw: Any) -> None:
        """``op.<op_name>(table, column, ...)``: see the module's docstring."""
        return operations.invoke(cls(table_name, column_name, **kw))

    def change(self) -> str:
        parts = [f"type {_type_sql(self.type_)}"] if self.type_ is not None else []
        return ", ".join(parts + ([f"renamed {self.new_name}"] if self.new_name else []))


@Operations.register_operation("expand_column", "invoke_op")
class ExpandColumnOp(_ColumnChange):
    op_name = "expand_column"

    def __init__(self, table_name: str, column_name: str, *, using: str | None = None, back: str | None = None,
                 batch_size: int = 1000, throttle: dict | None = None, **kw: Any):
        super().__init__(table_name, column_name, **kw)
        self.using, self.back, self.batch_size, self.throttle = using, back, batch_size, throttle or {}

    def describe(self) -> str:
        return f"expand {self.table_name}.{self.column_name} ({self.change()}) for version {self.version}"

    def using_sql(self) -> str:
        return self.using or f"{_q(self.column_name)}::{_type_sql(self.type_)}"

    def back_sql(self, old_type: str) -> str:
        return self.back or f"{_q(self.final)}::{old_type}"

    def reverse(self) -> "UndoExpandColumnOp":
        return UndoExpandColumnOp(self.table_name, self.column_name, new_name=self.new_name, type_=self.type_,
                                  version=self.version, schema=self.schema)


@Operations.register_operation("undo_expand_column", "invoke_op")
class UndoExpandColumnOp(_ColumnChange):
    """The downgrade of an expand: the view, the trigger and the new column go; the old column stays."""

    op_name = "undo_expand_column"


    def describe(self) -> str:
        return f"undo the expand of {self.table_name}.{self.column_name} for version {self.version}"


@Operations.register_operation("contract_column", "invoke_op")
class ContractColumnOp(_ColumnChange):
    op_name = "contract_column"


    def describe(self) -> str:
        return f"contract {self.table_name}.{self.column_name} ({self.change()}): old version dropped"


def column_facts(connection: Any, op: _ColumnChange, column: str) -> tuple[str, bool] | None:
    """(type, NOT NULL) of a column of the op's table, or None when it is not there."""
    row = connection.execute(text(
        "SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
        "WHERE attrelid = to_regclass(:t) AND attname = :c AND attnum > 0 AND NOT attisdropped"),
        {"t": op.table, "c": column}).first()
    return (row[0], row[1]) if row else None


# -- what each step runs -----------------------------------------------------------------------

_COLUMNS = """
SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(:t) AND attnum > 0 AND NOT attisdropped
ORDER BY attnum
"""
# Privileges on the view follow those on the table, so every role that reads or writes it today can
# use the new version; security_invoker keeps row-level security applied to the caller.
_GRANTS = """
SELECT r.rolname, string_agg(DISTINCT a.privilege_type, ', ')
FROM pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) a JOIN pg_roles r ON r.oid = a.grantee
WHERE c.oid = to_regclass(:t) AND a.grantee <> c.relowner
  AND a.privilege_type IN ('SELECT', 'INSERT', 'UPDATE', 'DELETE')
GROUP BY r.rolname ORDER BY 1
"""


def _computed(expression: str, source: str, name: str) -> str:
    """``expression`` over the bare column ``name``, evaluated on ``source`` inside the trigger."""
    return f"(SELECT {expression} FROM (SELECT {source} AS {_q(name)}) AS s)"


def sync_function_sql(op: ExpandColumnOp, old_type: str) -> str:
    """The trigger function keeping the old column and the new one in step, whichever a client writes."""
    old, new = f"NEW.{_q(op.column_name)}", f"NEW.{_q(op.shadow)}"
    forward = _computed(op.using_sql(), old, op.column_name)
    backward = _computed(op.back_sql(old_type), new, op.final)
    return (f"CREATE OR REPLACE FUNCTION {_function(op)}() RETURNS trigger LANGUAGE plpgsql AS $sovren$\n"
            f"BEGIN\n"
            f"  IF TG_OP = 'INSERT' AND {new} IS NULL THEN {new} := {forward};\n"
            f"  ELSIF TG_OP = 'INSERT' THEN\n"
            f"    IF {forward} IS DISTINCT FROM {new} THEN {old} := {backward}; END IF;\n"
            f"  ELSIF {old} IS DISTINCT FROM OLD.{_q(op.column_name)} THEN {new} := {forward};\n"
            f"  ELSIF {new} IS DISTINCT FROM OLD.{_q(op.shadow)} AND {forward} IS DISTINCT FROM {new} THEN\n"
            f"    {old} := {backward};\n"
            f"  END IF;\n"
            f"  RETURN NEW;\n"
            f"END $sovren$")


def _function(op: _ColumnChange) -> str:
    return f"{_q(op.schema)}.{_q(op.sync_name)}" if op.schema else _q(op.sync_name)


class _ExpandBackfill(BackfillOp):
    @property
    def name(self) -> str:
        """Named after the column, not the expression: the undo and the contract forget it by name."""
        return f"{self.table}:expand:{self.column}"


def _backfill_op(op: _ColumnChange, using: str = "NULL", **kw: Any) -> BackfillOp:
    where = f"{_q(op.shadow)} IS NULL AND {_q(op.column_name)} IS NOT NULL"
    fill = _ExpandBackfill(op.table_name, f"{_q(op.shadow)} = {using}", where=where, schema=op.schema, **kw)
    fill.column = op.column_name
    return fill


def _view(connection: Any, op: _ColumnChange, *, again: bool = False) -> str:
    names = [r[0] for r in connection.execute(text(_COLUMNS), {"t": op.table}) if r[0] != op.shadow]
    view = f"{_q(op.view_schema)}.{_q(op.table_name)}"
    shown = [r[0] for r in connection.execute(text(_COLUMNS), {"t": view})]
    if shown and not again and shown != [op.final if n == op.column_name else n for n in names]:
        raise MigrationFailed(f"{op.op_name} of {op.table_name}.{op.column_name}: version {op.version} already "
                              f"shows {op.table_name} differently (another column's expand); expand one column "
                              "of a table per version.")
    source = op.shadow if op.type_ is not None else op.column_name
    select = ", ".join(f"{_q(source)} AS {_q(op.final)}" if n == op.column_name else _q(n) for n in names)
    return (f"CREATE OR REPLACE VIEW {_q(op.view_schema)}.{_q(op.table_name)} WITH (security_invoker = true) "
            f"AS SELECT {select} FROM {op.table}")


def _create_view(operations: Any, op: _ColumnChange, *, again: bool = False) -> None:
    """``operations``: anything with ``execute(sql)`` and ``get_bind()``. The view's comment is the
    recipe that builds it again when a later revision adds or drops a column (:func:`keep_views_in_step`)."""
    connection = operations.get_bind()
    operations.execute(f"CREATE SCHEMA IF NOT EXISTS {_q(op.view_schema)}")
    operations.execute(_view(connection, op, again=again))
    recipe = json.dumps({RECIPE: op.column_name, "table": op.table_name, "schema": op.schema,
                         "new_name": op.new_name, "typed": op.type_ is not None, "version": op.version})
    operations.execute(f"COMMENT ON VIEW {_q(op.view_schema)}.{_q(op.table_name)} IS {_literal(recipe)}")
    for role, privileges in connection.execute(text(_GRANTS), {"t": op.table}).all():
        operations.execute(f"GRANT USAGE ON SCHEMA {_q(op.view_schema)} TO {_q(role)}")
        operations.execute(f"GRANT {privileges} ON {_q(op.view_schema)}.{_q(op.table_name)} TO {_q(role)}")


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# -- per-version views follow the table's later columns ----------------------------------------

RECIPE = "sovren_expand"
_VIEWS = """
SELECT d.description FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace
JOIN pg_description d ON d.objoid = v.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
WHERE v.relkind = 'v' AND v.relname = :t AND n.nspname LIKE 'sovren\\_%' AND d.description LIKE '{"sovren_expand"%'
"""


def version_views(connection: Any, table_name: str, schema: str | None) -> list[_ColumnChange]:
    """The expands in progress whose per-version view shows ``table_name``, rebuilt from their recipes."""
    recipes = [json.loads(r[0]) for r in connection.execute(text(_VIEWS), {"t": table_name})]
    return [ExpandColumnOp(r["table"], r[RECIPE], new_name=r["new_name"], type_="-" if r["typed"] else None,
                           version=r["version"], schema=r["schema"])
            for r in recipes if r["schema"] == schema]


class _ImplSteps:
    """What :func:`_create_view` needs, from an Alembic impl."""

    def __init__(self, impl: Any):
        self.impl = impl

    def execute(self, sql: str) -> None:
        self.impl.execute(text(sql))

    def get_bind(self) -> Any:
        return self.impl.connection


def keep_views_in_step(impl: Any) -> None:
    """A column a later revision adds to (or drops from) a table with an expand in progress shows in
    (or leaves) its per-version views in the same transaction: the next version's clients, which
    read through the view until the contract, see the column they were written for, and the drop is
    not refused by Postgres for the view depending on it. Installed on the impl by ``env.py``."""
    for verb in ("add_column", "drop_column"):
        setattr(impl, verb, _upkeeping(impl, getattr(impl, verb)))


def _upkeeping(impl: Any, original: Any) -> Any:
    def run(table_name: str, column: Any, schema: str | None = None, **kw: Any) -> Any:
        views = [] if impl.as_sql else version_views(impl.connection, table_name, schema)
        for view in views:
            impl.execute(text(f"DROP VIEW {_q(view.view_schema)}.{_q(view.table_name)}"))
        done = original(table_name, column, schema=schema, **kw)
        for view in views:
            _create_view(_ImplSteps(impl), view, again=True)
        return done

    return run


def _drop_view(operations: Operations, op: _ColumnChange) -> None:
    operations.execute(f"DROP VIEW IF EXISTS {_q(op.view_schema)}.{_q(op.table_name)}")
    empty = operations.get_bind().execute(text(
        "SELECT NOT EXISTS (SELECT 1 FROM pg_class WHERE relnamespace = to_regnamespace(:s))"),
        {"s": op.view_schema}).scalar()
    if empty:
        operations.execute(f"DROP SCHEMA IF EXISTS {_q(op.view_schema)}")


def _facts_or_fail(operations: Operations, op: _ColumnChange) -> tuple[str, bool]:
    facts = column_facts(operations.get_bind(), op, op.column_name)
    if facts is None:
        raise MigrationFailed(f"{op.op_name}: table {op.table_name} has no column {op.column_name}.")
    return facts


@Operations.implementation_for(ExpandColumnOp)
def _expand(operations: Operations, op: ExpandColumnOp) -> None:
    if operations.migration_context.as_sql:
        operations.execute(f"-- {op.describe()} (online only: columns, trigger and view read from the catalog)")
        return
    old_type, _ = _facts_or_fail(operations, op)
    copies = Copies.read(operations.get_bind(), op) if op.type_ is not None else None
    if copies is not None:
        operations.execute(f"ALTER TABLE {op.table} ADD COLUMN IF NOT EXISTS {_q(op.shadow)} {_type_sql(op.type_)}")
        operations.execute(sync_function_sql(op, old_type))
        operations.execute(f"CREATE OR REPLACE TRIGGER {_q(op.sync_name)} BEFORE INSERT OR UPDATE ON {op.table} "
                           f"FOR EACH ROW EXECUTE FUNCTION {_function(op)}()")
        copies.add_checks(operations, op)
    _create_view(operations, op)
    if copies is not None:  # committed first: from here on every write keeps both columns in step
        with operations.get_context().autocommit_block():
            run_backfill(operations.get_bind(), _backfill_op(op, op.using_sql(), batch_size=op.batch_size,
                                                              **op.throttle))
            copies.build(operations, op)  # after the backfill: it did not have to maintain them


@Operations.implementation_for(UndoExpandColumnOp)
def _undo_expand(operations: Operations, op: UndoExpandColumnOp) -> None:
    _drop_view(operations, op)
    operations.execute(f"DROP TRIGGER IF EXISTS {_q(op.sync_name)} ON {op.table}")
    operations.execute(f"DROP FUNCTION IF EXISTS {_function(op)}()")
    operations.execute(f"ALTER TABLE {op.table} DROP COLUMN IF EXISTS {_q(op.shadow)}")
    _forget_backfill(operations, op)


def _forget_backfill(operations: Operations, op: _ColumnChange) -> None:
    """A later expand of the same column backfills again instead of finding this one done."""
    if operations.migration_context.as_sql:
        return
    name = _backfill_op(op).name
    operations.execute(f"DELETE FROM sovren_db.backfill_progress WHERE name = '{name}' "
                       f"AND to_regclass('sovren_db.backfill_progress') IS NOT NULL")


@Operations.implementation_for(ContractColumnOp)
def _contract(operations: Operations, op: ContractColumnOp) -> None:
    if operations.migration_context.as_sql:
        operations.execute(f"-- {op.describe()} (online only)")
        return
    from .safe import AddNotNullCheckOp, DropNotNullCheckOp, ValidateConstraintOp, not_null_check_name

    if op.type_ is None:
        _drop_view(operations, op)
        if column_facts(operations.get_bind(), op, op.column_name) is not None:
            operations.execute(f"ALTER TABLE {op.table} RENAME COLUMN {_q(op.column_name)} TO {_q(op.final)}")
        return
    _, not_null = _facts_or_fail(operations, op)
    if not_null:  # validated before the swap, in its own transactions: SET NOT NULL then skips its scan
        operations.invoke(AddNotNullCheckOp(op.table_name, op.shadow, schema=op.schema))
        with operations.get_context().autocommit_block():
            name = not_null_check_name(op.table_name, op.shadow)
            operations.invoke(ValidateConstraintOp(op.table_name, name, schema=op.schema))
    _drop_view(operations, op)
    swaps = swap_sql(operations.get_bind(), op)  # read while the originals exist: the drop takes them along
    operations.execute(f"DROP TRIGGER IF EXISTS {_q(op.sync_name)} ON {op.table}")
    set_not_null = f", ALTER COLUMN {_q(op.shadow)} SET NOT NULL" if not_null else ""
    operations.execute(f"ALTER TABLE {op.table} DROP COLUMN {_q(op.column_name)}{set_not_null}")
    operations.execute(f"ALTER TABLE {op.table} RENAME COLUMN {_q(op.shadow)} TO {_q(op.final)}")
    for statement in swaps:
        operations.execute(statement)
    if not_null:
        operations.invoke(DropNotNullCheckOp(op.table_name, op.shadow, schema=op.schema))
    operations.execute(f"DROP FUNCTION IF EXISTS {_function(op)}()")
    _forget_backfill(operations, op)


# -- what autogenerate writes for a type change on a live table --------------------------------

@renderers.dispatch_for(ExpandColumnOp)
@renderers.dispatch_for(ContractColumnOp)
@renderers.dispatch_for(UndoExpandColumnOp)
def _render(autogen_context: Any, op: _ColumnChange) -> str:
    args = [repr(op.table_name), repr(op.column_name)]
    args += [f"type_={render._repr_type(op.type_, autogen_context)}"] if op.type_ is not None else []
    args += [f"new_name={op.new_name!r}"] if op.new_name else []
    args += [f"version={op.version!r}"] + ([f"schema={op.schema!r}"] if op.schema else [])
    return f"op.{op.op_name}({', '.join(args)})"


@dataclass(frozen=True)
class Proposal:
    """What autogenerate knows when it rewrites a type change: the new revision's id (the version its
    clients will name) and the columns already expanded on the live database (their contract is due)."""

    version: str
    expanded: dict[tuple[str, str], str] = field(default_factory=dict)  # (table, column) -> its version

    @classmethod
    def read(cls, context: Any, version: str) -> "Proposal":
        connection = getattr(context, "bind", None) if context is not None else None
        if connection is None:
            return cls(version)
        views = dict(connection.execute(text(
            "SELECT v.relname, substr(n.nspname, 8) FROM pg_class v JOIN pg_namespace n ON n.oid = v.relnamespace "
            "WHERE v.relkind = 'v' AND n.nspname LIKE 'sovren\\_%'")).all())
        return cls(version, {(table, shadow[5:]): views.get(table, version)
                             for table, shadow in expanded_columns(connection)})


def expanded_columns(connection: Any) -> set[tuple[str, str]]:
    """(table, ``_new_<column>``) of every expand in progress: the shadow column and its sync trigger."""
    return {(r[0], r[1]) for r in connection.execute(text(
        "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_trigger t ON t.tgrelid = c.oid AND t.tgname = left('sovren_sync_' || c.relname || '_' "
        "|| substr(a.attname, 6), 63) "
        "WHERE a.attname LIKE '\\_new\\_%' AND a.attnum > 0 AND NOT a.attisdropped AND c.relkind = 'r'"))}


def type_change_form(op: MigrateOperation, proposal: Proposal | None, downgrade: bool) -> MigrateOperation | None:
    """A type change alone of a live column becomes an expand (or, once expanded, its contract)."""
    if proposal is None or not isinstance(op, ops.AlterColumnOp) or not _type_only(op):
        return None
    from .safe import SafeStepsOp

    expanded = proposal.expanded.get((op.table_name, op.column_name))
    kw = {"version": proposal.version, "schema": op.schema}
    if downgrade:
        if expanded:  # the contract's downgrade stays the plain ALTER TYPE: the old column is gone
            return None
        step = UndoExpandColumnOp(op.table_name, op.column_name, type_=op.existing_type, **kw)
        return SafeStepsOp(op, f"{op.table_name}.{op.column_name}: the expand undone", [step])
    if expanded:
        why = (f"{op.table_name}.{op.column_name} was expanded: once every client uses version {expanded}, the "
               "contract swaps the columns in one brief lock")
        kw["version"] = expanded
        return SafeStepsOp(op, why, [ContractColumnOp(op.table_name, op.column_name, type_=op.modify_type, **kw)])
    why = (f"{op.table_name} holds data: {op.column_name} changes type by expand/contract (no table rewrite); "
           f"new clients use search_path sovren_{proposal.version}; write the contract in a later revision")
    return SafeStepsOp(op, why, [ExpandColumnOp(op.table_name, op.column_name, type_=op.modify_type, **kw)])


def _type_only(op: ops.AlterColumnOp) -> bool:
    return (op.modify_type is not None and op.modify_nullable is None and op.modify_server_default is False
            and op.modify_comment is False and op.modify_name is None)


def rename_hints(changes: list[MigrateOperation], proposal: Proposal | None) -> dict[int, str]:
    """Autogenerate sees a rename as a drop and an add: when a live table's changes are exactly one of
    each, of the same type, the add carries a comment proposing the rename by expand/contract
    (a comment, not a rewrite: the author knows whether it is one)."""
    adds = [o for o in changes if isinstance(o, ops.AddColumnOp)]
    drops = [o for o in changes if isinstance(o, ops.DropColumnOp)]
    if proposal is None or len(adds) != 1 or len(drops) != 1 or drops[0]._reverse is None:
        return {}
    add, old = adds[0], drops[0].to_column()
    if _type_sql(add.column.type) != _type_sql(old.type):
        return {}
    call = (f"op.expand_column({add.table_name!r}, {old.name!r}, new_name={add.column.name!r}, "
            f"version={proposal.version!r})")
    return {id(add): f"if {add.column.name} is {old.name} renamed, write {call} instead of this add and the "
                     f"drop below, then op.contract_column in a later revision"}


def with_hint(op: MigrateOperation, hint: str | None) -> MigrateOperation:
    from .safe import SafeStepsOp

    if hint is None:
        return op
    if isinstance(op, SafeStepsOp):
        op.why = f"{hint}; {op.why}"
        return op
    return SafeStepsOp(op, hint, [op])
