"""The ``sovren-db`` group. Commands live one per module and load lazily."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

import click

from ..core.errors import SovrenError
from ..core.urls import redact_text
from .options import AppState

# command name -> "module:attribute", imported only when that command runs
COMMANDS = {
    "up": "sovren_db.cli.servers:up",
    "down": "sovren_db.cli.servers:down",
    "env": "sovren_db.cli.servers:env",
    "migrate": "sovren_db.cli.migrate:migrate",
    "downgrade": "sovren_db.cli.migrate:downgrade",
    "plan": "sovren_db.cli.migrate:plan",
    "status": "sovren_db.cli.status:status",
    "check": "sovren_db.cli.check:check",
    "revision": "sovren_db.cli.revision:revision",
    "lint": "sovren_db.cli.lint:lint",
    "partitions": "sovren_db.cli.partitions:partitions",
    "seed": "sovren_db.cli.seed:seed",
    "erase": "sovren_db.cli.compliance:erase",
    "audit": "sovren_db.cli.compliance:audit",
    "rotate-key": "sovren_db.cli.compliance:rotate_key",
    "snapshot": "sovren_db.cli.compliance:snapshot",
    "verify-restore": "sovren_db.cli.compliance:verify_restore",
    "mongo": "sovren_db.cli.mongo_cmd:mongo",
    "redis": "sovren_db.cli.redis_cmd:redis",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attr)

    def invoke(self, ctx: click.Context):
        """Turn every error into one sentence and exit code 2 (traceback with --debug)."""
        debug = bool(getattr(ctx.obj, "debug", False)) or "--debug" in sys.argv[1:]
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException, SystemExit):
            raise
        except SovrenError as exc:
            if debug:
                traceback.print_exc()
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(2)
        except Exception as exc:  # an unexpected failure still gets one sentence
            if debug:
                traceback.print_exc()
            text = str(exc).strip()
            message = redact_text(text.splitlines()[0] if text else type(exc).__name__)
            click.echo(f"error: {type(exc).__name__}: {message} (run with --debug for the traceback)", err=True)
            ctx.exit(2)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Project root (the folder with pyproject.toml). Default: found from the current folder.")
@click.option("--strict/--no-strict", default=None,
              help="Require every declared store to be configured (default: on when CI is set).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.version_option(package_name="sovren-db")
@click.pass_context
def cli(ctx: click.Context, root: Path | None, strict: bool | None, debug: bool) -> None:
    """Schema and migrations for PostgreSQL, MongoDB and Redis, in one revision chain."""
    ctx.obj = AppState(root, strict, debug)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="sovren-db")


if __name__ == "__main__":
    main()
