"""``sovren-db migrate | downgrade | plan``."""

from __future__ import annotations

import click

from .. import commands
from .options import AppState, format_option
from .output import emit


@click.command()
@click.argument("revision", default="head")
@click.option("--allow-destructive", is_flag=True,
              help="Allow destructive steps (drops, deletes) in a protected environment.")
@click.option("--resync", "resync", multiple=True, type=click.Choice(["mongo", "redis"]),
              help="First run every step of the chain again on this store (repeatable): for a store "
                   "that lost part of its data but kept its position.")
@click.option("--redis-batch", type=click.IntRange(min=1), default=None,
              help="Keys per SCAN batch for Redis key moves and TTL backfills (overrides the revision's batch).")
@click.option("--redis-rate", type=click.FloatRange(min=1), default=None,
              help="At most this many keys a second for Redis key moves and TTL backfills (overrides the revision's rate).")
@click.option("--cancel-blockers-after", "cancel_after", metavar="DURATION",
              help="Cancel a session that keeps a lock migrate waits for this long (e.g. 30s); "
                   "an idle transaction's session is ended.")
@click.option("--allow-protected", is_flag=True,
              help="Allow --cancel-blockers-after in a protected environment.")
@click.option("--wait-replicas", "wait_replicas", type=click.FloatRange(min=0), default=None, is_flag=False,
              flag_value=60.0, metavar="[SECONDS]",
              help="After each revision, wait (at most SECONDS, default 60) until every replica replayed it; "
                   "prints the lag seen.")
@format_option
@click.pass_obj
def migrate(state: AppState, revision: str, allow_destructive: bool, resync: tuple[str, ...],
            redis_batch: int | None, redis_rate: float | None, cancel_after: str | None,
            allow_protected: bool, wait_replicas: float | None, fmt: str) -> None:
    """Apply revisions up to REVISION (default head) to every store, in lockstep."""
    pace = {k: v for k, v in (("batch", redis_batch), ("rate", redis_rate)) if v is not None}
    emit(commands.migrate(state.settings, revision, allow_destructive=allow_destructive, resync=resync,
                          redis_pace=pace, cancel_blockers_after=cancel_after,
                          allow_protected=allow_protected, wait_replicas=wait_replicas), fmt)


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("revision")
@click.option("--allow-protected", is_flag=True, help="Allow a downgrade in a protected environment.")
@format_option
@click.pass_obj
def downgrade(state: AppState, revision: str, allow_protected: bool, fmt: str) -> None:
    """Revert revisions down to REVISION ('base' for all, '-1' for one)."""
    emit(commands.downgrade(state.settings, revision, allow_protected=allow_protected), fmt)


@click.command()
@click.argument("revision", default="head")
@format_option
@click.pass_context
def plan(ctx: click.Context, revision: str, fmt: str) -> None:
    """Show what migrate would run, Postgres SQL included, without running it (exit 1 if pending)."""
    outcome = commands.plan(ctx.obj.settings, revision)
    emit(outcome, fmt)
    ctx.exit(outcome.exit_code)
