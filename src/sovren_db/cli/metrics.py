"""``sovren-db metrics`` (the Prometheus text once) and ``sovren-db metrics serve`` (/metrics over HTTP)."""

from __future__ import annotations

import click

from .. import commands


@click.group(invoke_without_command=True)
@click.pass_context
def metrics(ctx: click.Context) -> None:
    """Print the declared schema's health and H.4's measures in the Prometheus text format, once."""
    if ctx.invoked_subcommand is None:
        click.echo(commands.metrics(ctx.obj.settings).decode(), nl=False)


@metrics.command()
@click.option("--bind", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=9847, show_default=True)
@click.option("--interval", type=click.FloatRange(min=1), default=15.0, show_default=True,
              help="Seconds between the servers' collections (postgres, redis, mongo).")
@click.option("--expensive-interval", type=click.FloatRange(min=1), default=60.0, show_default=True,
              help="Seconds between schema collections (drift, audit chain, keyspace sample).")
@click.pass_context
def serve(ctx: click.Context, bind: str, port: int, interval: float, expensive_interval: float) -> None:
    """Serve /metrics; collections run in the background and scrapes read their cache."""
    from ..metrics.serve import serve as run

    def ready(bound: int) -> None:
        click.echo(f"serving http://{bind}:{bound}/metrics (collections every {interval:g} s, "
                   f"schema every {expensive_interval:g} s)", err=True)

    run(ctx.obj.settings, bind=bind, port=port, interval=interval, expensive_interval=expensive_interval,
        on_ready=ready)
