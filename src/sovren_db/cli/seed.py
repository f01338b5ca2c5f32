"""``sovren-db seed``: load a seed profile into every store, in lockstep; exit 0 seeded, 2 refused or error."""

from __future__ import annotations

import datetime as dt
import json
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..seeds.engine import UNITS, SeedReport, seed as run_seed
from ..seeds.bounds import estimate
from ..seeds.plan import Plan, scaled_users
from .options import AppState, format_option

PROGRESS_FROM_USERS = 2_000   # below this a seed takes a second or two: no bars


class RichProgress:
    """The engine's progress tasks as rich bars on stderr."""

    def __init__(self, progress: Progress):
        self.bars = progress

    def task(self, label: str, total: int) -> Callable[[int], None]:
        task_id = self.bars.add_task(label, total=total)
        return lambda steps=1: self.bars.advance(task_id, steps)


class LineProgress:
    """Without a terminal (CI logs): one line on stderr every few seconds per task, with its rate."""

    EVERY = 5.0

    def __init__(self, items: dict[str, int], clock: Callable[[], float] = time.monotonic):
        self.items, self.clock = items, clock   # estimated rows, documents or keys per store

    def task(self, label: str, total: int) -> Callable[[int], None]:
        started = last = self.clock()
        done = 0

        def advance(steps: int = 1) -> None:
            nonlocal done, last
            done += steps
            now = self.clock()
            if now - last >= self.EVERY or done == total:
                last = now
                click.echo(self.line(label, done, total, now - started), err=True)
        return advance

    def line(self, label: str, done: int, total: int, seconds: float) -> str:
        rate = ""
        if label in self.items and seconds > 0:
            rate = f", about {self.items[label] * done / max(total, 1) / seconds:,.0f} {UNITS[label]}/s"
        return f"seed: {label}: {done:,} of {total:,} steps ({100 * done / max(total, 1):.0f}%){rate}, {seconds:.0f} s"


@contextmanager
def progress_bars(enabled: bool, items: dict[str, int] | None = None
                  ) -> Iterator[RichProgress | LineProgress | None]:
    if not enabled:
        yield None
        return
    if not sys.stderr.isatty():
        yield LineProgress(items or {})
        return
    bars = Progress(TextColumn("{task.description:<32}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("blocks"), TimeElapsedColumn(), console=Console(stderr=True), transient=True)
    with bars:
        yield RichProgress(bars)


@click.command()
@click.option("--profile", "-p", "profile", required=True, help="A profile in seeds/ (ci, dev, perf...).")
@click.option("--scale", type=click.FloatRange(min=0, min_open=True), default=1, show_default=True,
              help="Multiply the profile's users (and everything they own) by N; fractions allowed (0.01).")
@click.option("--seed", "seed_number", type=click.IntRange(min=0), default=None,
              help="Seed of the generators (default: the profile's). Same profile, scale and seed: same data.")
@click.option("--reset", is_flag=True, help="Delete previously seeded rows, documents and keys first.")
@click.option("--allow-protected", is_flag=True, help="Allow seeding a protected environment.")
@click.option("--validate-all", is_flag=True,
              help="Also generate and validate the documents and keys of declared stores that are not configured.")
@format_option
@click.pass_obj
def seed(state: AppState, profile: str, scale: float, seed_number: int | None, reset: bool, allow_protected: bool,
         validate_all: bool, fmt: str) -> None:
    """Seed PostgreSQL, MongoDB and Redis with one consistent, deterministic data set.

    Refused unless every configured store is at the head revision, and in a protected environment
    unless --allow-protected. Every document and key is validated before anything is written.
    Running it twice leaves the same data as once.
    """
    settings = state.settings
    from ..seeds.profiles import load_profile

    chosen = load_profile(settings.seeds_dir, profile)
    users = scaled_users(chosen, scale)
    items = estimate(Plan(chosen, scale, chosen.seed, dt.date.today()), settings.stores).items
    with progress_bars(users >= PROGRESS_FROM_USERS and (fmt == "text" or not sys.stderr.isatty()), items) as bars:
        report = run_seed(settings, profile, scale=scale, seed=seed_number, reset=reset,
                          allow_protected=allow_protected, progress=bars, validate_all=validate_all)
    if fmt == "json":
        click.echo(json.dumps({**report.to_json(), "notes": report.notes, "exit_code": 0}, indent=2, sort_keys=True))
        return
    print_summary(report)


def print_summary(report: SeedReport) -> None:
    console = Console(width=120, highlight=False)
    title = (f"sovren-db seed: profile {report.profile}, scale {report.scale}, seed {report.seed}, "
             f"anchored at {report.anchor[:7]}")
    table = Table(title=title, title_justify="left")
    for column, justify in (("store", "left"), ("loaded", "right"), ("what", "left"), ("state", "left"),
                            ("time", "right")):
        table.add_column(column, justify=justify)
    for store, result in report.stores.items():
        detail = ", ".join(f"{name} {count:,}" for name, count in result.counts.items() if count)
        removed = sum(result.deleted.values())
        state = result.state + (f" (reset removed {removed:,})" if removed else "")
        table.add_row(store, f"{result.total:,} {UNITS[store]}", detail or "-", state,
                      f"{result.seconds:.2f} s" if result.seconds else "-")
    validated = sum(report.validated.values())
    if validated:
        table.add_row("(validated)", f"{validated:,}", "documents and keys checked before writing", "ok",
                      f"{report.validation_seconds:.2f} s")
    console.print(table)
    verdict = "nothing to do: this seed is already loaded" if report.status == "already seeded" else "seeded"
    console.print(f"{verdict} in {report.seconds:.2f} s")
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
