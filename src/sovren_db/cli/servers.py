"""``sovren-db up | down | env``."""

from __future__ import annotations

import click

from ..core.config import STORES, load_settings
from ..core.redacted_io import echo_secret
from ..core.urls import redact
from ..services.manager import describe, down as stop_servers, env_lines, up as start_servers
from .options import AppState


@click.command()
@click.option("--store", "stores", multiple=True, type=click.Choice(STORES), help="Only these stores (repeatable).")
@click.option("--mongo-sharded", is_flag=True,
              help="MongoDB as a sharded cluster (config server, one shard per declared zone, a mongos) "
                   "from mongod and mongos binaries, so shard keys and zones apply.")
@click.pass_obj
def up(state: AppState, stores: tuple[str, ...], mongo_sharded: bool) -> None:
    """Start throwaway local servers (data under .sovren/) and print their URLs."""
    settings = state.settings
    reports = start_servers(settings, stores or STORES, mongo_sharded=mongo_sharded)
    for report in reports:
        click.echo(describe(report))
    missing = [r for r in reports if r.state == "unavailable"]
    settings = load_settings(settings.root, strict=state.strict)
    for line in env_lines(settings):
        click.echo(redact(line))
    click.echo("run 'eval \"$(sovren-db env)\"' to export these URLs with their passwords")
    if missing and settings.strict:
        raise click.exceptions.Exit(2)


@click.command()
@click.pass_obj
def down(state: AppState) -> None:
    """Stop exactly the servers 'up' started, by PID."""
    reports = stop_servers(state.settings)
    for report in reports:
        click.echo(describe(report))
    if not reports:
        click.echo("no servers recorded in .sovren/servers.json")


@click.command()
@click.pass_obj
def env(state: AppState) -> None:
    """Print export lines for the configured server URLs, passwords included (the one command that does)."""
    click.echo("# sovren-db env: the one command that prints passwords; eval it, do not log it", err=True)
    for line in env_lines(state.settings):
        echo_secret(line)
