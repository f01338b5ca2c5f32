"""``sovren-db redis``: the keyspace audit, the declared families, the published registry, erasure."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Iterator

import click
from rich.console import Console
from rich.table import Table

from ..core.config import Settings
from ..core.findings import render_findings
from ..redis.audit import AuditOptions, AuditReport
from ..redis.backend import RedisBackend
from ..redis.checks import audit_findings, audit_summary, drift_findings, run_audit
from ..redis.declared import load_declarations
from ..redis.erase import by_field, erase_field_entries, erase_subject, subject_families
from ..redis.live import registry_state
from ..redis.patterns import printable, printable_key
from ..redis.state import RedisState
from .options import exit_with, format_option, pass_settings


class SampleType(click.ParamType):
    """``100000`` (stop after that many keys) or ``5%`` / ``0.05`` (inspect that fraction)."""

    name = "N|FRACTION"

    def convert(self, value, param, ctx):  # noqa: ANN001 - click's signature
        text = str(value).strip()
        try:
            if text.endswith("%"):
                fraction = float(text[:-1]) / 100
            elif "." in text:
                fraction = float(text)
            else:
                number = int(text)
                if number <= 0:
                    raise ValueError
                return ("keys", number)
        except ValueError:
            self.fail(f"{value!r} is neither a number of keys nor a fraction such as 5% or 0.05", param, ctx)
        if not 0 < fraction <= 1:
            self.fail(f"{value!r}: a fraction must be above 0 and at most 100%", param, ctx)
        return ("fraction", fraction)


@contextmanager
def connected(settings: Settings) -> Iterator[RedisBackend]:
    backend = RedisBackend(settings)
    backend.connect()
    try:
        yield backend
    finally:
        backend.close()


@click.group()
def redis() -> None:
    """Redis key conventions: audit the keyspace, list families, show the registry."""


@redis.command()
@click.option("--sample", type=SampleType(), default=None,
              help="Stop after N keys, or inspect only a fraction of them (5% or 0.05).")
@click.option("--rate", "--max-keys-per-second", "rate", type=click.FloatRange(min=1), default=None,
              help="Read at most this many keys per second (sleeps between SCAN batches).")
@click.option("--count", type=click.IntRange(10, 10000), default=AuditOptions().count, show_default=True,
              help="SCAN COUNT: keys the server looks at per step (keeps each step short).")
@click.option("--memory-every", type=click.IntRange(min=0), default=AuditOptions().memory_every, show_default=True,
              help="MEMORY USAGE on every Nth inspected key (0: never).")
@format_option
@pass_settings
def audit(settings: Settings, sample, rate: float | None, count: int, memory_every: int, fmt: str) -> None:
    """Check every key against its family (type, TTL, size), report unknown keys, registry and server drift.

    Exit code 0 when clean, 1 with findings, 2 on error.
    """
    kind, amount = sample or (None, None)
    options = AuditOptions(count=count, max_keys=amount if kind == "keys" else None,
                           fraction=amount if kind == "fraction" else 1.0, rate=rate, memory_every=memory_every)
    declared = load_declarations(settings.redis_dir)
    with connected(settings) as backend:
        findings = drift_findings(settings, declared, backend)
        report = run_audit(backend, declared, options)
    findings += audit_findings(settings, declared, report)
    if fmt == "text":
        _print_report(report)
    notes = [_summary_line(report)]
    click.echo(render_findings(findings, fmt, notes=notes, summary={"audit": audit_summary(report)}))
    exit_with(1 if findings else 0)


def _summary_line(report: AuditReport) -> str:
    scope = "" if report.complete else " (sampled: stopped early)"
    return (f"Audited {report.scanned:,} keys on {report.nodes} node(s) in {report.elapsed:.1f} s "
            f"({report.keys_per_second:,.0f} keys/s){scope}.")


def _print_report(report: AuditReport) -> None:
    table = Table("family", "keys", "inspected", "problems", "memory (est.)", box=None, pad_edge=False)
    for name, stats in sorted(report.families.items()):
        if not stats.keys:
            continue
        problems = ", ".join(f"{p} {t.count}" for p, t in stats.problems.items()) or "-"
        memory = f"{stats.estimated_bytes:,} B" if stats.estimated_bytes is not None else "-"
        table.add_row(name, f"{stats.keys:,}", f"{stats.inspected:,}", problems, memory)
    for prefix, tally in sorted(report.unknown.items(), key=lambda item: -item[1].count):
        table.add_row(f"(unknown) {prefix}", f"{tally.count:,}", "-", "no family", "-")
    _console().print(table)


def _console() -> Console:
    return Console(file=sys.stdout, width=160, highlight=False, soft_wrap=True)


@redis.command()
@format_option
@pass_settings
def families(settings: Settings, fmt: str) -> None:
    """List the declared key families, channels and server expectations (no server needed)."""
    declared = load_declarations(settings.redis_dir)
    if fmt != "text":
        click.echo(json.dumps(_state_json(declared), indent=2, sort_keys=True))
        return
    table = Table("family", "pattern", "type", "TTL", "PII subject", "limit", "owner", box=None, pad_edge=False)
    for family in declared.families.values():
        limit = family.max_elements or (f"{family.max_bytes} B" if family.max_bytes else "-")
        table.add_row(family.name + (" (foreign)" if family.foreign else ""), printable(family.pattern),
                      family.type, family.ttl.describe(), family.subject or "-", str(limit), family.owner or "-")
    console = _console()
    console.print(table)
    for channel in declared.channels.values():
        subject = f" (PII: {channel.subject})" if channel.pii else ""
        console.print(f"channel {channel.name}: {printable(channel.pattern)}{subject}")
    for name, value in sorted(declared.server.items()):
        console.print(f"server {name} = {value}")


def _state_json(state: RedisState) -> dict:
    return {"families": {n: f.to_json() for n, f in state.families.items()},
            "channels": {n: c.to_json() for n, c in state.channels.items()},
            "server": dict(state.server)}


@redis.command()
@format_option
@pass_settings
def registry(settings: Settings, fmt: str) -> None:
    """Show the registry published in Redis and how it compares with the declarations.

    Exit code 0 when they agree, 1 when they differ.
    """
    declared = load_declarations(settings.redis_dir)
    with connected(settings) as backend, backend.reporting_errors():
        published = registry_state(backend.registry())
    rows = _registry_rows(declared, published)
    if fmt == "text":
        for kind, name, status in rows:
            click.echo(f"{kind} {name}: {status}")
        if not rows:
            click.echo("Nothing is declared or published.")
    else:
        click.echo(json.dumps({"published": _state_json(published),
                               "entries": [{"kind": k, "name": n, "status": s} for k, n, s in rows]},
                              indent=2, sort_keys=True))
    exit_with(0 if all(status == "published" for _, _, status in rows) else 1)


def _registry_rows(declared: RedisState, published: RedisState) -> list[tuple[str, str, str]]:
    rows = []
    for kind, mine, theirs in (("family", declared.families, published.families),
                               ("channel", declared.channels, published.channels)):
        for name in sorted(set(mine) | set(theirs)):
            if name not in theirs:
                status = "declared, not published (run sovren-db migrate)"
            elif name not in mine:
                status = "published, no longer declared"
            else:
                status = "published" if mine[name] == theirs[name] else "published with another declaration"
            rows.append((kind, name, status))
    return rows


@redis.command()
@click.argument("subject")
@click.argument("value")
@click.option("--dry-run", is_flag=True, help="List the keys that would be deleted; delete nothing.")
@pass_settings
def erase(settings: Settings, subject: str, value: str, dry_run: bool) -> None:
    """Delete every key holding personal data of one data subject (GDPR erasure, Appendix G.1).

    SUBJECT is a subject placeholder (user_id); VALUE its value. Covers every PII family whose subject is SUBJECT.
    """
    declared = load_declarations(settings.redis_dir)
    with connected(settings) as backend, backend.reporting_errors():
        keys = erase_subject(backend, declared, subject, value, dry_run=dry_run)
        entries = sum(erase_field_entries(backend, family, value, dry_run=dry_run)
                      for family in subject_families(declared, subject) if by_field(family, subject))
    for key in keys:
        click.echo(printable_key(key))
    click.echo(f"{'Would delete' if dry_run else 'Deleted'} {len(keys)} key(s) and {entries} entries or values "
               f"in shared keys of {subject} {value}.", err=True)
