"""Postgres findings for ``sovren-db check`` that are not drift of one declared object.

- ``rls-missing`` / ``rls-not-forced``: a declared table holding a data
  subject's rows (declared ``PersonalData``, a subject column, or a foreign
  key path to such a table) declares no row security, or does not force it
  while an application role writes it. Pure: read from the declarations, so
  the next table cannot forget it before it reaches a database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import MetaData

from ..core.findings import Finding
from .state import Grant, PersonalData, Role, RowSecurity, Schema

if TYPE_CHECKING:
    from ..core.config import Settings

WRITES = frozenset({"INSERT", "UPDATE", "DELETE"})


def check_findings(settings: "Settings") -> list[Finding]:
    from .declared import load_schema

    schema = load_schema(settings.postgres_dir)
    return row_security_findings(schema, _shown(settings))


def _shown(settings: "Settings") -> str:
    try:
        return str(settings.postgres_dir.relative_to(settings.root))
    except ValueError:
        return str(settings.postgres_dir)


def subject_tables(schema: Schema) -> list[str]:
    """Tables holding a subject's rows: declared PersonalData, a subject column, or a foreign key to one."""
    rules = schema.of(PersonalData)
    columns = {r.subject_column for r in rules}
    found = {r.table for r in rules} | {name for name, table in schema.metadata.tables.items()
                                        if columns & set(table.c.keys())}
    return sorted(_referrers_closure(schema.metadata, found))


def _referrers_closure(metadata: MetaData, found: set[str]) -> set[str]:
    grown = True
    while grown:
        more = {name for name, table in metadata.tables.items()
                if name not in found and any(fk.column.table.name in found for fk in table.foreign_keys)}
        found |= more
        grown = bool(more)
    return found


def row_security_findings(schema: Schema, where: str) -> list[Finding]:
    declared = {r.table: r for r in schema.of(RowSecurity)}
    bypass = {r.name for r in schema.of(Role) if r.bypass_rls}
    writers: dict[str, set[str]] = {}
    for grant in schema.of(Grant):
        if grant.role not in bypass and WRITES & set(grant.privileges):
            writers.setdefault(grant.table, set()).add(grant.role)
    findings = []
    for table in subject_tables(schema):
        rls = declared.get(table)
        if rls is None or not rls.enabled:
            findings.append(Finding("postgres", f"table {table}", "holds a data subject's rows but declares no row "
                                    "security: every role granted it reads and writes every tenant's rows "
                                    "(declare RowSecurity and tenant policies)", code="rls-missing", file=where))
        elif not rls.forced and writers.get(table):
            findings.append(Finding("postgres", f"table {table}", "holds a data subject's rows and is written by "
                                    f"{', '.join(sorted(writers[table]))} but row security is not forced: the "
                                    "table's owner escapes the tenant policies (RowSecurity(forced=True))",
                                    code="rls-not-forced", file=where))
    return findings
