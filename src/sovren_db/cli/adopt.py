"""``sovren-db inspect``, ``baseline`` and ``stamp``: adopting databases that already exist."""

from __future__ import annotations

from pathlib import Path

import click

from .. import commands
from .options import format_option
from .output import emit


def _emit(outcome: commands.Outcome, fmt: str) -> None:
    if fmt == "text" and outcome.findings:  # what was written, then what a person must look at
        for line in outcome.lines:
            click.echo(line)
    emit(outcome, fmt)


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write into DIR/postgres/ instead of the project's folders.")
@format_option
@click.pass_context
def inspect(ctx: click.Context, out: Path | None, fmt: str) -> None:
    """Write declarations read from the live servers (into the project or --out DIR)."""
    outcome = commands.inspect(ctx.obj.settings, out=out)
    _emit(outcome, fmt)
    ctx.exit(outcome.exit_code)


@click.command()
@click.option("-m", "--message", default="baseline", show_default=True, help="The revision's message.")
@format_option
@click.pass_context
def baseline(ctx: click.Context, message: str, fmt: str) -> None:
    """Write the first revision of the chain, equal to the declarations."""
    outcome = commands.baseline(ctx.obj.settings, message)
    _emit(outcome, fmt)
    ctx.exit(outcome.exit_code)


@click.command()
@click.argument("revision")
@format_option
@click.pass_context
def stamp(ctx: click.Context, revision: str, fmt: str) -> None:
    """Record REVISION as applied in every store without running it, adopting matching policies and functions."""
    outcome = commands.stamp(ctx.obj.settings, revision)
    _emit(outcome, fmt)
    ctx.exit(outcome.exit_code)
