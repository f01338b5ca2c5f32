"""Skip Alembic's per-table comparison for tables it already found in step with the same declaration.

Alembic's detailed comparison of one table (reflection into a SQLAlchemy
``Table``, then each column, type, server default, index, unique and foreign
key compared in Python) is a function of two inputs: the declared ``Table``
and what reflection reads of the live one. This module names both inputs by
a digest:

- the *live form*: one query over pg_class, pg_attribute, pg_attrdef,
  pg_constraint, pg_index, pg_depend, pg_sequence, pg_type, pg_enum and
  pg_description gives, per table, an md5 of everything SQLAlchemy's
  reflection reads of it, as the server prints it (``format_type``,
  ``pg_get_expr``, ``pg_get_constraintdef``, ``pg_get_indexdef``), plus what
  sovren-db's ``include_object`` looks at (a foreign key to a partition; an
  expand's ``_new_`` column makes the table's form unusable here);
- the *declared form*: a digest of the ``Table`` as Alembic reads it (columns
  with type, nullability, server default, identity, comment; constraints;
  indexes; options), compiled with the PostgreSQL dialect.

When Alembic's comparison of a table gave no operation, the pair (declared
form, live form) is remembered as in step. Later, a table whose pair was seen
in step is left out of Alembic's comparison: with the same two inputs Alembic
gives the same answer. Every other table (first seen, changed on either side,
drifted) goes through Alembic's comparison as before, so operations, messages
and exit codes stay Alembic's. Remembering Alembic's verdict rather than
normalising the declarations in Python (or applying them to a scratch schema,
Atlas's dev database) keeps the answer exact where Python and the server
disagree on how to print a default or an expression, and needs no right
beyond reading the catalogs, so it works on a hot standby and as the
application role. What it costs: the first comparison of each declaration is
Alembic's own; the pairs are kept per process (``VERIFIED``), which is where
check runs again and again (``metrics serve``, doctor's schema collection).
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections.abc import Iterable
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import alembic
import sqlalchemy
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

_exact: ContextVar[bool] = ContextVar("sovren_exact_compare", default=False)

# The tables of one schema as SQLAlchemy's reflection scopes them (ObjectScope.DEFAULT).
IN_SCHEMA = """
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relpersistence <> 't'
   AND CASE WHEN CAST(:schema AS text) IS NULL THEN pg_table_is_visible(c.oid) AND n.nspname <> 'pg_catalog'
            ELSE n.nspname = :schema END"""

# Per table: an md5 of what reflection reads of it (the printed forms where a name could change
# underneath: defaults, expressions, types of the database's own, referenced tables and columns).
# Each part is one aggregate per table; per-column subqueries cost twice as much.
LIVE_FORMS = text(f"""
SELECT c.relname, c.relispartition,
       CASE WHEN NOT c.relispartition THEN md5(concat_ws(E'\\n', c.relkind, c.reloptions::text, c.reltablespace, c.relam,
         CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
         (SELECT string_agg(i.inhparent::regclass::text, ',' ORDER BY i.inhseqno)
            FROM pg_inherits i WHERE i.inhrelid = c.oid),
         (SELECT string_agg((a.attnum, a.attname, CASE WHEN a.atttypid < 16384 THEN a.atttypid END, a.atttypmod, a.attnotnull, a.attidentity, a.attgenerated,
                             a.attcollation, a.attndims)::text, E'\\n' ORDER BY a.attnum)
            FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
         (SELECT string_agg(d.adnum || ' ' || pg_get_expr(d.adbin, d.adrelid), E'\\n' ORDER BY d.adnum)
            FROM pg_attrdef d WHERE d.adrelid = c.oid),
         (SELECT string_agg(concat_ws(',', a.attnum, format_type(a.atttypid, a.atttypmod), t.typtype, t.typnotnull,
                   t.typdefault, format_type(t.typbasetype, t.typtypmod),
                   (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e
                     WHERE e.enumtypid IN (t.oid, t.typelem, t.typbasetype)),
                   (SELECT string_agg(pg_get_constraintdef(k.oid), ',' ORDER BY k.conname)
                      FROM pg_constraint k WHERE k.contypid = t.oid)), E'\\n' ORDER BY a.attnum)
            FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid >= 16384),
         (SELECT string_agg(ds.objsubid || ':' || ds.description, E'\\n' ORDER BY ds.objsubid)
            FROM pg_description ds WHERE ds.objoid = c.oid AND ds.classoid = 'pg_class'::regclass),
         (SELECT string_agg((SELECT concat_ws(',', p.refobjsubid, p.objid::regclass::text, p.deptype, q.seqstart,
                                             q.seqincrement, q.seqmax, q.seqmin, q.seqcache, q.seqcycle, q.seqtypid)
                               FROM pg_sequence q WHERE q.seqrelid = p.objid), ';' ORDER BY p.refobjsubid, p.objid)
            FROM pg_depend p
           WHERE p.refclassid = 'pg_class'::regclass AND p.refobjid = c.oid AND p.classid = 'pg_class'::regclass
             AND p.deptype IN ('a', 'i')),
         (SELECT string_agg(concat_ws(' ', k.conname, k.contype, k.conkey, k.confkey, k.confrelid::regclass::text,
                   k.confupdtype, k.confdeltype, k.confmatchtype, k.condeferrable, k.condeferred, k.convalidated,
                   k.conindid::regclass::text, k.connoinherit,
                   CASE WHEN k.conbin IS NOT NULL THEN pg_get_constraintdef(k.oid) END,
                   (SELECT ds.description FROM pg_description ds WHERE ds.objoid = k.oid
                       AND ds.classoid = 'pg_constraint'::regclass),
                   CASE WHEN k.contype = 'f' THEN
                   (SELECT concat_ws(',', r.relispartition, string_agg(ra.attname, ',' ORDER BY ra.attnum))
                      FROM pg_class r JOIN pg_attribute ra ON ra.attrelid = r.oid AND ra.attnum = ANY(k.confkey)
                     WHERE r.oid = k.confrelid GROUP BY r.relispartition) END), E'\\n' ORDER BY k.conname, k.oid)
            FROM pg_constraint k WHERE k.conrelid = c.oid),
         (SELECT string_agg(concat_ws(' ', ic.relname, i.indnatts, i.indnkeyatts, i.indisunique, i.indnullsnotdistinct,
                   i.indisprimary, i.indisexclusion, i.indimmediate, i.indisvalid, i.indisready, i.indislive, i.indkey,
                   i.indclass, i.indcollation, i.indoption, ic.relam, ic.reltablespace, ic.reloptions::text,
                   CASE WHEN i.indexprs IS NOT NULL THEN pg_get_expr(i.indexprs, i.indrelid) END,
                   CASE WHEN i.indpred IS NOT NULL THEN pg_get_expr(i.indpred, i.indrelid) END,
                   (SELECT ds.description FROM pg_description ds WHERE ds.objoid = ic.oid
                       AND ds.classoid = 'pg_class'::regclass AND ds.objsubid = 0)), E'\\n' ORDER BY ic.relname)
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid)
       )) END AS form,
       CASE WHEN NOT c.relispartition THEN  -- an aggregate, not EXISTS: the planner would hash all of pg_attribute
         (SELECT bool_or(a.attname LIKE '\\_new\\_%') FROM pg_attribute a
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped) END AS expanding
 {IN_SCHEMA} AND c.relkind IN ('r', 'p')""")

_DIALECT = postgresql.dialect()
_lock = threading.Lock()
# (what the forms are read with, (schema, table), declared form, live form) of the tables Alembic found in step
VERIFIED: set[tuple[str, tuple[str | None, str], str, str]] = set()
_VERIFIED_MAX = 100_000
_declared_cache: weakref.WeakKeyDictionary[Table, str] = weakref.WeakKeyDictionary()


@contextmanager
def exact_compare():
    """Within it, every table goes through Alembic's comparison (``check --exact``)."""
    token = _exact.set(True)
    try:
        yield
    finally:
        _exact.reset(token)


def is_exact() -> bool:
    return _exact.get()


def live_forms(connection, schema: str | None) -> dict[str, tuple[bool, str | None]]:
    """Every table of ``schema`` as reflection lists them: name -> (a partition, its live form).

    The form is None for a partition (sovren-db compares partitions set-wise, by name) and while an
    expand is under way (Alembic compares that table every time).
    """
    rows = connection.execute(LIVE_FORMS, {"schema": schema})
    return {r.relname: (r.relispartition, None if r.expanding else r.form) for r in rows}


def context_key(connection) -> str:
    """What else Alembic's answer depends on: the versions comparing, the server's and its search_path.

    It also turns JIT off for the rest of the comparison's transaction: the planner's estimate for
    LIVE_FORMS (and for SQLAlchemy's reflection queries) passes jit_above_cost, and compiling them
    costs more than running them (3x for LIVE_FORMS on the bench schema). A catalog read gains nothing
    from JIT; the setting ends with the transaction.
    """
    row = connection.execute(text("SELECT current_setting('server_version_num'), current_setting('search_path'), "
                                  "current_schema(), set_config('jit', 'off', true)")).one()
    from .. import __version__

    return "|".join((alembic.__version__, sqlalchemy.__version__, __version__, *map(str, row[:3])))


def declared_form(table: Table) -> str:
    """A digest of the declared table as Alembic's comparison reads it, kept while the object lives."""
    form = _declared_cache.get(table)
    if form is None:
        form = _declared_cache[table] = hashlib.sha256(_declared_text(table).encode()).hexdigest()
    return form


def _declared_text(table: Table) -> str:
    parts = [str(CreateTable(table).compile(dialect=_DIALECT)), repr(table.comment),
             repr(sorted(table.dialect_kwargs.items(), key=lambda kv: kv[0]))]
    for column in table.columns:
        parts.append(repr((column.name, repr(column.type), column.nullable, column.primary_key,
                           column.autoincrement, column.comment, _default(column.server_default),
                           repr(column.computed), repr(column.identity), column.key)))
    for index in sorted(table.indexes, key=lambda i: str(i.name)):
        parts.append(str(CreateIndex(index).compile(dialect=_DIALECT)))
        parts.append(repr((index.name, index.unique, sorted(map(str, index.dialect_kwargs.items())))))
    for constraint in sorted(table.constraints, key=lambda c: (type(c).__name__, str(c.name))):
        parts.append(repr((type(constraint).__name__, constraint.name, _constraint_detail(constraint))))
    return "\n".join(parts)


def _default(default: Any) -> str | None:
    if default is None:
        return None
    arg = getattr(default, "arg", None)
    if arg is None:  # Identity, Computed, FetchedValue: their repr names every argument
        return repr(default)
    if isinstance(arg, str):
        return "str:" + arg
    return f"{type(arg).__name__}:{arg.compile(dialect=_DIALECT)}"


def _constraint_detail(constraint: Any) -> tuple:
    elements = getattr(constraint, "elements", None)
    if elements is not None:  # a foreign key
        return (tuple((e.parent.name, e.target_fullname) for e in elements), constraint.ondelete,
                constraint.onupdate, constraint.deferrable, constraint.initially, constraint.match,
                constraint.use_alter)
    return (tuple(c.name for c in getattr(constraint, "columns", ())), getattr(constraint, "deferrable", None),
            getattr(constraint, "initially", None), str(getattr(constraint, "sqltext", "")))


def in_step(context: str, key: tuple[str | None, str], declared: str, live: str | None) -> bool:
    return live is not None and (context, key, declared, live) in VERIFIED


def remember(context: str, pairs: Iterable[tuple[tuple[str | None, str], str, str | None]]) -> None:
    """Keep the (table, declared form, live form) Alembic's comparison found in step."""
    with _lock:
        if len(VERIFIED) > _VERIFIED_MAX:
            VERIFIED.clear()  # a belt: only a process comparing very many schema versions gets here
        VERIFIED.update((context, key, declared, live) for key, declared, live in pairs if live is not None)


def forget() -> None:
    with _lock:
        VERIFIED.clear()
        _declared_cache.clear()


class TablesInStep:
    """For one comparison: which live tables may skip Alembic's, and remembering what Alembic found."""

    def __init__(self, autogen_context, metadata_table_names: Iterable[tuple[str | None, str]]) -> None:
        self.connection = autogen_context.connection
        self.declared = {key: autogen_context.table_key_to_table[_table_key(*key)] for key in metadata_table_names}
        self.enabled = not is_exact()
        self.context = context_key(self.connection) if self.enabled else ""
        self.live: dict[tuple[str | None, str], str | None] = {}
        self.skipped: set[tuple[str | None, str]] = set()

    def tables(self, schema: str | None) -> tuple[set[str], set[str]] | None:
        """(tables, partitions) of ``schema`` as reflection lists them, read with their forms; None when exact."""
        if not self.enabled:
            return None
        found = live_forms(self.connection, schema)
        self.live.update(((schema, name), form) for name, (_, form) in found.items())
        return set(found), {name for name, (partition, _) in found.items() if partition}

    def skip(self, schema: str | None, names: Iterable[str]) -> set[str]:
        """The names among ``names`` whose (declared, live) pair Alembic already found in step."""
        if not self.enabled:
            return set()
        found = {n for n in names if (schema, n) in self.declared and in_step(
            self.context, (schema, n), declared_form(self.declared[(schema, n)]), self.live.get((schema, n)))}
        self.skipped |= {(schema, n) for n in found}
        return found

    def remember(self, compared: Iterable[tuple[str | None, str]], new_ops: list) -> None:
        """Tables Alembic compared and gave no operation for are in step at their current pair."""
        if not self.enabled:
            return
        touched = {(getattr(op, "schema", None), op.table_name) for op in new_ops if hasattr(op, "table_name")}
        remember(self.context, ((key, declared_form(self.declared[key]), self.live.get(key))
                                for key in compared if key not in touched and key in self.declared))


def _table_key(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name
