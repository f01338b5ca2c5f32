"""``sovren-db mongo``: validate documents offline, show collection declarations, diff a server.

- ``mongo validate --collection NAME FILE``: exit 1 when a document is rejected, 2 on bad input;
- ``mongo show [NAME...] [--live]``: the declared (or live) state as JSON;
- ``mongo diff``: what a revision would change in MongoDB; exit 1 when anything differs.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ..core.config import Settings
from ..core.findings import Finding, render_findings
from ..mongo.declared import load_declared
from ..mongo.diff import diff_states, unsharded_note
from ..mongo.extjson import read_documents
from ..mongo.state import DatabaseState
from ..mongo.validate import DocumentValidator, Rejection, validator_schema
from .options import format_option, pass_settings


@click.group()
def mongo() -> None:
    """MongoDB collections: validators, indexes, shard keys and zones."""


def _declared(settings: Settings) -> DatabaseState:
    return load_declared(settings.mongo_dir, display_root=settings.root)


@mongo.command("validate")
@click.option("--collection", "-c", required=True, help="The declared collection whose $jsonSchema applies.")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@format_option
@pass_settings
def validate(settings: Settings, collection: str, file: Path, fmt: str) -> None:
    """Check the documents of FILE (a JSON array or JSON lines, Extended JSON) offline,
    as MongoDB would against the collection's validator."""
    spec = _declared(settings).collections.get(collection)
    if spec is None:
        raise click.BadParameter(
            f"no collection {collection!r} is declared in {settings.mongo_dir}", param_hint="--collection"
        )
    documents = list(read_documents(file))
    schema = validator_schema(spec.validator)
    rejections = DocumentValidator(schema).rejections(documents) if schema else []
    notes = [f"{len(documents)} document(s) checked against {collection}: {len(rejections)} rejected"]
    if not schema:
        notes.append(f"{collection} declares no $jsonSchema validator: MongoDB accepts every document")
    summary = {"collection": collection, "documents": len(documents), "rejected": len(rejections)}
    click.echo(render_findings([_rejected(file, r) for r in rejections], fmt, notes=notes, summary=summary))
    raise SystemExit(1 if rejections else 0)


def _rejected(file: Path, rejection: Rejection) -> Finding:
    return Finding(
        store="mongo",
        object=f"document {rejection.index}",
        message="; ".join(rejection.reasons),
        code="rejected",
        file=str(file),
        line=rejection.line,
    )


@mongo.command("show")
@click.argument("names", nargs=-1)
@click.option("--live", is_flag=True, help="Show what the server holds instead of the declarations.")
@pass_settings
def show(settings: Settings, names: tuple[str, ...], live: bool) -> None:
    """Print the declared (or live) state of the collections NAMES (default: all) as JSON."""
    state = _live(settings) if live else _declared(settings)
    unknown = [n for n in names if n not in state.collections]
    if unknown:
        raise click.BadParameter(
            f"no collection {unknown[0]!r} {'on the server' if live else 'is declared'}", param_hint="NAMES"
        )
    chosen = names or tuple(state.names())
    click.echo(json.dumps({n: state.collections[n].to_json() for n in chosen}, indent=2))


@mongo.command("diff")
@format_option
@pass_settings
def diff(settings: Settings, fmt: str) -> None:
    """Compare the declarations with the server; exit 1 when they differ."""
    declared = _declared(settings)
    live = _live(settings)
    ops = diff_states(declared, live)
    findings = [Finding("mongo", *op.drift()) for op in ops]
    notes = [n for n in [unsharded_note(declared, live)] if n]
    if fmt == "text":
        notes = [f"plan: {op.describe()}" for op in ops] + notes
        if not ops:
            notes.insert(0, "no drift: every declared collection matches the server")
    click.echo(render_findings(findings, fmt, notes=notes, summary={"operations": len(ops)}))
    raise SystemExit(1 if ops else 0)


def _live(settings: Settings) -> DatabaseState:
    from ..mongo.backend import MongoBackend

    backend = MongoBackend(settings)
    backend.connect()
    try:
        return backend.introspect()
    finally:
        backend.close()
