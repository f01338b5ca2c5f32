"""``sovren-db doctor``: exit 0 healthy, 1 a threshold crossed, 2 a store could not be examined."""

from __future__ import annotations

import click

from .. import commands
from .options import format_option
from .output import emit


@click.command()
@format_option
@click.pass_context
def doctor(ctx: click.Context, fmt: str) -> None:
    """Examine every store against Sovren's thresholds ([tool.sovren-db.doctor]) and name each fix."""
    outcome = commands.doctor(ctx.obj.settings)
    emit(outcome, fmt)
    ctx.exit(outcome.exit_code)
