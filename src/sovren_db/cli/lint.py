"""``sovren-db lint [--base REV]``: squawk on each revision's SQL, Mongo and Redis rules, cross-store links.

Exit code 0 when no finding stands, 1 with findings, 2 on error.
"""

from __future__ import annotations

import json

import click

from ..core.findings import render_findings
from ..lint import lint_revisions
from ..lint.rules import all_rules
from .options import format_option


@click.command()
@click.option("--base", metavar="REV",
              help="Lint the revisions after REV ('base': all); needs no server. "
                   "Default: the revisions the configured database has not applied.")
@click.option("--list-rules", is_flag=True, help="List sovren-db's own rule codes and exit.")
@format_option
@click.pass_context
def lint(ctx: click.Context, base: str | None, list_rules: bool, fmt: str) -> None:
    """Lint revisions before they merge; accept a finding in the revision file with
    '# sovren-db: accept CODE because REASON'."""
    if list_rules:
        _list_rules(fmt)
        return
    result = lint_revisions(ctx.obj.settings, base=base)
    text = render_findings(result.findings, fmt, notes=result.notes,
                           summary=result.summary() if fmt == "json" else None)
    if text:
        click.echo(text)
    ctx.exit(result.exit_code)


def _list_rules(fmt: str) -> None:
    rules = all_rules()
    if fmt == "json":
        click.echo(json.dumps([{"code": r.code, "name": r.name, "store": r.store, "family": r.family,
                                "severity": r.severity, "summary": r.summary} for r in rules], indent=2))
        return
    for r in rules:
        click.echo(f"{r.code}  {r.name:<26} {r.store:<12} {r.summary}" + (" (warning)" if r.severity != "error" else ""))
    click.echo("Postgres findings carry squawk's rule names (https://squawkhq.com/docs/rules).")
