"""The ``sovren-db`` group. Commands live one per module and load lazily."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

import click

from ..core.errors import SovrenError, first_line
from ..core.urls import redact_text
from .options import AppState

# command name -> ("module:attribute", its one-line help): imported only when that command runs,
# so that 'sovren-db --help' imports no command (a test keeps the help equal to the docstrings)
COMMANDS = {
    "up": ("sovren_db.cli.servers:up", 'Start throwaway local servers (data under .sovren/) and print their URLs.'),
    "down": ("sovren_db.cli.servers:down", "Stop exactly the servers 'up' started, by PID."),
    "env": ("sovren_db.cli.servers:env", 'Print export lines for the configured server URLs.'),
    "migrate": ("sovren_db.cli.migrate:migrate", 'Apply revisions up to REVISION (default head) to every store, in lockstep.'),
    "downgrade": ("sovren_db.cli.migrate:downgrade", "Revert revisions down to REVISION ('base' for all, '-1' for one)."),
    "plan": ("sovren_db.cli.migrate:plan", 'Show what migrate would run, Postgres SQL included, without running it (exit 1 if pending).'),
    "status": ("sovren_db.cli.status:status", "Show each store's revision, pending revisions and deferred steps (exit 1 if behind)."),
    "check": ("sovren_db.cli.check:check", 'Compare every declared store with the live one and report each difference.'),
    "revision": ("sovren_db.cli.revision:revision", 'Write a new revision holding Postgres, Mongo and Redis operations.'),
    "lint": ("sovren_db.cli.lint:lint", "Lint revisions before they merge; accept a finding in the revision file with '# sovren-db: accept CODE because REASON'."),
    "partitions": ("sovren_db.cli.partitions:partitions", "Create this month's and the next months' partitions (and the default one) of every declared partitioned table."),
    "seed": ("sovren_db.cli.seed:seed", 'Seed PostgreSQL, MongoDB and Redis with one consistent, deterministic data set.'),
    "erase": ("sovren_db.cli.compliance:erase", 'Erase or anonymise everything the declarations link to one user, in every store.'),
    "audit": ("sovren_db.cli.compliance:audit", 'The immutable audit trail (architecture §6, Appendix G.2).'),
    "rotate-key": ("sovren_db.cli.compliance:rotate_key", 'Re-encrypt the columns declared Encrypted from the old key to the new one, then verify.'),
    "snapshot": ("sovren_db.cli.compliance:snapshot", 'Write a manifest of every table, collection and key family: counts, checksums, revisions.'),
    "verify-restore": ("sovren_db.cli.compliance:verify_restore", 'Compare a restored triad with a snapshot manifest and with the declarations; exit 1 on any difference.'),
    "mongo": ("sovren_db.cli.mongo_cmd:mongo", 'MongoDB collections: validators, indexes, shard keys and zones.'),
    "doctor": ("sovren_db.cli.doctor:doctor", "Examine every store against Sovren's thresholds ([tool.sovren-db.doctor]) and name each fix."),
    "metrics": ("sovren_db.cli.metrics:metrics", "Print the declared schema's health and H.4's measures in the Prometheus text format, once."),
    "redis": ("sovren_db.cli.redis_cmd:redis", 'Redis key conventions: audit the keyspace, list families, show the registry.'),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        if name not in COMMANDS:
            return None
        module_name, _, attr = COMMANDS[name][0].partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None
            raise
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The command list from the table, without importing any command module."""
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx) if name in COMMANDS]
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                # shortened by click's own rule, through a command that only carries the help
                formatter.write_dl([(name, click.Command(name, help=text).get_short_help_str(limit))
                                    for name, text in rows])

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
            message = redact_text(first_line(exc))
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
