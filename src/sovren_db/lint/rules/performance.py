"""x4xx: changes after which ordinary statements become slow on large tables.

The revision's SQL is parsed with pglast (libpg_query, Postgres' own parser):
squawk does not say which columns a statement names, and regular expressions
over DDL miss quoting, inline constraints and ``ONLY``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from ...core.errors import ConfigError
from ...postgres.checks import leads

try:
    from pglast import ast, enums, parse_sql
    from pglast.parser import ParseError
except ImportError:  # the [lint] extra; the rule says so when it runs
    parse_sql = None
from ..facts import RevisionFacts
from . import Hit, LintContext, rule



@dataclass(frozen=True)
class ForeignKey:
    table: str
    columns: tuple[str, ...]
    parent: str
    line: int | None


def _keyed() -> tuple:
    return (enums.ConstrType.CONSTR_PRIMARY, enums.ConstrType.CONSTR_UNIQUE)


def _names(values) -> tuple[str, ...]:
    return tuple(v.sval for v in values or ())


def _table_elements(stmt: "ast.CreateStmt", line: int | None) -> Iterator[ForeignKey | tuple[str, tuple[str, ...]]]:
    table = stmt.relation.relname
    for element in stmt.tableElts or ():
        if isinstance(element, ast.ColumnDef):
            for constraint in element.constraints or ():
                if constraint.contype == enums.ConstrType.CONSTR_FOREIGN:
                    yield ForeignKey(table, (element.colname,), constraint.pktable.relname, line)
                elif constraint.contype in _keyed():
                    yield (table, (element.colname,))
        elif isinstance(element, ast.Constraint):
            yield from _constraint(table, element, line)


def _constraint(table: str, constraint: "ast.Constraint", line: int | None
                ) -> Iterator[ForeignKey | tuple[str, tuple[str, ...]]]:
    if constraint.contype == enums.ConstrType.CONSTR_FOREIGN:
        yield ForeignKey(table, _names(constraint.fk_attrs), constraint.pktable.relname, line)
    elif constraint.contype in _keyed() and constraint.keys:
        yield (table, _names(constraint.keys))


def revision_keys(facts: RevisionFacts) -> tuple[list[ForeignKey], list[tuple[str, tuple[str, ...]]]]:
    """Foreign keys the revision adds, and the (table, leading columns) of every index it creates."""
    if parse_sql is None:
        raise ConfigError("pglast is not installed: pip install pglast (or sovren-db[lint]) to lint the "
                          "foreign keys of revisions.")
    found: list = []
    for statement in facts.statements:
        try:
            parsed = parse_sql(statement.sql)
        except ParseError:  # squawk reports what does not parse
            continue
        for raw in parsed:
            found += _statement_keys(raw.stmt, statement.line)
    return ([f for f in found if isinstance(f, ForeignKey)], [f for f in found if not isinstance(f, ForeignKey)])


def _statement_keys(stmt, line: int | None) -> list:
    if isinstance(stmt, ast.CreateStmt):
        return list(_table_elements(stmt, line))
    if isinstance(stmt, ast.AlterTableStmt):
        return [key for cmd in stmt.cmds or () if cmd.subtype == enums.AlterTableType.AT_AddConstraint
                for key in _constraint(stmt.relation.relname, cmd.def_, line)]
    if isinstance(stmt, ast.IndexStmt) and stmt.whereClause is None:
        return [(stmt.relation.relname, tuple(p.name or "" for p in stmt.indexParams))]
    return []


def declared_indexes(context: LintContext) -> list[tuple[str, tuple[str, ...]]]:
    """(table, columns) of the indexes, primary keys and unique constraints declared in postgres/."""
    from ...postgres.declared import load_schema

    if not (context.settings.postgres_dir / "schema.py").is_file():
        return []
    found = []
    for table in load_schema(context.settings.postgres_dir).metadata.tables.values():
        found += [(table.name, tuple(c.name for c in index.columns)) for index in table.indexes
                  if index.dialect_options["postgresql"].get("where") is None]
        found += [(table.name, tuple(c.name for c in constraint.columns)) for constraint in table.constraints
                  if constraint.__visit_name__ in ("primary_key_constraint", "unique_constraint")]
    return found


@rule("PG401", "foreign-key-unindexed", "postgres",
      "a foreign key whose referencing columns lead no index (each delete of a parent row scans the table)")
def foreign_key_unindexed(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    keys, created = revision_keys(facts)
    if not keys:
        return
    indexes = created + declared_indexes(context)
    for key in keys:
        if any(table == key.table and leads(columns, key.columns) for table, columns in indexes):
            continue
        columns = ", ".join(key.columns)
        yield Hit(key.line, f"foreign key {key.table} ({columns})",
                  f"leads no index in this revision or in the declarations: every delete from {key.parent} scans "
                  f"{key.table}; add Index(..., {', '.join(repr(c) for c in key.columns)}) to the table")
