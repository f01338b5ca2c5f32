"""``sovren-db revision``."""

from __future__ import annotations

import click

from .. import commands
from .options import format_option
from .output import emit


@click.command()
@click.option("-m", "--message", required=True, help="What the revision does.")
@click.option("--autogenerate", is_flag=True, help="Fill it from the differences between declarations and servers.")
@format_option
@click.pass_context
def revision(ctx: click.Context, message: str, autogenerate: bool, fmt: str) -> None:
    """Write a new revision holding Postgres, Mongo and Redis operations."""
    outcome = commands.revision(ctx.obj.settings, message, autogenerate=autogenerate)
    emit(outcome, fmt)
    ctx.exit(outcome.exit_code)
