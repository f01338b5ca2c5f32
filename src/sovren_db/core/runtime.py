"""The run of a revision chain across the three stores.

Postgres' ``alembic_version`` is the master record. While a revision's
``upgrade()`` runs, Postgres operations execute at once and store operations
(Mongo, Redis) are collected; when Alembic reports the revision applied
(``on_version_apply``, still inside that revision's transaction) the collected
steps run store by store:

- a step already in the store's ledger is skipped (it ran before a crash);
- a store that is not configured (development only) gets its steps written to
  ``sovren_db_deferred`` in Postgres (the skew ``status`` shows); the next run
  that reaches the store moves it from its own position to Postgres's revision
  (:mod:`sovren_db.resync`), without re-running the Postgres part;
- each step is recorded in the store's ledger with the step that undoes it; a
  step that fails raises, the revision's Postgres transaction rolls back and
  the store steps it already ran are undone (:func:`sovren_db.resync.undo_unrecorded`).
"""

from __future__ import annotations

import json
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator

from sqlalchemy import event, text

from .. import telemetry
from .errors import ConfigError, MigrationFailed, SovrenError, first_line
from .context import OPTS_KEY, runtime_of
from .guard import refuse_destructive
from .storeops import StoreOp, op_from_record
from .stores import StoreBackend, make_backend

if TYPE_CHECKING:
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy.engine import Connection

    from .config import Settings

STORE_ORDER = ("mongo", "redis")
ADVISORY_LOCK_KEY = 0x50_76_72_6E  # "Svrn": one lock for every sovren-db runner
DEFERRED_TABLE = "sovren_db_deferred"
FRAMEWORK_TABLES = frozenset({"alembic_version", DEFERRED_TABLE})

_DEFERRED_DDL = f"""
CREATE TABLE IF NOT EXISTS {DEFERRED_TABLE} (
    id bigserial PRIMARY KEY,
    revision text NOT NULL,
    direction text NOT NULL,
    seq integer NOT NULL,
    store text NOT NULL,
    op_name text NOT NULL,
    arguments jsonb NOT NULL,
    description text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (revision, direction, seq, store)
)
"""


@dataclass
class Runtime:
    """Everything a run needs besides Alembic: settings, store backends, notes."""

    settings: "Settings"
    stores: tuple[str, ...] = ()
    notes: list[str] = field(default_factory=list)
    _backends: dict[str, StoreBackend | None] = field(default_factory=dict)
    _pending: list[StoreOp] = field(default_factory=list)
    allow_destructive: bool = False
    chain_steps: list[StoreOp] | None = None   # every store step of the chain, for stores without a server
    applied: list[tuple[str, str]] = field(default_factory=list)   # (revision, "up"|"down") this run
    _schema: Any = None
    _partitions: set[str] | None = None
    _waiting: dict[str, set[tuple[str, str]]] | None = None   # per store: (revision, direction) deferred
    resync: tuple[str, ...] = ()   # stores to rebuild from the whole chain before this run (--resync)
    committed: list[str] = field(default_factory=list)   # SQL the running revision already committed
    partitioned: dict[str, list[str]] = field(default_factory=dict)   # offline: table -> its partitions
    _uncommitted: list[str] = field(default_factory=list)
    _finished: bool = False   # the running revision is done: the next commit is its own, not a partial one

    OPTS_KEY = OPTS_KEY

    def __post_init__(self) -> None:
        if not self.stores:
            self.stores = tuple(s for s in STORE_ORDER if s in self.settings.stores)

    @classmethod
    def of(cls, migration_context: "MigrationContext") -> "Runtime":
        return runtime_of(migration_context)

    # -- Postgres declarations ---------------------------------------------
    @property
    def postgres_schema(self):
        """The declared Postgres schema (``postgres/schema.py``), loaded once."""
        if self._schema is None:
            from ..postgres.declared import load_schema

            self._schema = load_schema(self.settings.postgres_dir)
        return self._schema

    def include_object(self, connection: "Connection"):
        """Alembic's include_object: partitions and sovren-db's own tables are not user tables."""

        def partitions() -> set[str]:
            if self._partitions is None:
                self._partitions = set(connection.execute(text(
                    "SELECT relname FROM pg_class WHERE relispartition AND relkind IN ('r', 'p')")).scalars())
            return self._partitions

        def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
            if type_ == "column" and reflected and compare_to is None and (name or "").startswith("_new_"):
                from ..postgres.expand import expanded_columns  # an expand's shadow lives until its contract

                return (obj.table.name, name) not in expanded_columns(connection)
            if type_ == "foreign_key_constraint" and reflected:  # the server's clone of a key, one a partition
                return obj.elements[0].target_fullname.split(".")[-2] not in partitions()
            if type_ != "table" or not reflected:
                return True
            if name in FRAMEWORK_TABLES:
                return False
            return name not in partitions()

        return include

    # -- store backends -------------------------------------------------
    def backend(self, store: str) -> StoreBackend | None:
        """The connected backend, or None when the store is not configured."""
        if store in self._backends:
            return self._backends[store]
        if not self.settings.configured(store):
            if self.settings.strict:
                raise ConfigError(
                    f"{store} is declared but not configured and --strict is in force "
                    f"(set {_url_var(store)} or run 'sovren-db up')."
                )
            self.note(f"{store}: not configured, skipped ({_url_var(store)} is not set).")
            self._backends[store] = None
            return None
        backend = make_backend(store, self.settings)
        backend.connect()
        self._backends[store] = backend
        return backend

    def connect_stores(self) -> None:
        """Reach every configured store before anything is applied: unreachable is an error (exit 2)."""
        for store in self.stores:
            self.backend(store)

    def note(self, message: str) -> None:
        if message not in self.notes:
            self.notes.append(message)

    def close(self) -> None:
        for backend in self._backends.values():
            if backend is not None:
                backend.close()
        self._backends.clear()

    # -- during a revision ----------------------------------------------
    def discard_pending(self) -> None:
        """Forget the store steps collected by a revision whose transaction was rolled back."""
        self._pending.clear()

    def take_pending(self) -> list[StoreOp]:
        """The store steps collected since the last call (those of the revision that just ran)."""
        pending, self._pending = self._pending, []
        return pending

    def collect(self, operation: StoreOp, operations: Any) -> None:
        if operation.destructive:
            refuse_destructive(operations, operation.describe(), self)
        if operations.migration_context.as_sql:
            operations.migration_context.impl.static_output(
                f"-- {operation.store}: {operation.describe()}"
            )
            return
        self._pending.append(operation)

    @contextmanager
    def tracking_commits(self, connection: "Connection") -> Iterator[None]:
        """Record, while revisions run, the statements of the running one that are already committed.

        An autocommit block (CREATE INDEX CONCURRENTLY, VALIDATE CONSTRAINT) commits what the
        revision ran before it and each statement inside it, so a later failure rolls back only
        the rest: :func:`sovren_db.commands.committed_clause` says which statements remain.
        """
        def ran(conn, cursor, statement, parameters, context, executemany) -> None:
            if statement.lstrip()[:6].upper() == "SELECT":   # a catalog lookup changes nothing
                return
            self._uncommitted.append(statement)
            if conn.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
                committed(conn)

        def committed(conn) -> None:
            if self._finished:   # a finished revision's commit: it leaves nothing half applied to the next one
                self._finished = False
                self._uncommitted.clear()
                return
            self.committed += self._uncommitted
            self._uncommitted.clear()

        event.listen(connection, "after_cursor_execute", ran)
        event.listen(connection, "commit", committed)
        try:
            yield
        finally:
            event.remove(connection, "after_cursor_execute", ran)
            event.remove(connection, "commit", committed)

    def on_version_apply(self, *, ctx: "MigrationContext", step: Any, heads: Any, run_args: Any) -> None:
        pending = self.take_pending()
        self.committed.clear()   # the revision is done: its commit follows
        self._uncommitted.clear()
        self._finished = not ctx.as_sql
        if getattr(step, "is_stamp", False) or ctx.as_sql:
            return
        revision = step.up_revision_id
        direction = "up" if step.is_upgrade else "down"
        self.applied.append((revision, direction))

        position = revision if step.is_upgrade else (step.down_revision_ids[0] if step.down_revision_ids else None)
        with telemetry.revision(revision, direction):
            self._apply_revision_steps(ctx, revision, direction, pending, position)
        from ..postgres.applied_at import record_applied

        record_applied(ctx)  # sovren_db_last_migrate_timestamp_seconds

    def _apply_revision_steps(self, ctx: "MigrationContext", revision: str, direction: str,
                              pending: list[StoreOp], position: str | None) -> None:
        for store in STORE_ORDER:
            steps = [op for op in pending if op.store == store]
            if store in self.stores:
                self._apply_store_steps(ctx.connection, store, revision, direction, steps, position)
            else:  # a store this run leaves out: keep its steps for a run that includes it
                self._defer(ctx.connection, store, revision, direction, steps)
            if store not in self.stores and steps:
                self.note(f"{store}: not among this project's stores; {len(steps)} step(s) of revision "
                          f"{revision} deferred.")

    def _apply_store_steps(self, connection: "Connection", store: str, revision: str, direction: str,
                           steps: list[StoreOp], position: str | None) -> None:
        backend = self.backend(store)
        if backend is None:
            self._defer(connection, store, revision, direction, steps)
            if steps:
                self.note(f"{store}: NOT APPLIED: {len(steps)} step(s) of revision {revision} deferred until "
                          f"{store} is reachable ({_url_var(store)}); the next migrate applies them.")
            return
        # a driver error between steps (a failover under way) is one sentence naming the server
        with getattr(backend, "reporting_errors", nullcontext)():
            self._run_store_steps(connection, store, backend, revision, direction, steps, position)

    def _run_store_steps(self, connection: "Connection", store: str, backend: StoreBackend, revision: str,
                         direction: str, steps: list[StoreOp], position: str | None) -> None:
        # One ledger read a revision: the steps of this direction already done, and those of the
        # other direction to forget (so that running it again redoes them).
        known = backend.ledger_keys(f"{revision}:")
        prefix = f"{revision}:{direction}:"
        for seq, op in enumerate(steps):
            key = f"{prefix}{seq}"
            if key in known:
                continue
            run_step(backend, key, op, revision)
        other = f"{revision}:{'down' if direction == 'up' else 'up'}:"
        if any(key.startswith(other) for key in known):
            backend.ledger_forget(other)
        if not self.waiting(connection).get(store):
            backend.set_position(position)

    # -- deferred steps ---------------------------------------------------
    def _defer(self, connection: "Connection", store: str, revision: str, direction: str,
               steps: list[StoreOp]) -> None:
        """Keep ``steps`` for ``store``, unless the revision's steps wait in the other direction:
        then both cancel out (see :func:`defer_steps`)."""
        waiting = self.waiting(connection).setdefault(store, set())
        other = (revision, "down" if direction == "up" else "up")
        if other in waiting:
            cancel_deferred(connection, store, *other)
            waiting.discard(other)
        elif steps:
            defer_steps(connection, store, revision, direction, steps)
            waiting.add((revision, direction))

    def waiting(self, connection: "Connection") -> dict[str, set[tuple[str, str]]]:
        """Per store, the (revision, direction) of its deferred steps; read from Postgres once a run
        and kept up to date by the run itself (:meth:`_defer`, :func:`sovren_db.resync.reconcile`)."""
        if self._waiting is None:
            self._waiting = waiting_moves(connection)
        return self._waiting


@dataclass
class CollectingRuntime(Runtime):
    """An offline run's runtime that keeps each revision's store steps instead of printing them.

    ``steps`` maps each revision, in the order the run applied them, to its store steps.
    """

    steps: dict[str, list[StoreOp]] = field(default_factory=dict)

    def collect(self, operation: StoreOp, operations: Any) -> None:
        self._pending.append(operation)

    def on_version_apply(self, *, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        self.steps[step.up_revision_id] = self.take_pending()


def run_step(backend: StoreBackend, key: str, op: StoreOp, revision: str) -> None:
    """Run ``op`` and record it in the ledger with the step that undoes it (read from the store first)."""
    try:
        undo = backend.undo_of(op)
        with telemetry.span(f"{op.store} {op.op_name}", store=op.store, step=key, revision=revision):
            backend.execute(op)
    except SovrenError:
        raise
    except Exception as exc:  # the driver's own error: name the step, keep one sentence
        reason = first_line(exc)
        raise MigrationFailed(
            f"Revision {revision}, {op.store} step {key.rsplit(':', 1)[-1]} ({op.describe()}) failed: {reason}"
        ) from exc
    backend.ledger_record(key, op, undo)


def ensure_deferred_table(connection: "Connection") -> None:
    connection.execute(text(_DEFERRED_DDL))


def deferred_table_exists(connection: "Connection") -> bool:
    return bool(connection.execute(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": DEFERRED_TABLE}).scalar())


def cancel_deferred(connection: "Connection", store: str, revision: str, direction: str) -> None:
    """Drop a revision's steps waiting for ``store`` in ``direction``: the run just moved back over it.

    Moves along the chain are a walk on a tree: a revision undone while its steps still wait
    is the walk's last edge, so cancelling it keeps the table the net path from where the
    store stood to where Postgres stands (what ``status`` lists; the store itself is moved
    from its own position, see :mod:`sovren_db.resync`).
    """
    connection.execute(text(
        f"DELETE FROM {DEFERRED_TABLE} WHERE store = :store AND revision = :revision AND direction = :direction"),
        {"store": store, "revision": revision, "direction": direction})


def defer_steps(connection: "Connection", store: str, revision: str, direction: str, steps: list[StoreOp]) -> None:
    ensure_deferred_table(connection)
    for seq, op in enumerate(steps):
        connection.execute(text(
            f"INSERT INTO {DEFERRED_TABLE} (revision, direction, seq, store, op_name, arguments, description) "
            "VALUES (:revision, :direction, :seq, :store, :op_name, CAST(:arguments AS jsonb), :description) "
            "ON CONFLICT (revision, direction, seq, store) DO NOTHING"),
            {"revision": revision, "direction": direction, "seq": seq, "store": store,
             "op_name": op.op_name, "arguments": json.dumps(op.arguments()), "description": op.describe()})


def waiting_moves(connection: "Connection") -> dict[str, set[tuple[str, str]]]:
    """Per store, the (revision, direction) of the steps deferred for it."""
    if not deferred_table_exists(connection):
        return {}
    waiting: dict[str, set[tuple[str, str]]] = {}
    for row in connection.execute(text(f"SELECT DISTINCT store, revision, direction FROM {DEFERRED_TABLE}")):
        waiting.setdefault(row.store, set()).add((row.revision, row.direction))
    return waiting


def has_deferred(connection: "Connection", store: str) -> bool:
    if not deferred_table_exists(connection):
        return False
    return bool(connection.execute(
        text(f"SELECT EXISTS (SELECT 1 FROM {DEFERRED_TABLE} WHERE store = :s)"), {"s": store}).scalar())


def deferred_summary(connection: "Connection") -> dict[str, list[tuple[str, str]]]:
    """Per store, the (revision, description) of every deferred step."""
    if not deferred_table_exists(connection):
        return {}
    rows = connection.execute(text(
        f"SELECT store, revision, description FROM {DEFERRED_TABLE} ORDER BY id")).all()
    summary: dict[str, list[tuple[str, str]]] = {}
    for row in rows:
        summary.setdefault(row.store, []).append((row.revision, row.description))
    return summary


def _url_var(store: str) -> str:
    from .config import URL_VARS

    return URL_VARS[store]
