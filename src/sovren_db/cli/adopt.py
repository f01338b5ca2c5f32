"""``sovren-db inspect``, ``baseline`` and ``stamp``: adopting databases that already exist."""

from __future__ import annotations

from pathlib import Path

import click

from .. import commands
from .options import format_option
from .output import emit
from .redis_cmd import SampleType


def _emit(outcome: commands.Outcome, fmt: str) -> None:
    if fmt == "text" and outcome.findings:  # what was written, then what a person must look at
        for line in outcome.lines:
            click.echo(line)
    emit(outcome, fmt)


@click.command()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write into DIR/postgres/ instead of the project's folders.")
@click.option("--sample", type=SampleType(), default=None,
              help="Redis: probe only a fraction of the scanned keys (10% or 0.1).")
@click.option("--rate", type=click.FloatRange(min=1), default=None,
              help="Redis: scan at most this many keys per second (sleeps between SCAN batches).")
@click.option("--infer", type=click.IntRange(min=0), default=0, metavar="N",
              help="MongoDB: write a $jsonSchema inferred from N sampled documents where a collection has none.")
@click.option("--force", is_flag=True, help="Overwrite declarations already in the destination folders.")
@format_option
@click.pass_context
def inspect(ctx: click.Context, out: Path | None, sample, rate: float | None, infer: int, force: bool,
            fmt: str) -> None:
    """Write declarations read from the live servers (into the project or --out DIR)."""
    kind, amount = sample or ("fraction", 1.0)
    if kind != "fraction":
        raise click.BadParameter("give a fraction (10% or 0.1): inspect scans every key", param_hint="--sample")
    outcome = commands.inspect(ctx.obj.settings, out=out, fraction=amount, rate=rate, infer=infer,
                                 force=force)
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
