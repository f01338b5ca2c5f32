"""``sovren-db status``: where each store stands against the revision chain."""

from __future__ import annotations

import click
from rich.console import Console
from rich.table import Table

from .. import commands
from .options import format_option
from .output import emit


@click.command()
@format_option
@click.pass_context
def status(ctx: click.Context, fmt: str) -> None:
    """Show each store's revision, pending revisions and deferred steps (exit 1 if behind)."""
    outcome = commands.status(ctx.obj.settings)
    if fmt == "json":
        emit(outcome, fmt)
    else:
        _table(outcome)
    ctx.exit(outcome.exit_code)


def _table(outcome: commands.Outcome) -> None:
    table = Table(title=f"sovren-db status (head {outcome.data['head'] or 'none'})")
    for column in ("store", "revision", "state"):
        table.add_column(column)
    for store, info in outcome.data["stores"].items():
        table.add_row(store, _revision(info), _state(store, info))
    Console(width=120).print(table)
    for note in outcome.notes:
        click.echo(f"note: {note}", err=True)


def _revision(info: dict) -> str:
    revision = info.get("revision")
    if isinstance(revision, list):
        return ", ".join(revision) or "base"
    return revision or "-"


def _state(store: str, info: dict) -> str:
    if store == "postgres":
        pending = info["pending"]
        return f"{len(pending)} revision(s) pending" if pending else "at head"
    deferred = info["deferred_steps"]
    if not info["configured"]:
        return f"not configured, {len(deferred)} deferred step(s) waiting" if deferred else "not configured"
    if deferred:
        return f"{len(deferred)} deferred step(s) behind Postgres"
    if info.get("unaccounted_steps"):
        return f"{len(info['unaccounted_steps'])} step(s) of an interrupted revision to undo (run migrate)"
    return "in step with Postgres" if info.get("in_step", True) else "not where Postgres stands (run migrate)"
