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
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from . import telemetry
from .core.config import Settings, load_settings
from .core.errors import StoreUnavailable
from .core.runtime import ADVISORY_LOCK_KEY, Runtime
from .plugin import AUTOGENERATE_PLUGINS, install
from .postgres import backfill, expand  # noqa: F401  (register op.backfill, op.expand_column...)
from .postgres.expand import keep_views_in_step
from .postgres.lease import Lease
from .postgres.lockwait import LockGuard, LockPolicy
from .postgres.safe import with_safe_forms
from .resync import reconcile, undo_failed_revision

_LEASE, _GUARD = "sovren_lease", "sovren_lease_guard"


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
                           connect_args={"connect_timeout": 10, "application_name": "sovren-db",
                                         # a transaction-mode pooler keeps no prepared statement
                                         "prepare_threshold": None})
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


def lock_and_limit(connection: Connection, settings: Settings, *, per_transaction: bool = False) -> None:
    """Serialise runners with the migration lease, then bound every statement's waits.

    ``per_transaction``: the bounds are set in each transaction the connection begins (with the
    lease's ownership check), never on the session, so a transaction-pooling PgBouncer stays safe;
    otherwise on the session, for callers working on the raw driver connection.
    """
    connection.commit()  # the lease is taken outside any transaction of the caller's
    lease = Lease(settings.require_url("postgres"))
    began = time.perf_counter()
    lease.acquire()
    telemetry.lock_waited(time.perf_counter() - began)  # near zero unless another runner held the lease
    connection.info[_LEASE] = lease
    if per_transaction:
        def begin(conn: Connection) -> None:
            lease.guard(conn.connection.dbapi_connection, settings.lock_timeout, settings.statement_timeout,
                        ADVISORY_LOCK_KEY)

        connection.info[_GUARD] = begin
        event.listen(connection, "begin", begin)
        return
    connection.execute(text("SELECT set_config('lock_timeout', :v, false)"), {"v": settings.lock_timeout})
    connection.execute(text("SELECT set_config('statement_timeout', :v, false)"), {"v": settings.statement_timeout})
    connection.commit()  # end the implicit transaction so that Alembic runs one per revision


def unlock(connection: Connection) -> None:
    """Give the lease back (safe to call on a failed connection, and twice)."""
    if connection.in_transaction():  # it holds the lease row FOR KEY SHARE, which the release would wait for
        connection.rollback()
    guard = connection.info.pop(_GUARD, None)
    if guard is not None:
        event.remove(connection, "begin", guard)
    lease = connection.info.pop(_LEASE, None)
    if lease is not None:
        lease.release()


def _in_recovery(connection: Connection) -> bool:
    in_recovery = bool(connection.execute(text("SELECT pg_is_in_recovery()")).scalar())
    connection.rollback()
    return in_recovery


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


def _schemas_option(runtime: Runtime) -> dict:
    """Tables declared in schemas besides the default one are compared there; undeclared schemas are left alone."""
    schemas = {t.schema for t in runtime.postgres_schema.metadata.tables.values() if t.schema}
    if not schemas:
        return {}

    def include_name(name, type_, parent_names) -> bool:
        return type_ != "schema" or name is None or name in schemas

    return {"include_schemas": True, "include_name": include_name}


def _common_options(runtime: Runtime, config) -> dict:
    return dict(
        **_schemas_option(runtime),
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
            # check against a hot standby: read only, so no lease (nothing may be written there)
            read_only = config.attributes.get("sovren_read_only") and _in_recovery(connection)
            if not read_only:
                lock_and_limit(connection, settings, per_transaction=True)
            try:
                if _moves_stores(config):  # online: offline runs (--sql) returned above
                    from .adopt.stamp import refuse_unrecorded

                    refuse_unrecorded(connection, settings, runtime.postgres_schema)
                    reconcile(runtime, connection, context.script)
                    connection.commit()
                context.configure(connection=connection, include_object=runtime.include_object(connection),
                                  **_common_options(runtime, config))
                guard = config.attributes.get(LockGuard.KEY) or LockGuard(LockPolicy.from_settings(settings))
                guard.install(context.get_context().impl)
                keep_views_in_step(context.get_context().impl)
                try:
                    with runtime.tracking_commits(connection), context.begin_transaction():
                        context.run_migrations()
                except BaseException:
                    undo_failed_revision(runtime, context.script)
                    raise
                if connection.in_transaction():
                    connection.commit()
            finally:
                unlock(connection)
    finally:
        if Runtime.OPTS_KEY not in config.attributes:
            runtime.close()
            for note in runtime.notes:
                print(f"sovren-db: {note}", file=sys.stderr)
