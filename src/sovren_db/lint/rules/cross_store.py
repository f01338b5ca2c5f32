"""XSxxx: a Postgres change that Mongo or Redis declarations still rely on, through a declared link.

Links live in ``lint.toml`` (see :mod:`sovren_db.lint.config`): ``users.user_id``
is held by ``executives.userId`` in Mongo and by the ``{user_id}`` of
``session:{user_id}`` in Redis. A revision whose SQL drops or renames that
column (or its table) while a linked field or placeholder is still declared
gets XS101. The SQL is read as it runs, so ``op.drop_column``,
``op.alter_column(new_column_name=...)``, ``op.drop_table`` and hand-written
``op.execute`` all count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

from ...core.findings import Finding
from ..config import Link
from ..facts import RevisionFacts
from . import Hit, LintContext, reported_elsewhere, rule
from .common import declared_validator, property_schema, redis_placeholders

IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)'
_ALTER = re.compile(rf"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?:{IDENT}\.)?({IDENT})\s+(.*)$",
                    re.IGNORECASE | re.DOTALL)
_RENAME_TABLE = re.compile(rf"^RENAME\s+TO\s+({IDENT})", re.IGNORECASE)
_RENAME_COLUMN = re.compile(rf"^RENAME\s+(?:COLUMN\s+)?(?!TO\b|CONSTRAINT\b)({IDENT})\s+TO\s+({IDENT})", re.IGNORECASE)
_DROP_COLUMN = re.compile(
    rf"\bDROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(?!CONSTRAINT\b|DEFAULT\b|NOT\b|IDENTITY\b|EXPRESSION\b)({IDENT})",
    re.IGNORECASE)
_DROP_TABLE = re.compile(r"^\s*DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(.+?)(?:\s+(?:CASCADE|RESTRICT))?\s*;?\s*$",
                         re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class ColumnChange:
    table: str
    column: str | None       # None: the whole table
    renamed_to: str | None   # None: dropped

    def says(self) -> str:
        if self.column:
            return f"renamed to {self.renamed_to}" if self.renamed_to else "dropped"
        return f"its table is renamed to {self.renamed_to}" if self.renamed_to else "dropped with its table"


def _name(identifier: str) -> str:
    identifier = identifier.strip()
    if identifier.startswith('"'):
        return identifier[1:-1].replace('""', '"')
    return identifier.lower()


def _code(sql: str) -> str:
    return "\n".join(line for line in sql.splitlines() if not line.lstrip().startswith("--")).strip()


def column_changes(sql: str) -> list[ColumnChange]:
    """The columns (or tables) a statement drops or renames."""
    sql = _code(sql)
    dropped = _DROP_TABLE.match(sql)
    if dropped:
        return [ColumnChange(_name(t.split(".")[-1]), None, None) for t in dropped[1].split(",")]
    altered = _ALTER.match(sql)
    if not altered:
        return []
    table, actions = _name(altered[1]), altered[2].strip().rstrip(";")
    renamed = _RENAME_TABLE.match(actions)
    if renamed:
        return [ColumnChange(table, None, _name(renamed[1]))]
    renamed = _RENAME_COLUMN.match(actions)
    if renamed:
        return [ColumnChange(table, _name(renamed[1]), _name(renamed[2]))]
    return [ColumnChange(table, _name(m[1]), None) for m in _DROP_COLUMN.finditer(actions)]


def _still_named(link: Link, context: LintContext) -> list[str]:
    """The targets of ``link`` that the current declarations still have."""
    named = [f"mongo {c}.{f}" for c, f in link.mongo if property_schema(declared_validator(context, c), f)]
    named += [f"redis {n} {{{p}}}" for n, p in link.redis if p in (redis_placeholders(context, n) or ())]
    return named


@rule("XS101", "linked-column-removed", "cross-store",
      "a Postgres column is dropped or renamed while a linked Mongo field or Redis placeholder still names it")
def linked_column_removed(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    if not context.config.links:
        return
    for statement in facts.statements:
        for change in column_changes(statement.sql):
            for link in context.config.links:
                if link.table != change.table or change.column not in (None, link.column):
                    continue
                named = _still_named(link, context)
                if named:
                    yield Hit(statement.line, f"column {link.name}",
                              f"{change.says()}, but {', '.join(named)} still hold its values "
                              f"(linked in {context.config.display}); change those declarations in the same "
                              "revision, or accept this finding with the reason")


reported_elsewhere("XS102", "link-target-undeclared", "cross-store", "cross_store",
                   "a link in lint.toml names a field or placeholder no declaration has", "warning")


def undeclared_link_targets(context: LintContext) -> list[Finding]:
    """XS102: link targets that no current declaration has (a typo would silently disable XS101)."""
    findings = []
    for link in context.config.links:
        missing = [f"mongo {c}.{f}" for c, f in link.mongo if not property_schema(declared_validator(context, c), f)]
        missing += [f"redis {n} {{{p}}}" for n, p in link.redis if p not in (redis_placeholders(context, n) or ())]
        for target in missing:
            findings.append(Finding("cross-store", f"{context.config.display} {link.where}",
                                    f"links {link.name} to {target}, which no declaration has",
                                    code="XS102", severity="warning", file=context.config.display))
    return findings
