"""Backfills as an operation: ``op.backfill(table, set_, where=...)`` inside an autocommit block.

The table is walked in keyset batches of its primary key. Each batch is one statement, hence one
short transaction: it picks the next keys, updates those rows that match ``where`` and records the
last key and the row count in ``sovren_db.backfill_progress``, all at once, so a backfill killed at
any point resumes after the last batch that committed and never updates a row twice.

Its pace (:class:`Pace`) keeps the workload's latency: the number of keys per batch follows the
batches' durations towards ``batch_ms`` (``batch_size`` is where it starts), so a batch's row locks
and CPU burst stay a few milliseconds long whatever the rows cost; after each batch it rests
``nice`` times the batch's duration (gh-ost's nice-ratio), so it never takes more than
``1 / (1 + nice)`` of a core or of the server's writes; a batch that meets a row locked by the
workload fails at once (NOWAIT) and is retried smaller, so it never holds the rows it already locked
while it queues. Between batches it also throttles the way gh-ost and pt-online-schema-change
do: it pauses while more than ``max_active`` other sessions are running a query, a replica's replay
lag (``pg_stat_replication``) exceeds ``max_lag`` seconds or a probe query takes over
``max_probe_ms``, and sleeps ``pause`` seconds after each batch. On a terminal it shows a progress
bar (keys walked of the planner's estimate); elsewhere it prints rows done and rows per second every
few seconds. Why it pauses is said once per pause. The throttle's signals are in :mod:`.throttle`.

    with op.get_context().autocommit_block():
        op.backfill("operations", "status = 'done'", where="status IS NULL", batch_size=5000)
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable

from alembic.autogenerate import renderers
from alembic.operations import MigrateOperation, Operations
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..core.errors import MigrationFailed, SovrenError
from .lockwait import SHARE, Blocker, LockWaitExpired, conflicting_holders
from .throttle import DEFAULT_PROBE, Throttle

PROGRESS_TABLE = "sovren_db.backfill_progress"
REPORT_EVERY = 2.0
_DDL = f"""
CREATE SCHEMA IF NOT EXISTS sovren_db;
CREATE TABLE IF NOT EXISTS {PROGRESS_TABLE} (
    name text PRIMARY KEY,
    table_name text NOT NULL,
    last_key jsonb,
    rows bigint NOT NULL DEFAULT 0,
    done boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
)
"""
_KEY = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = to_regclass(:t) AND i.indisprimary ORDER BY k.n
"""
# Row-level security the migration's user does not bypass would hide rows from every batch: the
# backfill would end "done" with rows left unchanged.
_HIDDEN = """
SELECT c.relrowsecurity AND (c.relforcerowsecurity OR c.relowner <> r.oid) AND NOT (r.rolsuper OR r.rolbypassrls)
FROM pg_class c, pg_roles r WHERE c.oid = to_regclass(:t) AND r.rolname = current_user
"""
PAUSE_STEP = 0.1
MAX_PAUSE = 60.0
BATCH_MS = 10.0    # each batch's target duration: its row locks and its CPU burst stay this short
NICE = 1.0         # rest this many times the last batch's duration before the next (gh-ost's nice-ratio)
MIN_BATCH, MAX_BATCH = 10, 50_000
LOCK_NOT_AVAILABLE = "55P03"


@dataclass
class Pace:
    """How many keys the next batch walks and how long to rest after one: the size follows the
    batches' durations towards ``target`` seconds (at most halved or doubled at a time, so one batch
    slowed by a cache miss does not swing it), and the rest is ``nice`` times the batch's duration,
    so the backfill never takes more than ``1 / (1 + nice)`` of one core and of the server's writes."""

    size: int
    target: float | None
    nice: float

    def after(self, took: float) -> float:
        """Adapt to a batch that took ``took`` seconds; the seconds to rest before the next one."""
        if self.target:
            factor = min(2.0, max(0.5, self.target / max(took, 1e-4)))
            self.size = max(MIN_BATCH, min(MAX_BATCH, int(self.size * factor)))
        return self.nice * took

    def blocked(self) -> None:
        """A batch waited too long for a row lock: the next one takes fewer rows."""
        self.size = max(1, self.size // 2)


@Operations.register_operation("backfill")
class BackfillOp(MigrateOperation):
    """Update a live table in keyset batches, each its own transaction; resumable and throttled."""

    def __init__(self, table_name: str, set_: str, *, where: str | None = None, batch_size: int = 1000,
                 pause: float = 0.0, max_active: int | None = None, max_lag: float | None = None,
                 max_probe_ms: float | None = None, probe: str = DEFAULT_PROBE, schema: str | None = None,
                 batch_ms: float | None = BATCH_MS, nice: float = NICE):
        self.table_name, self.set_, self.where, self.schema = table_name, set_, where, schema
        self.batch_size, self.pause = batch_size, pause
        self.batch_ms, self.nice = batch_ms, nice
        self.throttle = Throttle(max_active, max_lag, max_probe_ms, probe)

    @classmethod
    def backfill(cls, operations: Operations, table_name: str, set_: str, **kw: Any) -> None:
        """``UPDATE table SET set_ WHERE where``, in batches; call it inside an autocommit block."""
        return operations.invoke(cls(table_name, set_, **kw))

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.table_name}" if self.schema else self.table_name

    @property
    def name(self) -> str:
        """Stable across reruns of the same revision text: where its progress is kept."""
        digest = hashlib.sha1(f"{self.table}\0{self.set_}\0{self.where}".encode()).hexdigest()[:12]
        return f"{self.table}:{digest}"

    def describe(self) -> str:
        return f"backfill {self.table}: SET {self.set_}" + (f" WHERE {self.where}" if self.where else "")


@renderers.dispatch_for(BackfillOp)
def _render_backfill(autogen_context: Any, op: BackfillOp) -> str:
    args = [repr(op.table_name), repr(op.set_)] + ([f"where={op.where!r}"] if op.where else [])
    args += [f"schema={op.schema!r}"] if op.schema else []
    return f"op.backfill({', '.join(args)}, batch_size=5000)"


def _after_last(key: list[tuple[str, str]], compare: str) -> str:
    """The key compared with the last one done (``:last``, a JSON array of its columns as text)."""
    cols = ", ".join(f'"{c}"' for c, _ in key)
    bounds = ", ".join(f"CAST(CAST(:last AS jsonb) ->> {i} AS {t})" for i, (_, t) in enumerate(key))
    return f"({cols}) {compare} ({bounds})"


def batch_sql(op: BackfillOp, key: list[tuple[str, str]], resume: bool) -> str:
    """One batch in one statement: the next keys, a lock on the rows among them that match taken
    without waiting (NOWAIT: a row the workload holds fails the batch at once, instead of the batch
    holding the rows it already locked while it queues), their update, the progress row; it returns
    the progress row and the keys walked."""
    cols = ", ".join(f'"{c}"' for c, _ in key)
    after = f"WHERE {_after_last(key, '>')} " if resume else ""
    join = " AND ".join(f't."{c}" = b."{c}"' for c, _ in key)
    match = f" AND ({op.where})" if op.where else ""
    last = ", ".join(f'b."{c}"::text' for c, _ in key)
    order = ", ".join(f'"{c}" DESC' for c, _ in key)
    picked = ", ".join(f't."{c}"' for c, _ in key)
    return (f"WITH b AS (SELECT {cols} FROM {op.table} {after}ORDER BY {cols} LIMIT :n), "
            f"locked AS (SELECT {picked} FROM {op.table} AS t, b "
            f"WHERE {join}{match} FOR NO KEY UPDATE OF t NOWAIT), "
            f"moved AS (UPDATE {op.table} AS t SET {op.set_} FROM locked AS b WHERE {join}{match} RETURNING 1), "
            f"top AS (SELECT jsonb_build_array({last}) AS k FROM b ORDER BY {order} LIMIT 1), "
            f"saved AS (INSERT INTO {PROGRESS_TABLE} AS p (name, table_name, last_key, rows, done) "
            f"SELECT :name, :table, (SELECT k FROM top), (SELECT count(*) FROM moved), NOT EXISTS (SELECT 1 FROM b) "
            f"ON CONFLICT (name) DO UPDATE SET last_key = coalesce(excluded.last_key, p.last_key), "
            f"rows = p.rows + excluded.rows, done = excluded.done, updated_at = now() "
            f"RETURNING p.last_key, p.rows, p.done) "
            f"SELECT saved.*, (SELECT count(*) FROM b) FROM saved")


def _stderr(message: str) -> None:
    print(f"sovren-db: {message}", file=sys.stderr, flush=True)


class BackfillProgress:
    """A rich bar on a terminal; on a pipe or a log, one line every ``REPORT_EVERY`` seconds instead."""

    def __init__(self, report: Callable[[str], None] = _stderr, console: Console | None = None):
        self.report, self.console = report, console or Console(stderr=True)
        self.bar: Progress | None = None
        self.told = time.monotonic()

    def start(self, title: str, total: float | None, walked: int) -> None:
        if self.console.is_terminal:
            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("rows walked, {task.fields[rows]:,} updated"), TimeRemainingColumn(),
                                console=self.console, transient=True)
            self.bar.start()
            self.task = self.bar.add_task(title, total=total, completed=walked, rows=0)

    def advance(self, title: str, walked: int, rows: int, rate: str) -> None:
        """``walked`` more keys walked, ``rows`` updated in all."""
        if self.bar is not None:
            self.bar.update(self.task, advance=walked, rows=rows)
        elif time.monotonic() - self.told >= REPORT_EVERY:
            self.told = time.monotonic()
            self.report(f"{title}: {rows:,} rows so far ({rate})")

    def note(self, message: str) -> None:
        if self.bar is not None:
            self.bar.console.print(f"sovren-db: {message}")
        else:
            self.report(message)

    def finish(self, title: str, rows: int, rate: str) -> None:
        if self.bar is not None:
            self.bar.stop()
        self.report(f"{title}: done, {rows:,} rows ({rate})")


@Operations.implementation_for(BackfillOp)
def _backfill(operations: Operations, op: BackfillOp) -> None:
    if operations.migration_context.as_sql:
        operations.execute(f"-- {op.describe()}, in keyset batches of {op.batch_size} (online only)")
        return
    run_backfill(operations.get_bind(), op)


def run_backfill(connection: Any, op: BackfillOp, *, report: Callable[[str], None] = _stderr,
                 sleep: Callable[[float], None] = time.sleep, progress: BackfillProgress | None = None) -> int:
    """Run (or resume) ``op`` to the end; the rows it updated in this run."""
    key = _prepare(connection, op)
    row = connection.execute(text(f"SELECT last_key, rows, done FROM {PROGRESS_TABLE} WHERE name = :n"),
                             {"n": op.name}).first()
    if row is not None and row[2]:
        return 0
    last, start = (row[0] if row else None), (row[1] if row else 0)
    progress = progress or BackfillProgress(report)
    progress.start(op.describe(), _estimate(connection, op), _walked(connection, op, key, last))
    return _walk(connection, op, key, last, start, sleep, progress) - start


def _prepare(connection: Any, op: BackfillOp) -> list[tuple[str, str]]:
    """The primary key to walk, once the table is known walkable and the progress table exists."""
    if not connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        raise MigrationFailed(f"op.backfill on {op.table} must run inside op.get_context().autocommit_block(), "
                              "so that each batch commits on its own.")
    key = [(r[0], r[1]) for r in connection.execute(text(_KEY), {"t": op.table})]
    if not key:
        raise MigrationFailed(f"op.backfill on {op.table}: the table has no primary key to walk in batches.")
    if connection.execute(text(_HIDDEN), {"t": op.table}).scalar():
        user = connection.execute(text("SELECT current_user")).scalar()
        raise MigrationFailed(f"op.backfill on {op.table}: row-level security hides rows from Postgres user {user!r} "
                              "(no BYPASSRLS), so batches would skip them; migrate as a role with BYPASSRLS.")
    for statement in _DDL.split(";"):
        if statement.strip():
            connection.execute(text(statement))
    return key


def _walk(connection: Any, op: BackfillOp, key: list[tuple[str, str]], last: Any, rows: int,
          sleep: Callable[[float], None], progress: BackfillProgress) -> int:
    """Batches from ``last`` to the end of the table; the progress row's count once done."""
    pace, start, started = Pace(op.batch_size, op.batch_ms and op.batch_ms / 1000, op.nice), rows, time.monotonic()
    while True:
        _throttle(connection, op, sleep, progress)
        (last, rows, done, walked), took = _batch(connection, op, key, last, pace, sleep, progress)
        if done:
            progress.finish(op.describe(), rows, _rate(rows - start, started))
            return rows
        progress.advance(op.describe(), walked, rows, _rate(rows - start, started))
        rest = pace.after(took) + op.pause
        if rest:
            sleep(rest)


def _batch(connection: Any, op: BackfillOp, key: list[tuple[str, str]], last: Any, pace: Pace,
           sleep: Callable[[float], None], progress: BackfillProgress) -> tuple[tuple, float]:
    """One batch and its duration; retried with fewer keys (after a jittered rest) while a row it would
    update is locked by another transaction: the batch never queues behind the workload, so nobody
    queues behind the rows it already locked."""
    sql, waited, tries = text(batch_sql(op, key, resume=last is not None)), 0.0, 0
    while True:
        params = {"n": pace.size, "name": op.name, "table": op.table, "last": json.dumps(last)}
        started = time.monotonic()
        try:
            return connection.execute(sql, params).one(), time.monotonic() - started
        except OperationalError as error:
            if getattr(error.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
        waited, tries = waited + time.monotonic() - started, tries + 1
        if waited > MAX_PAUSE:
            holders = conflicting_holders(connection, {_oid(connection, op.table): SHARE})
            raise RowLockWaitExpired(op.table, waited, holders[0] if holders else None)
        if tries == 1:
            progress.note(f"{op.describe()}: a row it would update is locked by another transaction; "
                          "retrying with fewer rows, never waiting in the lock queue")
        pace.blocked()
        rest = min(1.0, 0.01 * 2 ** tries) * random.uniform(0.5, 1.5)
        waited += rest
        sleep(rest)


class RowLockWaitExpired(LockWaitExpired):
    """A row the next batch needs stayed locked past the deadline (exit 1: pending work, resumable)."""

    def __init__(self, table: str, waited: float, blocker: Blocker | None):
        self.table, self.blocker = table, blocker
        who = f"likely by {blocker.describe()}, the oldest transaction writing it" if blocker else "by another session"
        SovrenError.__init__(self, f"Gave up after {waited:.1f} s: a row op.backfill on {table} needs stayed locked "
                                   f"{who}; the batches before it are committed, and 'sovren-db migrate' resumes "
                                   "after them once it ends.")


def _oid(connection: Any, table: str) -> int:
    return connection.execute(text("SELECT to_regclass(:t)::oid::int8"), {"t": table}).scalar()


def _estimate(connection: Any, op: BackfillOp) -> float | None:
    """The planner's row count (no scan); None before the table was ever analyzed."""
    tuples = connection.execute(text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:t)"),
                                {"t": op.table}).scalar()
    return tuples if tuples and tuples > 0 else None


def _walked(connection: Any, op: BackfillOp, key: list[tuple[str, str]], last: Any) -> int:
    """Keys at or before the resume point: where a resumed bar starts (one index-only count)."""
    if last is None:
        return 0
    return connection.execute(text(f"SELECT count(*) FROM {op.table} WHERE {_after_last(key, '<=')}"),
                              {"last": json.dumps(last)}).scalar()


def _rate(rows: int, started: float) -> str:
    seconds = max(time.monotonic() - started, 1e-6)
    return f"{rows / seconds:,.0f} rows/s"


def _throttle(connection: Any, op: BackfillOp, sleep: Callable[[float], None], progress: BackfillProgress) -> None:
    """Wait while the workload needs the server, at most ``MAX_PAUSE`` seconds at a time (then one batch
    runs, so a bound the server can never meet slows the backfill down instead of stopping it)."""
    said = None
    for _ in range(int(MAX_PAUSE / PAUSE_STEP)):
        why = op.throttle.reason(connection)
        if why is None:
            return
        if why.split(" (")[0] != said:
            said = why.split(" (")[0]
            progress.note(f"{op.describe()}: paused, {why}")
        sleep(PAUSE_STEP)
