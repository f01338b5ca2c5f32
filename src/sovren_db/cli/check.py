"""``sovren-db check``: drift in every store; exit 0 clean, 1 drift, 2 error."""

from __future__ import annotations

import logging

import click

from .. import commands
from .options import format_option
from .output import emit


@click.command()
@click.option("--data", is_flag=True, help="Also count stored documents and keys that break their declarations.")
@click.option("--exact", is_flag=True, help="Run Alembic's comparison on every table, even those it already found "
                                            "in step at the same declaration and catalog (same answer, slower).")
@format_option
@click.pass_context
def check(ctx: click.Context, data: bool, exact: bool, fmt: str) -> None:
    """Compare every declared store with the live one and report each difference."""
    if ctx.obj.debug:  # what check could not read or keep (its verdicts file): said on stderr, never on stdout
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("note: %(message)s"))
        logger = logging.getLogger("sovren_db.check")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    outcome = commands.check(ctx.obj.settings, data=data, exact=exact)
    compared = ([f"{'no drift' if not outcome.findings else f'{len(outcome.findings)} finding(s)'}; "
                 "each store's declarations:", *commands.compared_lines(outcome.data.get("compared", {}))])
    if fmt == "text" and not outcome.findings:
        outcome.lines = compared
    emit(outcome, fmt)
    if fmt == "text" and outcome.findings:
        click.echo("\n".join(compared))
    ctx.exit(outcome.exit_code)
