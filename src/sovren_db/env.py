"""The body of ``migrations/env.py``: one environment for the three stores.

``migrations/env.py`` is three lines calling :func:`run`, so the same code
serves ``alembic upgrade head`` / ``alembic check`` run by hand and every
``sovren-db`` command.

``sovren-db check`` (the ``sovren_read_only`` attribute) takes no migration
lease. What the lease gave check was never to see a migrate half done: a
check that started during a migrate waited for it to end. One ``REPEATABLE
READ READ ONLY`` transaction gives the same truthfulness without waiting and
without writing: every catalog row check reads (``alembic_version``, the table
forms, reflection, the bulk catalog read, the Postgres-only checks) comes from
one snapshot, and a migrate commits each revision's DDL with its version row
(``transaction_per_migration``), so the snapshot holds either the revision
before, reported as pending, or the one after, compared in full; a revision's
autocommit blocks (CREATE INDEX CONCURRENTLY) commit before its version row, so
a snapshot between them is pending too. Taking the lease cost a third of a
check that finds every table in step (two connections, a DDL statement, a
heartbeat thread: 14 ms of 144 on the bench schema) and rights check does not
otherwise need (CREATE on the database); the snapshot costs nothing, since
psycopg sends its isolation level with the BEGIN (the lease's statement and
lock bounds are still set, per transaction). One limit is Postgres's: the
functions reflection calls (``format_type``, ``pg_get_expr``,
``pg_get_indexdef``) read the catalog caches, which follow the latest commit,
so DDL committed during a check can show through them; the lease never kept
out DDL made by hand (psql) either, only a migrate's and ``sovren-db
partitions``' (its advisory lock), which now commit beside the check instead
of after it.

A process that checks again (the exporter, doctor, the tests) keeps the
connection check used, idle, for its next check (:func:`kept_connection`): a
new connection costs the connection itself (8 ms with SCRAM on loopback) and
the new backend's empty catalog caches (another 24 ms over check's catalog
reads on the bench schema, bench/doctor.py), together a fifth of a check.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool, QueuePool

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

_LEASE, _GUARD, _SNAPSHOT = "sovren_lease", "sovren_lease_guard", "sovren_snapshot"


def sqlalchemy_url(url: str) -> str:
    """``postgresql://`` as written in .env becomes SQLAlchemy's psycopg 3 URL."""
    scheme, _, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+psycopg://{rest}"
    return url


def _connect_args(application_name: str = "sovren-db") -> dict:
    # a transaction-mode pooler keeps no prepared statement
    return {"connect_timeout": 10, "application_name": application_name, "prepare_threshold": None}


def connect(settings: Settings):
    """An engine and an open connection to the configured Postgres; one sentence if unusable."""
    url = settings.require_url("postgres")
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool, connect_args=_connect_args())
    try:
        return engine, engine.connect()
    except OperationalError as exc:
        engine.dispose()
        raise StoreUnavailable("postgres", url, _reason(exc)) from None


# Per process and URL, an engine whose pool keeps one idle connection between checks (the module docstring
# says why). A pool of SQLAlchemy's rather than a connection kept by hand: it pings the connection before
# lending it again (a server restarted meanwhile costs a reconnect, not an error), ends whatever transaction
# was left, resets the isolation level check sets, and lends a second connection to a second thread.
_KEPT: dict[tuple[int, str], Engine] = {}
_KEPT_MAX = 4  # URLs; the least recently added one is closed beyond that (a test run checks many databases)
_KEPT_SECONDS = 300  # a kept connection older than this is replaced when next taken
_kept_lock = threading.Lock()


def _kept_engine(url: str) -> Engine:
    key = (os.getpid(), url)
    with _kept_lock:
        engine = _KEPT.get(key)
        if engine is None:
            engine = create_engine(sqlalchemy_url(url), poolclass=QueuePool, pool_size=1, max_overflow=-1,
                                   pool_pre_ping=True, pool_recycle=_KEPT_SECONDS,
                                   connect_args=_connect_args("sovren-db check"))
            _KEPT[key] = engine
            while len(_KEPT) > _KEPT_MAX:
                _KEPT.pop(next(iter(_KEPT))).dispose()
        return engine


def forget_kept_connections() -> None:
    """Close the connections kept for the next check (this process's)."""
    with _kept_lock:
        engines = [e for (pid, _), e in _KEPT.items() if pid == os.getpid()]
        _KEPT.clear()
    for engine in engines:
        engine.dispose()


def _after_fork() -> None:
    # a forked child shares the parent's sockets: it drops them without closing (closing would end the parent's)
    for engine in _KEPT.values():
        engine.dispose(close=False)
    _KEPT.clear()


os.register_at_fork(after_in_child=_after_fork)
atexit.register(forget_kept_connections)  # closed properly at exit: no "unexpected EOF" in the server's log


@contextmanager
def kept_connection(settings: Settings) -> Iterator[Connection]:
    """A connection to the configured Postgres for a check, kept open for the process's next check."""
    url = settings.require_url("postgres")
    try:
        connection = _kept_engine(url).connect()
    except OperationalError as exc:
        raise StoreUnavailable("postgres", url, _reason(exc)) from None
    try:
        yield connection
    finally:
        connection.close()  # back to the pool: rolled back, its isolation level reset


def begin_snapshot(connection: Connection, settings: Settings) -> None:
    """From now on, each transaction of ``connection`` is one REPEATABLE READ READ ONLY snapshot (check's).

    The statement and lock bounds the lease's guard set on each transaction are set here instead, with the
    transaction's first round trip after BEGIN (``SET LOCAL``-like, never on the session, for PgBouncer).
    """
    if _SNAPSHOT in connection.info:
        return
    if connection.in_transaction():
        connection.rollback()  # a lent connection holds no work of the caller's (see run)
    connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
    bounds = ("SELECT set_config('lock_timeout', %s, true), set_config('statement_timeout', %s, true)",
              (settings.lock_timeout, settings.statement_timeout))

    def begin(conn: Connection) -> None:
        with conn.connection.dbapi_connection.cursor() as cursor:
            cursor.execute(*bounds)

    event.listen(connection, "begin", begin)
    connection.info[_SNAPSHOT] = begin


def end_snapshot(connection: Connection) -> None:
    """End the snapshot's transaction (nothing was written) and give the connection its defaults back."""
    begin = connection.info.pop(_SNAPSHOT, None)
    if begin is None:
        return
    if connection.in_transaction():
        connection.rollback()
    event.remove(connection, "begin", begin)
    if not connection.invalidated:
        connection.execution_options(isolation_level=connection.default_isolation_level, postgresql_readonly=False)


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
    # check: one read-only snapshot instead of the lease (module docstring), on a primary and a hot standby alike
    read_only = bool(config.attributes.get("sovren_read_only"))
    try:
        with nullcontext(shared) if shared is not None else connected(settings) as connection:
            if read_only:
                begin_snapshot(connection, settings)  # a lent connection: the caller's already, and ended by it
            else:
                lock_and_limit(connection, settings, per_transaction=True)
            try:
                if _moves_stores(config):  # online: offline runs (--sql) returned above
                    from .adopt.stamp import refuse_unrecorded

                    refuse_unrecorded(connection, settings, runtime.postgres_schema)
                    reconcile(runtime, connection, context.script)
                    connection.commit()
                # dont_mutate (Alembic's, as for 'alembic current'): check writes nothing, not even the empty
                # alembic_version Alembic creates on a database that has none (its heads are then none: pending)
                context.configure(connection=connection, include_object=runtime.include_object(connection),
                                  **({"dont_mutate": True} if read_only else {}), **_common_options(runtime, config))
                guard = config.attributes.get(LockGuard.KEY) or LockGuard(LockPolicy.from_settings(settings))
                guard.install(context.get_context().impl)
                keep_views_in_step(context.get_context().impl)
                try:
                    with runtime.tracking_commits(connection), context.begin_transaction():
                        context.run_migrations()
                except BaseException:
                    undo_failed_revision(runtime, context.script)
                    raise
                if read_only:
                    if shared is None:
                        end_snapshot(connection)
                    # else the snapshot stays open: the caller's reads after the comparison see the same one
                elif connection.in_transaction():
                    connection.commit()
            finally:
                if not read_only:
                    unlock(connection)
    finally:
        if Runtime.OPTS_KEY not in config.attributes:
            runtime.close()
            for note in runtime.notes:
                print(f"sovren-db: {note}", file=sys.stderr)
