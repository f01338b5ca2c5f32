"""Redis findings for ``sovren-db check --data`` and ``sovren-db redis audit``.

``check_findings`` gives what operations cannot say: the keyspace audit.
Drift (registry, server configuration, consumer groups) reaches ``check`` as
the operations of the autogenerate comparator (:mod:`.plugin`);
``drift_findings`` reads the same diff as findings for ``redis audit``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.findings import Finding
from .audit import AuditOptions, AuditReport, FamilyStats, KeyspaceAudit
from .declared import load_declarations
from .diff import diff_redis
from .live import read_live
from .ops import CreateGroupOp, SetConfigOp
from .moves import Move, Pace, keys_follow, old_key_batches
from .patterns import parse_pattern, printable_key
from .state import FRAMEWORK_FAMILIES, KeyFamily, RedisState, format_duration

if TYPE_CHECKING:
    from ..core.config import Settings
    from .backend import RedisBackend

PROBLEM_CODES = {
    "wrong_type": "redis-wrong-type",
    "missing_ttl": "redis-missing-ttl",
    "ttl_above_max": "redis-ttl-bounds",
    "unexpected_ttl": "redis-unexpected-ttl",
    "oversize": "redis-oversize",
    "missing_group": "redis-missing-group",
}
UNKNOWN_CODE = "redis-unknown-keys"
STRANDED_CODE = "redis-stranded-keys"


def check_findings(settings: "Settings", backend: "RedisBackend", *, data: bool,
                   options: AuditOptions | None = None) -> list[Finding]:
    """With ``data``: the keyspace audit's findings (wrong type, TTL, size, unknown keys)."""
    if not data:
        return []
    declared = load_declarations(settings.redis_dir)
    findings = audit_findings(settings, declared, run_audit(backend, declared, options or AuditOptions()))
    return stranded_findings(settings, declared, backend) + findings


def stranded_findings(settings: "Settings", declared: RedisState, backend: "RedisBackend") -> list[Finding]:
    """Keys left under the pattern a declared family was renamed from (outside an overlap): drift."""
    findings = []
    for family in declared.families.values():
        if not family.renamed_from or family.overlap:
            continue
        with backend.reporting_errors():
            keys = stranded_keys(backend, family)
        if keys:
            shown = ", ".join(printable_key(k) for k in keys[:3])
            findings.append(Finding(
                "redis", f"key family {family.name} ({family.pattern})",
                f"{keys_follow(len(keys))} the old pattern {family.renamed_from} (stranded: "
                f"written under the old name during or after its move), e.g. {shown}",
                code=STRANDED_CODE, file=_source(settings, declared, f"families.{family.name}")))
    return findings


def stranded_keys(backend: "RedisBackend", family: KeyFamily) -> list[bytes]:
    move = Move(parse_pattern(family.renamed_from), family.parsed)
    return [old for _, pairs in old_key_batches(backend, move, Pace(1000)) for old, _ in pairs]


def drift_findings(settings: "Settings", declared: RedisState, backend: "RedisBackend") -> list[Finding]:
    findings = []
    with backend.reporting_errors():
        live = read_live(backend, declared)
    for op in diff_redis(declared, live):
        obj, message = op.drift()
        code = ("redis-config" if isinstance(op, SetConfigOp)
                else "redis-group" if isinstance(op, CreateGroupOp) else "redis-registry")
        findings.append(Finding("redis", obj, message, code=code, file=_source(settings, declared, _op_entry(op))))
    return findings


def run_audit(backend: "RedisBackend", declared: RedisState, options: AuditOptions) -> AuditReport:
    families = [*FRAMEWORK_FAMILIES, *declared.families.values()]
    with backend.reporting_errors():
        return KeyspaceAudit(families, options).run(backend.masters())


def audit_findings(settings: "Settings", declared: RedisState, report: AuditReport) -> list[Finding]:
    findings = []
    for stats in report.families.values():
        file = _source(settings, declared, f"families.{stats.family.name}")
        for problem, tally in stats.problems.items():
            if problem == "missing_group" and stats.family.fixed_key is not None:
                continue  # the drift already says it (redis-group), with the operation that fixes it
            findings.append(Finding(
                "redis", f"key family {stats.family.name} ({stats.family.pattern})",
                f"{tally.count} of {stats.inspected} inspected keys {_problem_text(problem, stats)}, "
                f"e.g. {', '.join(tally.examples)}",
                code=PROBLEM_CODES[problem], file=file))
    for prefix, tally in sorted(report.unknown.items(), key=lambda item: -item[1].count):
        verb = "key matches" if tally.count == 1 else "keys match"
        findings.append(Finding("redis", f"keys {prefix}", f"{tally.count} {verb} no declared family, "
                                f"e.g. {', '.join(tally.examples)}", code=UNKNOWN_CODE))
    return findings


def _problem_text(problem: str, stats: FamilyStats) -> str:
    family = stats.family
    return {
        "wrong_type": f"are not of type {family.type}",
        "missing_ttl": "have no TTL although one is required",
        "ttl_above_max": f"have a TTL above the maximum of {format_duration(family.ttl.max)}",
        "unexpected_ttl": "have a TTL although keys of this family must not expire",
        "oversize": f"exceed the size limit ({_limit(stats)})",
        "missing_group": f"lack a declared consumer group ({', '.join(family.groups)})",
    }[problem]


def _limit(stats: FamilyStats) -> str:
    family = stats.family
    limits = [f"{family.max_elements} elements"] if family.max_elements else []
    return ", ".join(limits + ([f"{family.max_bytes} bytes"] if family.max_bytes else []))


def _source(settings: "Settings", declared: RedisState, entry: str | None) -> str | None:
    """The declaration file of ``entry`` ("families.session"), relative to the project root."""
    path = declared.sources.get(entry) if entry else None
    if path is None:
        return None
    try:
        return str(Path(path).resolve().relative_to(settings.root))
    except ValueError:
        return str(path)


def _op_entry(op: object) -> str | None:
    family = getattr(op, "family", None) or getattr(op, "new", None)
    if family:
        return f"families.{family['name']}"
    channel = getattr(op, "channel", None)
    return f"channels.{channel['name']}" if channel else None


def audit_summary(report: AuditReport) -> dict[str, Any]:
    """The audit's numbers, for ``--format json``."""
    return {
        "scanned": report.scanned, "inspected": report.inspected, "nodes": report.nodes,
        "complete": report.complete, "seconds": round(report.elapsed, 3),
        "keys_per_second": round(report.keys_per_second),
        "families": {name: {"keys": s.keys, "inspected": s.inspected, "estimated_bytes": s.estimated_bytes,
                            **{p: t.count for p, t in s.problems.items()}}
                     for name, s in report.families.items()},
        "unknown": {prefix: {"keys": t.count, "examples": t.examples} for prefix, t in report.unknown.items()},
    }
