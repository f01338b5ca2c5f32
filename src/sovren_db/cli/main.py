"""The ``sovren-db`` group. Commands live one per module and load lazily."""

from __future__ import annotations

import importlib
import sys
import traceback
from pathlib import Path

import click

from ..core.errors import SovrenError, first_line
from ..core.findings import FORMATS, render_error
from ..core.redacted_io import redacted_output
from ..core.urls import redact, redact_text
from .options import AppState

# command name -> ("module:attribute", its one-line help): imported only when that command runs,
# so that 'sovren-db --help' imports no command (a test keeps the help equal to the docstrings)
COMMANDS = {
    "up": ("sovren_db.cli.servers:up", 'Start throwaway local servers (data under .sovren/) and print their URLs.'),
    "down": ("sovren_db.cli.servers:down", "Stop exactly the servers 'up' started, by PID."),
    "env": ("sovren_db.cli.servers:env", 'Print export lines for the configured server URLs, passwords included (the one command that does).'),
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
    "inspect": ("sovren_db.cli.adopt:inspect", 'Write declarations read from the live servers (into the project or --out DIR).'),
    "baseline": ("sovren_db.cli.adopt:baseline", 'Write the first revision of the chain, equal to the declarations.'),
    "stamp": ("sovren_db.cli.adopt:stamp", 'Record REVISION as applied in every store without running it, adopting matching policies and functions.'),
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

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["sovren_args"] = list(args)  # a usage error comes before any option is read: see _format
        return super().parse_args(ctx, args)

    def _every_target(self, ctx: click.Context) -> None:
        """--target all: the subcommand's arguments run once a target (sovren_db.targets.run_all)."""
        from ..targets import run_all

        argv = [*getattr(ctx, "_protected_args", []), *ctx.args]  # before click hands them to the subcommand
        if not argv:
            ctx.fail("Missing command.")
        state = AppState(ctx.params.get("root"), ctx.params.get("strict"), bool(ctx.params.get("debug")))
        ctx.exit(run_all(state.settings, argv))

    def invoke(self, ctx: click.Context):
        """Turn every error into one sentence in the chosen format and exit code 2 (traceback with --debug)."""
        with redacted_output():
            return self._invoke(ctx)

    def _invoke(self, ctx: click.Context):
        debug = bool(getattr(ctx.obj, "debug", False)) or "--debug" in sys.argv[1:]
        try:
            if ctx.params.get("target") == "all":
                return self._every_target(ctx)
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except click.ClickException as exc:
            where = f" (see 'sovren-db {exc.ctx.command_path.partition(' ')[2]} --help')" \
                if isinstance(exc, click.UsageError) and exc.ctx and " " in exc.ctx.command_path else ""
            text = exc.format_message().replace(". (", " (").rstrip(".")
            self._fail(ctx, {"kind": "UsageError", "message": f"{text}{where}.",
                             "store": None, "file": None, "line": None})
        except SovrenError as exc:
            if debug:
                traceback.print_exc()
            self._fail(ctx, exc.to_json(), exc.exit_code)
        except KeyboardInterrupt:
            self._fail(ctx, {"kind": "Interrupted", "message": "Interrupted.", "store": None, "file": None,
                             "line": None})
        except Exception as exc:  # an unexpected failure still gets one sentence, naming its store
            if debug:
                traceback.print_exc()
            store = _store_of(exc)
            where = f"{store} server at {redact(_url_of(ctx, store))}: " if store else ""
            message = (f"{where}{type(exc).__name__}: {redact_text(first_line(exc))} "
                       "(run with --debug for the traceback)")
            self._fail(ctx, {"kind": type(exc).__name__, "message": message, "store": store, "file": None,
                             "line": None})

    def _fail(self, ctx: click.Context, error: dict, exit_code: int = 2) -> None:
        fmt = _format(ctx)
        click.echo(render_error(error, fmt), err=fmt == "text")
        ctx.exit(exit_code)


# The driver an exception comes from names the store it was talking to.
_DRIVERS = {"redis": "redis", "psycopg": "postgres", "sqlalchemy": "postgres", "pymongo": "mongo", "bson": "mongo"}


def _store_of(exc: BaseException) -> str | None:
    for error in (exc, exc.__cause__, exc.__context__):
        if error is not None:
            package = type(error).__module__.split(".", 1)[0]
            if package in _DRIVERS:
                return _DRIVERS[package]
    return None


def _url_of(ctx: click.Context, store: str | None) -> str | None:
    settings = getattr(ctx.obj, "_settings", None)
    return settings.urls.get(store) if settings is not None and store else None


def _format(ctx: click.Context) -> str:
    """The --format the command was given: as its option read it, else as the arguments spell it."""
    chosen = getattr(ctx.obj, "fmt", None)
    if chosen:
        return chosen
    args = ctx.meta.get("sovren_args", [])
    for i, arg in enumerate(args):
        value = args[i + 1] if arg == "--format" and i + 1 < len(args) else arg.removeprefix("--format=")
        if (arg == "--format" or arg.startswith("--format=")) and value in FORMATS:
            return value
    return "text"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Project root (the folder with pyproject.toml). Default: found from the current folder.")
@click.option("--strict/--no-strict", default=None,
              help="Require every declared store to be configured (default: on when CI is set).")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.option("--target", default=None, metavar="NAME|all",
              help="Run against a target of [tool.sovren-db.targets] ('all': every target, a row each).")
@click.version_option(package_name="sovren-db")
@click.pass_context
def cli(ctx: click.Context, root: Path | None, strict: bool | None, debug: bool, target: str | None) -> None:
    """Schema and migrations for PostgreSQL, MongoDB and Redis, in one revision chain."""
    ctx.obj = AppState(root, strict, debug, target=target)


def main(argv: list[str] | None = None) -> None:
    cli.main(args=argv, prog_name="sovren-db")


if __name__ == "__main__":
    main()
