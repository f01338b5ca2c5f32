"""Printing an Outcome in the chosen format."""

from __future__ import annotations

import json

import click

from ..commands import Outcome
from ..core.findings import render_findings


def emit(outcome: Outcome, fmt: str = "text") -> None:
    if outcome.findings or fmt != "text" and not outcome.lines:
        text = render_findings(outcome.findings, fmt, notes=outcome.notes if fmt != "text" else (),
                               summary={"exit_code": outcome.exit_code, **outcome.data} if fmt == "json" else None)
        if text:
            click.echo(text)
        if fmt == "text":
            _notes(outcome)
        return
    if fmt == "json":
        click.echo(json.dumps({**outcome.data, "notes": outcome.notes, "exit_code": outcome.exit_code},
                              indent=2, sort_keys=True, default=str))
        return
    for line in outcome.lines:
        click.echo(line)
    _notes(outcome)


def _notes(outcome: Outcome) -> None:
    for note in outcome.notes:
        click.echo(f"note: {note}", err=True)
