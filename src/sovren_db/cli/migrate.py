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
@click.option("--wait-replicas", "wait_replicas", type=click.FloatRange(min=0), default=None, is_flag=False,
              flag_value=60.0, metavar="[SECONDS]",
              help="After each revision, wait (at most SECONDS, default 60) until every replica replayed it; "
                   "prints the lag seen.")
@format_option
@click.pass_obj
def migrate(state: AppState, revision: str, allow_destructive: bool, resync: tuple[str, ...],
            wait_replicas: float | None, fmt: str) -> None:
    """Apply revisions up to REVISION (default head) to every store, in lockstep."""
    emit(commands.migrate(state.settings, revision, allow_destructive=allow_destructive, resync=resync,
                          wait_replicas=wait_replicas), fmt)


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
