"""The schema itself: what only the revision chain and the declarations know.

Drift is ``check``'s own engine; pending revisions come from the chain;
partitions and forced row security from the declarations against the
catalog; the audit chain is walked as ``audit verify`` walks it; Redis keys
are sampled (``key_sample`` keys at most, SCAN only) against the conventions.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import TYPE_CHECKING

import psycopg

from ..postgres.applied_at import last_applied
from ..postgres.declared import load_schema
from ..postgres.state import PartitionRule, Policy, RowSecurity
from .model import Examination
from .thresholds import Thresholds

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..redis.backend import RedisBackend
    from ..redis.state import RedisState

SCHEMA_STORE = "schema"


def drift(settings: "Settings", exam: Examination, down: set[str]) -> None:
    """check: every difference between the declarations and the live stores (those that answer)."""
    from .. import commands
    from .fingerprint import CACHE

    reachable = dataclasses.replace(settings, strict=False, urls={s: (None if s in down else u)
                                                                   for s, u in settings.urls.items()})
    outcome, cached = CACHE.answer(reachable, lambda: commands.check(reachable))
    exam.sample("drift_from_cache", 1 if cached else 0)
    kinds: Counter = Counter()
    for finding in outcome.findings:
        if finding.code == "pending":
            continue  # pending_revisions says it, once
        kinds[(finding.store, finding.object.split(" ", 1)[0])] += 1
        exam.findings.append(finding)
    for (store, kind), count in sorted(kinds.items()):
        exam.sample("drift_objects", count, store=store, kind=kind)
    exam.sample("drift_findings", sum(kinds.values()))


def pending_revisions(conn: psycopg.Connection, settings: "Settings", exam: Examination) -> None:
    """the revision chain: revisions the database has not applied."""
    from .. import commands

    pending = commands.pending_revisions(settings)
    exam.sample("pending_revisions", len(pending))
    applied = last_applied(conn)
    if applied is not None:
        exam.sample("last_migrate_timestamp_seconds", applied)
    for revision in pending:
        exam.finding(f"revision {revision.revision}", f"not applied ({revision.doc}): run 'sovren-db migrate'",
                     code="pending", store="postgres")


def partitions(conn: psycopg.Connection, settings: "Settings", exam: Examination) -> None:
    """declared partitions: this month's and the coming months' partitions of every partitioned table."""
    rules = load_schema(settings.postgres_dir).of(PartitionRule)
    today = conn.execute("SELECT current_date").fetchone()[0]
    wanted = {rule.table: rule.wanted_names(today) for rule in rules}
    names = [name for table_names in wanted.values() for name in table_names]
    present = {r[0] for r in conn.execute("SELECT relname FROM pg_class WHERE relname = ANY(%s)", (names,))}
    missing_total = 0
    for table, table_names in wanted.items():
        missing = [name for name in table_names if name not in present]
        missing_total += len(missing)
        if missing:
            exam.finding(f"table {table}", f"{len(missing)} partition(s) missing for the coming period "
                                           f"({', '.join(missing)}): run 'sovren-db partitions' (and schedule it)",
                         code="missing-partition", store="postgres")
    exam.sample("postgres_missing_partitions", missing_total)


def forced_rls(conn: psycopg.Connection, settings: "Settings", exam: Examination) -> None:
    """row security: tenant tables (declared with row security or policies) that do not force it. A table
    declared ``RowSecurity(forced=False)`` is left out: not forcing is then the design (audit_log's owner
    functions append past the tenant policies), and check reports it if no application role may write it."""
    schema = load_schema(settings.postgres_dir)
    unforced_by_design = {r.table for r in schema.of(RowSecurity) if r.enabled and not r.forced}
    tenant = sorted(({r.table for r in schema.of(RowSecurity)} | {p.table for p in schema.of(Policy)})
                    - unforced_by_design)
    rows = conn.execute("SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
                        "WHERE relname = ANY(%s) AND relkind IN ('r', 'p') "
                        "AND relnamespace = current_schema()::regnamespace", (tenant,)).fetchall()
    unforced = sorted(name for name, enabled, forced in rows if not (enabled and forced))
    exam.sample("postgres_tables_without_forced_rls", len(unforced))
    for name in unforced:
        exam.finding(f"table {name}", "holds tenant rows but does not force row-level security, so its owner reads "
                                      f"every tenant: ALTER TABLE {name} ENABLE ROW LEVEL SECURITY, "
                                      f"FORCE ROW LEVEL SECURITY (or migrate)", code="rls-not-forced",
                     store="postgres")


def audit_chain(settings: "Settings", exam: Examination) -> None:
    """audit_log: the hash chain walked from its first event (Appendix G.2)."""
    from ..compliance.audit_verify import stream_chain
    from ..compliance.ledger import postgres_session

    with postgres_session(settings) as conn:
        if conn.execute("SELECT to_regclass('audit_log')").fetchone()[0] is None:
            conn.rollback()
            return
        report = stream_chain(conn)
    exam.sample("audit_chain_intact", 0 if report.broken else 1)
    exam.sample("audit_events_verified", report.rows - report.break_count)
    exam.sample("audit_last_verified_event", report.last_event or 0)
    if report.broken:
        b = report.broken
        exam.finding(f"audit_log event {b.event_id}", f"at {b.created_at}: {b.problem}; the chain is broken: "
                                                      "run 'sovren-db audit verify' and treat it as an incident",
                     code="audit-chain", store="postgres")


def audit_checkpoint(settings: "Settings", limits: Thresholds, exam: Examination) -> None:
    """audit checkpoint: the age of the latest signed checkpoint of the chain's head (``audit seal``), and its
    signature when the key (SOVREN_AUDIT_SEAL_KEY) is here; not examined unless ``audit_checkpoints`` says where."""
    import os
    from datetime import datetime, timezone

    from ..compliance.audit_seal import KEY_ENV, Target, parse

    if not limits.audit_checkpoints:
        return
    target = Target(limits.audit_checkpoints, settings)
    key = os.environ.get(KEY_ENV, "").encode()
    checkpoint, signed = parse(target.latest(), key, str(target))
    age = (datetime.now(timezone.utc) - datetime.fromisoformat(checkpoint.sealed_at)).total_seconds()
    exam.sample("audit_checkpoint_age_seconds", age)
    if key and not signed:
        exam.finding("audit_log", f"the latest checkpoint in {target} does not carry a valid signature under the key "
                                  f"in {KEY_ENV}: treat it as an incident ('sovren-db audit verify --checkpoint')",
                     code="audit-checkpoint", store="postgres")
    if age > limits.audit_checkpoint_hours * 3600:
        exam.finding("audit_log", f"the latest checkpoint in {target} was sealed {age / 3600:.1f} h ago, above "
                                  f"audit_checkpoint_hours {limits.audit_checkpoint_hours:g}: run 'sovren-db audit "
                                  f"seal --to {limits.audit_checkpoints}' (and schedule it)",
                     code="audit-checkpoint", store="postgres")


def redis_keys(backend: "RedisBackend", declared: "RedisState", limits: Thresholds, exam: Examination) -> None:
    """keyspace sample: at most key_sample keys (SCAN) checked against the declared conventions."""
    from ..redis.audit import AuditOptions
    from ..redis.checks import run_audit

    report = run_audit(backend, declared, AuditOptions(max_keys=limits.key_sample, memory_every=0, examples=0))
    problems: Counter = Counter({"unknown": sum(t.count for t in report.unknown.values())})
    for stats in report.families.values():
        for problem, tally in stats.problems.items():
            problems[problem] += tally.count
    exam.sample("redis_keys_sampled", report.scanned)
    for problem, count in sorted(problems.items()):
        exam.sample("redis_keys_outside_conventions", count, problem=problem)
    if problems["unknown"]:
        prefixes = ", ".join(sorted(report.unknown)[:5])
        exam.finding("keyspace", f"{problems['unknown']} of {report.scanned} sampled keys match no declared family "
                                 f"(prefixes {prefixes}): declare them or remove their writer; "
                                 "'sovren-db redis audit' lists them", code="redis-unknown-keys", store="redis")
    broken = sum(count for problem, count in problems.items() if problem != "unknown")
    if broken:
        listed = ", ".join(f"{count} {problem}" for problem, count in sorted(problems.items()) if problem != "unknown" and count)
        exam.finding("keyspace", f"{broken} of {report.scanned} sampled keys break their family ({listed}): "
                                 "'sovren-db redis audit' names them", code="redis-conventions", store="redis")
