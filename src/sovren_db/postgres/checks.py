"""Postgres findings for ``sovren-db check`` that are not drift of one declared object.

- ``rls-missing`` / ``rls-not-forced``: a declared table holding a data
  subject's rows (declared ``PersonalData``, a subject column, or a foreign
  key path to such a table) declares no row security, or does not force it
  while an application role writes it. Pure: read from the declarations, so
  the next table cannot forget it before it reaches a database.
- ``fk-unindexed``: a foreign key whose referencing columns do not lead an
  index: every delete or key update of the referenced table scans the
  referencing one (``seed --reset`` sat 27 minutes on one DELETE of
  transactions while payments.transaction_id had no index). Read live.
- ``pci-unchecked``: a column of a table in PCI scope without its card
  number constraint (:mod:`.pci`). Read live.
- ``partition-trigger-missing``: a partition without one of its parent's
  statement-level triggers. Postgres clones row triggers onto partitions but
  never statement triggers, and a statement naming a partition fires only the
  partition's: the audit triggers of operations (revisions 8b4f1d6c2e90,
  e7a2c9d4b61f) stand on each partition, given by the revisions, by
  ``ensure_partitions`` and, for a partition created or attached by hand, by
  the audit guard's event trigger (revision f3b9d2a7c5e1). A safety net where
  that did not run (the guard disabled, a role not a superuser when the chain
  was migrated) or a trigger was dropped from a partition, disabled there, or
  stands there under its name calling another function or not firing as the
  parent's (a table attached with a trigger of its own of that name, a WHEN
  condition): DML or TRUNCATE naming it would leave no event. The real trigger
  may stand under the name with the suffix ``_sovren`` (the guard's, beside
  another trigger of the name, revision b9e5d3f7a2c4). Drift of no declared object (partitions are
  not declared one by one), so a finding. Read live.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from ..core.findings import Finding
from .pci import pci_findings
from .state import Grant, PersonalData, Role, RowSecurity, Schema

if TYPE_CHECKING:
    from ..core.config import Settings

WRITES = frozenset({"INSERT", "UPDATE", "DELETE"})


def check_findings(settings: "Settings", conn: Connection | None = None) -> list[Finding]:
    """``conn``: an open connection to read with (check lends its own), else one of its own."""
    from contextlib import nullcontext

    from .declared import load_schema

    from ..env import connected

    schema = load_schema(settings.postgres_dir)
    where = _shown(settings)
    with nullcontext(conn) if conn is not None else connected(settings) as conn:
        live = unindexed_foreign_keys(conn) + pci_findings(schema, conn, where) + partition_trigger_findings(conn)
        if conn.in_transaction():
            conn.commit()  # a lent connection is left as it came, outside any transaction
    return row_security_findings(schema, where) + live


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


def leads(index_columns: list[str] | tuple[str, ...], key_columns: list[str] | tuple[str, ...]) -> bool:
    """Whether the index's first len(key) columns are the key's columns (in any order)."""
    return len(index_columns) >= len(key_columns) and set(index_columns[:len(key_columns)]) == set(key_columns)


# Foreign keys of the current schema (a partitioned table's own, not its partitions' clones) that no
# complete (non-partial) valid index leads (a CREATE INDEX CONCURRENTLY killed half-way leaves an invalid
# one, which no query uses): ``leads`` on attribute numbers, in the server, so that only the findings
# come back; the key's column names in key order. Written to start from the foreign keys and look up their
# tables and indexes by oid (a few hundred index probes): joined plainly, the planner scans all of pg_class
# and pg_index (7,500 rows each with 1,200 partitions), 7.6 ms against 1.7 on the bench schema.
_FOREIGN_KEYS = """
SELECT c.conname, t.relname AS "table", r.relname AS parent,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(num, pos)
               JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.num ORDER BY k.pos) AS columns
  FROM (SELECT c.conname, c.conrelid, c.confrelid, c.conkey FROM pg_constraint c
         WHERE c.contype = 'f' AND c.conparentid = 0
           AND (SELECT t.relnamespace FROM pg_class t WHERE t.oid = c.conrelid) = current_schema()::regnamespace
           AND NOT EXISTS (SELECT 1 FROM pg_index i
                            WHERE i.indrelid = c.conrelid AND i.indpred IS NULL AND i.indisvalid
                              AND cardinality(i.indkey::int2[]) >= cardinality(c.conkey)
                              AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] @> c.conkey
                              AND (i.indkey::int2[])[0:cardinality(c.conkey) - 1] <@ c.conkey)
        OFFSET 0) c
  JOIN pg_class t ON t.oid = c.conrelid
  JOIN pg_class r ON r.oid = c.confrelid
 ORDER BY t.relname, c.conname
"""


def unindexed_foreign_keys(conn: Connection) -> list[Finding]:
    findings = []
    for row in conn.execute(text(_FOREIGN_KEYS)):
        columns = ", ".join(row.columns)
        findings.append(Finding("postgres", f"foreign key {row.conname} on {row.table}",
                                f"({columns}) leads no index: every delete from {row.parent} scans {row.table} "
                                f"(CREATE INDEX ... ON {row.table} ({columns}))", code="fk-unindexed"))
    return findings



# Statement-level triggers of a partitioned table of the current schema that one of its partitions lacks
# (by name, as the revisions and ensure_partitions give them, or with the suffix _sovren, the name the audit
# guard gives one beside another trigger of that name, revision b9e5d3f7a2c4). A trigger of that name counts
# only when it fires as the parent's: the same function, timing and events, a WHEN condition where the
# parent's has one (an attached table's WHEN (false) copy never fires), the same UPDATE OF columns and
# transition tables, enabled (not for replicas only) unless the parent's is so too: a table attached with its
# own trigger of that name calling something else, or a partition's audit trigger disabled, leaves statements
# naming the partition without events just the same. A trigger under the parent's name that is not it is
# named even when the real one stands under the suffix: the owner's to look at. A partition where more triggers
# fire as one of the parent's than on the parent (under any names: the real one under the suffix and another
# created by hand under the name, as the finding's own advice said) runs it twice: each audit event written twice.
# One look at each partition's triggers per parent trigger (a lateral aggregate) and the parent's counted only where
# the partition has two: 10.4 ms against 7.3 for the name probe alone with 1,200 partitions of 40 tables
# (/tmp script, best of 7); counting both sides for every pair took 19 ms.
_ALIKE = """x.tgfoid = t.tgfoid AND x.tgtype = t.tgtype AND (x.tgqual IS NULL) = (t.tgqual IS NULL)
                   AND x.tgattr = t.tgattr AND (x.tgoldtable IS NULL) = (t.tgoldtable IS NULL)
                   AND (x.tgnewtable IS NULL) = (t.tgnewtable IS NULL)"""
_SAME = _ALIKE + """
                   AND (x.tgenabled IN ('O', 'A') OR x.tgenabled = t.tgenabled)"""
_PARTITION_TRIGGERS = f"""
SELECT t.tgname, p.relname AS parent, c.relname AS partition, n.named AND NOT n.impostor AS twice, n.disabled
  FROM pg_class p
  JOIN pg_trigger t ON t.tgrelid = p.oid AND t.tgtype & 1 = 0 AND NOT t.tgisinternal
  JOIN pg_inherits i ON i.inhparent = p.oid
  JOIN pg_class c ON c.oid = i.inhrelid
 CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE {_SAME}) AS firing,
                            COALESCE(bool_or(x.tgname IN (t.tgname, t.tgname || '_sovren') AND {_SAME}), false) AS named,
                            COALESCE(bool_or(x.tgname = t.tgname AND NOT ({_SAME})), false) AS impostor,
                            -- the trigger there, alike but disabled: the cover function counts it present
                            max(x.tgname) FILTER (WHERE x.tgname IN (t.tgname, t.tgname || '_sovren')
                                                    AND {_ALIKE} AND NOT ({_SAME})) AS disabled
                       FROM pg_trigger x WHERE x.tgrelid = c.oid) n
 WHERE p.relkind = 'p' AND p.relnamespace = current_schema()::regnamespace
   AND (NOT n.named OR n.impostor
        OR (n.firing > 1 AND n.firing > (SELECT count(*) FROM pg_trigger x WHERE x.tgrelid = p.oid AND {_SAME})))
 ORDER BY p.relname, c.relname, t.tgname
"""


def partition_trigger_findings(conn: Connection) -> list[Finding]:
    missing: dict[tuple[str, str], list[str]] = {}
    twice: dict[tuple[str, str], list[str]] = {}
    disabled: dict[tuple[str, str], list[str]] = {}
    for row in conn.execute(text(_PARTITION_TRIGGERS)):
        if row.disabled and not row.twice:
            disabled.setdefault((row.parent, row.partition), []).append(row.disabled)
        else:
            (twice if row.twice else missing).setdefault((row.parent, row.partition), []).append(row.tgname)
    findings = []
    for parent, partition in sorted(set(missing) | set(twice) | set(disabled)):
        said = []
        if (parent, partition) in disabled:   # sovren_audit_cover_partitions() counts a disabled trigger present
            names = disabled[parent, partition]
            said.append(f"has the statement trigger(s) {', '.join(names)} of {parent} disabled: statements naming "
                        "the partition skip them (the owner's " + "; ".join(
                            f"ALTER TABLE {partition} ENABLE TRIGGER {name}" for name in names) + ")")
        if (parent, partition) in missing:
            said.append(f"lacks the statement trigger(s) {', '.join(missing[parent, partition])} of {parent} (or has "
                        "one of that name disabled, calling another function or not firing as the parent's): "
                        "statements naming the partition skip them (made by hand while the audit guard was off, or "
                        "dropped: the owner's SELECT sovren_audit_cover_partitions() gives back the audit triggers; "
                        "others, create them as on the other partitions)")
        if (parent, partition) in twice:
            said.append(f"has the statement trigger(s) {', '.join(twice[parent, partition])} of {parent} twice "
                        "(under two names, one perhaps with the suffix _sovren): statements naming the partition run "
                        "them twice, an audit trigger writing each event twice (drop one)")
        findings.append(Finding("postgres", f"partition {partition} of {parent}", "; ".join(said),
                                code="partition-trigger-missing"))
    return findings
