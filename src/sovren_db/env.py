"""The body of ``migrations/env.py``: one environment for the three stores.

``migrations/env.py`` is three lines calling :func:`run`, so the same code
serves ``alembic upgrade head`` / ``alembic check`` run by hand and every
``sovren-db`` command.
"""

from __future__ import annotations

import sys
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from .core.config import Settings, load_settings
from .core.errors import StoreUnavailable
from .core.runtime import ADVISORY_LOCK_KEY, Runtime
from .plugin import AUTOGENERATE_PLUGINS, install
from .postgres.safe import with_safe_forms
from .resync import reconcile, undo_failed_revision


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` as written in .env becomes SQLAlchemy's psycopg 3 URL."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def connect(settings: Settings):
    """An engine and an open connection to the configured Postgres; one sentence if unusable."""
    url = settings.require_url("postgres")
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool,
                           connect_args={"connect_timeout": 10, "application_name": "sovren-db"})
    try:
        return engine, engine.connect()
    except OperationalError as exc:
        engine.dispose()
        raise StoreUnavailable("postgres", url, _reason(exc)) from None


@contextmanager
def connected(settings: Settings) -> Iterator[Connection]:
    """An open connection to the configured Postgres, closed (with its engine) on leaving."""
    engine, connection = connect(settings)
    try:
        yield connection
    finally:
        connection.close()
        engine.dispose()


def current_heads(connection: Connection) -> tuple[str, ...]:
    """The revisions ``alembic_version`` records (empty before the first migrate)."""
    return MigrationContext.configure(connection).get_current_heads()


def _reason(exc: OperationalError) -> str:
    text_ = str(exc.orig) if exc.orig is not None else str(exc)
    lines = [" ".join(line.split()) for line in text_.splitlines() if line.strip()]
    if not lines:
        return "connection failed"
    first = lines[0].removeprefix("connection failed: ")
    return first.replace("FATAL: ", "")


LOCK_POLL_SECONDS = 0.2


def lock_and_limit(connection: Connection, settings: Settings) -> None:
    """Serialise runners with one advisory lock, then bound every statement's waits."""
    try_lock = text("SELECT pg_try_advisory_lock(:k)")
    got = connection.execute(try_lock, {"k": ADVISORY_LOCK_KEY}).scalar()
    if not got:
        print("sovren-db: another migration holds the lock; waiting for it to finish...", file=sys.stderr)
    while not got:
        # Poll with no transaction open in between: a blocking pg_advisory_lock() keeps its statement's
        # snapshot, which the running migration's CREATE INDEX CONCURRENTLY waits for: a deadlock.
        connection.rollback()
        time.sleep(LOCK_POLL_SECONDS)
        got = connection.execute(try_lock, {"k": ADVISORY_LOCK_KEY}).scalar()
    connection.execute(text("SELECT set_config('lock_timeout', :v, false)"), {"v": settings.lock_timeout})
    connection.execute(text("SELECT set_config('statement_timeout', :v, false)"), {"v": settings.statement_timeout})
    connection.commit()  # end the implicit transaction so that Alembic runs one per revision


def unlock(connection: Connection) -> None:
    connection.execute(text("SELECT pg_advisory_unlock_all()"))
    connection.commit()


def _settings_and_runtime(config) -> tuple[Settings, Runtime]:
    runtime = config.attributes.get(Runtime.OPTS_KEY)
    if runtime is not None:
        return runtime.settings, runtime
    root = Path(config.config_file_name or config.toml_file_name or "pyproject.toml").resolve().parent
    settings = load_settings(root)
    return settings, Runtime(settings)


def _skip_empty(config):
    """With autogenerate, write no revision when no store differs."""

    def process(context, revision, directives) -> None:
        if not config.attributes.get("sovren_skip_empty") or not directives:
            return
        script = directives[0]
        if all(ops.is_empty() for ops in script.upgrade_ops_list):
            directives[:] = []
            config.attributes["sovren_empty"] = True

    return process


def _common_options(runtime: Runtime, config) -> dict:
    return dict(
        process_revision_directives=with_safe_forms(_skip_empty(config)),
        target_metadata=runtime.postgres_schema.metadata,
        autogenerate_plugins=AUTOGENERATE_PLUGINS,
        transaction_per_migration=True,
        on_version_apply=runtime.on_version_apply,
        compare_type=True,
        compare_server_default=True,
        **{Runtime.OPTS_KEY: runtime},
    )


def _moves_stores(config) -> bool:
    """An upgrade or a downgrade (not check, current, history...): stores are brought in line first."""
    if config.attributes.get("sovren_replay"):
        return True
    cmd = getattr(getattr(config, "cmd_opts", None), "cmd", None)
    return bool(cmd) and getattr(cmd[0], "__name__", "") in ("upgrade", "downgrade")


def run(context) -> None:
    """Run the migration environment for Alembic's ``context``."""
    config = context.config
    settings, runtime = _settings_and_runtime(config)
    install(settings.stores)
    if context.is_offline_mode():
        url = settings.urls.get("postgres") or "postgresql://offline"
        context.configure(url=sqlalchemy_url(url), literal_binds=True, dialect_opts={"paramstyle": "named"},
                          **_common_options(runtime, config))
        with context.begin_transaction():
            context.run_migrations()
        return
    # A caller may lend its own connection (Alembic's "connection" attribute): it stays open, and
    # is used as a connection of our own (locked, committed), so it must hold no work of the caller's.
    shared = config.attributes.get("connection")
    try:
        with nullcontext(shared) if shared is not None else connected(settings) as connection:
            lock_and_limit(connection, settings)
            if _moves_stores(config):  # online: offline runs (--sql) returned above
                reconcile(runtime, connection, context.script)
                connection.commit()
            context.configure(connection=connection, include_object=runtime.include_object(connection),
                              **_common_options(runtime, config))
            try:
                with runtime.tracking_commits(connection), context.begin_transaction():
                    context.run_migrations()
            except BaseException:
                undo_failed_revision(runtime, context.script)
                raise
            if connection.in_transaction():
                connection.commit()
            unlock(connection)
    finally:
        if Runtime.OPTS_KEY not in config.attributes:
            runtime.close()
            for note in runtime.notes:
                print(f"sovren-db: {note}", file=sys.stderr)
