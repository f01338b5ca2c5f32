"""The indexes and constraints of a column being expanded: rebuilt on its new column, swapped at the contract.

While an expand is in progress the old column keeps its indexes, unique and check constraints; the
new column (``_new_<column>``) gets a copy of each, named ``_new_<name>``: a check is added NOT VALID
in the expand's transaction (so rows written from then on are checked) and validated after the
backfill; an index (a unique constraint's included) is built CONCURRENTLY after the backfill, per
partition on a partitioned table (the safe form's :class:`~.safe.CreateIndexConcurrentlyOp`, with its
bounded workers and progress). The contract drops the old column, which drops the old copies with
it, and gives each new one the old name in the same brief lock; a unique constraint comes back as a
constraint (``ADD CONSTRAINT ... UNIQUE USING INDEX``), except on a partitioned table, where Postgres
has no such form and it stays a unique index. Expressions and predicates naming the column are
rewritten on the parse tree (pglast), not as text, so a literal or another identifier that happens
to spell the column's name is left alone. A primary key, a foreign key or an exclusion constraint
on the column is refused before anything runs: those need a plan of their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pglast import ast, parse_sql
from pglast.stream import RawStream
from pglast.visitors import Visitor
from sqlalchemy import text

from ..core.errors import MigrationFailed
from .safe import CreateCheckConstraintNotValidOp, CreateIndexConcurrentlyOp, ValidateConstraintOp, bounded_name

_INDEXES = """
SELECT ic.relname, i.indisunique, am.amname, i.indnkeyatts, i.indnatts, i.indoption::int2[],
       pg_get_expr(i.indpred, i.indrelid, true), con.contype,
       ARRAY(SELECT pg_get_indexdef(i.indexrelid, k, true) FROM generate_series(1, i.indnatts) k ORDER BY k)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attname = :c
WHERE i.indrelid = to_regclass(:t) AND NOT i.indisprimary AND coalesce(con.contype, 'u') = 'u'
  AND ic.relname NOT LIKE '\\_new\\_%'
  AND (a.attnum = ANY(i.indkey::int2[]) OR EXISTS (
       SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid
       AND d.refobjid = i.indrelid AND d.refobjsubid = a.attnum))
ORDER BY 1
"""
_CHECKS = """
SELECT con.conname, pg_get_expr(con.conbin, con.conrelid, true)
FROM pg_constraint con JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attname = :c
WHERE con.conrelid = to_regclass(:t) AND con.contype = 'c' AND a.attnum = ANY(con.conkey)
  AND con.conname NOT LIKE '\\_new\\_%'
ORDER BY 1
"""
# What a copy cannot carry over: the key itself, foreign keys either way, exclusion constraints.
_REFUSED = """
SELECT con.conname, CASE con.contype WHEN 'p' THEN 'the primary key' WHEN 'f' THEN 'the foreign key'
                                     ELSE 'the exclusion constraint' END
FROM pg_constraint con JOIN pg_attribute a ON a.attrelid = to_regclass(:t) AND a.attname = :c
WHERE (con.conrelid = a.attrelid AND con.contype IN ('p', 'f', 'x') AND a.attnum = ANY(con.conkey))
   OR (con.confrelid = a.attrelid AND con.contype = 'f' AND a.attnum = ANY(con.confkey))
ORDER BY 1 LIMIT 1
"""
DESC, NULLS_FIRST = 1, 2


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def copy_name(name: str) -> str:
    return bounded_name(f"_new_{name}")


class _Renamer(Visitor):
    def __init__(self, old: str, new: str):
        super().__init__()
        self.old, self.new = old, new

    def visit_ColumnRef(self, parent: Any, node: ast.ColumnRef) -> Any:
        last = node.fields[-1]
        if isinstance(last, ast.String) and last.sval == self.old:
            return ast.ColumnRef(fields=(*node.fields[:-1], ast.String(sval=self.new)))
        return None


def renamed(expression: str, old: str, new: str) -> str:
    """``expression`` (SQL) with every reference to column ``old`` made to ``new``."""
    tree = parse_sql(f"SELECT {expression}")
    _Renamer(old, new)(tree)
    return RawStream()(tree[0].stmt.targetList[0].val)


@dataclass(frozen=True)
class IndexCopy:
    name: str
    unique: bool
    constraint: bool
    method: str
    keys: list[str]
    include: list[str]
    where: str | None

    @property
    def copy(self) -> str:
        return copy_name(self.name)


@dataclass(frozen=True)
class CheckCopy:
    name: str
    condition: str

    @property
    def copy(self) -> str:
        return copy_name(self.name)


def _key(definition: str, option: int, old: str, new: str) -> str:
    order = " DESC" if option & DESC else ""
    nulls = " NULLS FIRST" if option & NULLS_FIRST and not option & DESC else ""
    nulls = " NULLS LAST" if option & DESC and not option & NULLS_FIRST else nulls
    return renamed(definition, old, new) + order + nulls


def index_copies(connection: Any, table: str, old: str, new: str) -> list[IndexCopy]:
    """The indexes that name ``old`` (in a key, an INCLUDE, an expression or a predicate), as copies on ``new``."""
    copies = []
    for name, unique, method, nkeys, _, options, where, contype, columns in connection.execute(
            text(_INDEXES), {"t": table, "c": old}):
        keys = [_key(c, options[k], old, new) for k, c in enumerate(columns[:nkeys])]
        include = [new if c == old else c for c in columns[nkeys:]]
        copies.append(IndexCopy(name, unique, contype == "u", method, keys, include,
                                renamed(where, old, new) if where else None))
    return copies


def check_copies(connection: Any, table: str, old: str, new: str) -> list[CheckCopy]:
    return [CheckCopy(name, renamed(condition, old, new))
            for name, condition in connection.execute(text(_CHECKS), {"t": table, "c": old})]


def refuse_uncopyable(connection: Any, table: str, column: str, what: str) -> None:
    row = connection.execute(text(_REFUSED), {"t": table, "c": column}).first()
    if row is not None:
        raise MigrationFailed(f"{what}: {column} is part of {row[1]} {row[0]}, which an expand does not carry over; "
                              "change that column with a plan of its own (drop and recreate the constraint).")


class IndexCopyOp(CreateIndexConcurrentlyOp):
    """The safe form's concurrent build (per partition, bounded workers, re-entrant) of a copy whose
    keys are SQL read from the catalog, written as SQL rather than through SQLAlchemy's Index (which
    cannot name an INCLUDE column that is not among its own)."""

    def __init__(self, index: IndexCopy, table_name: str, *, schema: str | None = None):
        super().__init__(index.copy, table_name, [], schema=schema, unique=index.unique)
        self.index = index

    def index_sql(self, operations: Any, name: str, table: str, *, concurrently: bool, only: bool = False) -> str:
        index, target = self.index, (f"{_q(self.schema)}." if self.schema else "") + _q(table)
        include = f" INCLUDE ({', '.join(_q(c) for c in index.include)})" if index.include else ""
        return (f"CREATE {'UNIQUE ' if index.unique else ''}INDEX {'CONCURRENTLY ' if concurrently else ''}"
                f"IF NOT EXISTS {_q(name)} ON {'ONLY ' if only else ''}{target} USING {index.method} "
                f"({', '.join(index.keys)}){include}{f' WHERE {index.where}' if index.where else ''}")


@dataclass(frozen=True)
class Copies:
    """A column's indexes and checks, as copies on its new column."""

    indexes: list[IndexCopy]
    checks: list[CheckCopy]

    @classmethod
    def read(cls, connection: Any, op: Any) -> "Copies":
        refuse_uncopyable(connection, op.table, op.column_name, op.describe())
        return cls(index_copies(connection, op.table, op.column_name, op.shadow),
                   check_copies(connection, op.table, op.column_name, op.shadow))

    def add_checks(self, operations: Any, op: Any) -> None:
        """NOT VALID: from the expand's commit on, every row written is checked on the new column too."""
        for check in self.checks:
            operations.invoke(CreateCheckConstraintNotValidOp(check.copy, op.table_name, text(check.condition),
                                                              schema=op.schema))

    def build(self, operations: Any, op: Any) -> None:
        """After the backfill, inside an autocommit block: the indexes built, the checks validated."""
        for index in self.indexes:
            operations.invoke(IndexCopyOp(index, op.table_name, schema=op.schema))
        for check in self.checks:
            operations.invoke(ValidateConstraintOp(op.table_name, check.copy, schema=op.schema))


def swap_sql(connection: Any, op: Any) -> list[str]:
    """What gives the copies their old names, run after the old column (and its originals) is dropped;
    read before the drop, from the originals whose copy exists."""
    copies = Copies(index_copies(connection, op.table, op.column_name, op.shadow),
                    check_copies(connection, op.table, op.column_name, op.shadow))
    schema = f"{_q(op.schema)}." if op.schema else ""
    partitioned = connection.execute(text("SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass(:t)"),
                                     {"t": op.table}).scalar()
    statements = []
    for index in copies.indexes:
        if not connection.execute(text("SELECT to_regclass(:i) IS NOT NULL"), {"i": schema + _q(index.copy)}).scalar():
            continue
        if index.constraint and not partitioned:
            statements.append(f"ALTER TABLE {op.table} ADD CONSTRAINT {_q(index.name)} UNIQUE "
                              f"USING INDEX {_q(index.copy)}")
        else:
            statements.append(f"ALTER INDEX {schema}{_q(index.copy)} RENAME TO {_q(index.name)}")
    names = {r[0] for r in connection.execute(text(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t)"), {"t": op.table})}
    statements += [f"ALTER TABLE {op.table} RENAME CONSTRAINT {_q(c.copy)} TO {_q(c.name)}"
                   for c in copies.checks if c.copy in names]
    return statements

