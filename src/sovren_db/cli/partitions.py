"""``sovren-db partitions``: create the coming months' partitions of every declared PartitionRule.

Safe to schedule (cron, a CI job, a Kubernetes CronJob): it takes the same
advisory lock as ``migrate`` (so it never runs beside a migration), waits for
it and for table locks at most ``lock_timeout`` (retrying a few times), only
creates what is missing, and exits 0 whether or not anything was missing.
"""

from __future__ import annotations

import dataclasses
import json

import click
from sqlalchemy import text
from sqlalchemy.engine import Connection

from ..core.config import Settings
from ..core.errors import MigrationFailed
from ..core.runtime import ADVISORY_LOCK_KEY
from ..env import connect
from ..postgres.declared import load_schema
from ..postgres.safe import is_lock_timeout, retry_on_lock_timeout
from ..postgres.sql import ensure_partitions
from ..postgres.state import PartitionRule
from .options import format_option


def _existing(connection: Connection, names: list[str]) -> set[str]:
    rows = connection.execute(text("SELECT relname FROM pg_class WHERE relname = ANY(:names)"), {"names": names})
    return {r[0] for r in rows}


def ensure_rule(connection: Connection, settings: Settings, rule: PartitionRule) -> tuple[list[str], list[str]]:
    """Create the missing partitions of one rule in one short transaction.

    Returns the names created and the names that were already there.
    """
    connection.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": settings.lock_timeout})
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
    today = connection.execute(text("SELECT current_date")).scalar()
    wanted = rule.wanted_names(today)
    before = _existing(connection, wanted)
    connection.execute(text(ensure_partitions(rule)))
    after = _existing(connection, wanted)
    connection.commit()
    return [n for n in wanted if n not in before and n in after], [n for n in wanted if n in before]


def maintain(settings: Settings, months_ahead: int | None = None) -> dict[str, dict[str, list[str]]]:
    """Per partitioned table, the partitions created and the ones already there."""
    rules = load_schema(settings.postgres_dir).of(PartitionRule)
    if months_ahead is not None:
        rules = [dataclasses.replace(r, months_ahead=months_ahead) for r in rules]
    engine, connection = connect(settings)
    report: dict[str, dict[str, list[str]]] = {}
    try:
        for rule in rules:
            def attempt(rule: PartitionRule = rule) -> tuple[list[str], list[str]]:
                try:
                    return ensure_rule(connection, settings, rule)
                except Exception:
                    connection.rollback()
                    raise

            try:
                created, present = retry_on_lock_timeout(attempt, attempts=3)
            except Exception as exc:
                if not is_lock_timeout(exc):
                    raise
                raise MigrationFailed(f"Partitions of {rule.table} were not created: the migration lock or a "
                                      f"lock on {rule.table} stayed taken beyond lock_timeout "
                                      f"({settings.lock_timeout}) three times; run it again later.") from None
            report[rule.table] = {"created": created, "present": present}
    finally:
        connection.close()
        engine.dispose()
    return report


@click.command()
@click.option("--months-ahead", type=click.IntRange(0, 120), default=None,
              help="Create this many months ahead instead of each rule's months_ahead.")
@format_option
@click.pass_context
def partitions(ctx: click.Context, months_ahead: int | None, fmt: str) -> None:
    """Create this month's and the next months' partitions (and the default one) of every declared
    partitioned table. Idempotent and safe to schedule; exit 0 when every partition is there."""
    report = maintain(ctx.obj.settings, months_ahead)
    if fmt == "json":
        click.echo(json.dumps({"tables": report, "exit_code": 0}, indent=2, sort_keys=True))
        return
    for table, parts in report.items():
        created = ", ".join(parts["created"])
        line = f"{table}: created {created}" if created else f"{table}: nothing to create"
        if fmt == "github" and created:
            line = f"::notice::{line}"
        click.echo(f"{line} ({len(parts['present'])} already present)")
    if not report:
        click.echo("no partitioned tables are declared")
