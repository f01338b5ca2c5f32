"""Backfills as an operation: ``op.backfill(table, set_, where=...)`` inside an autocommit block.

The table is walked in keyset batches of its primary key. Each batch is one statement, hence one
short transaction: it picks the next ``batch_size`` keys, updates those rows that match ``where``
and records the last key and the row count in ``sovren_db.backfill_progress``, all at once, so a
backfill killed at any point resumes after the last batch that committed and never updates a row
twice. Between batches it throttles the way gh-ost and pt-online-schema-change do: it pauses
while more than ``max_active`` other sessions are running a query, a replica's replay lag
(``pg_stat_replication``) exceeds ``max_lag`` seconds or a probe query takes over ``max_probe_ms``,
and sleeps ``pause`` seconds after each batch. On a terminal it shows a progress bar (keys walked of the planner's estimate); elsewhere it
prints rows done and rows per second every few seconds. Why it pauses is said once per pause.
The throttle's signals are in :mod:`.throttle`.

    with op.get_context().autocommit_block():
        op.backfill("operations", "status = 'done'", where="status IS NULL", batch_size=5000)
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from typing import Any, Callable

from alembic.autogenerate import renderers
from alembic.operations import MigrateOperation, Operations
from sqlalchemy import text

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..core.errors import MigrationFailed
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


@Operations.register_operation("backfill")
class BackfillOp(MigrateOperation):
    """Update a live table in keyset batches, each its own transaction; resumable and throttled."""

    def __init__(self, table_name: str, set_: str, *, where: str | None = None, batch_size: int = 1000,
                 pause: float = 0.0, max_active: int | None = None, max_lag: float | None = None,
                 max_probe_ms: float | None = None, probe: str = DEFAULT_PROBE, schema: str | None = None):
        self.table_name, self.set_, self.where, self.schema = table_name, set_, where, schema
        self.batch_size, self.pause = batch_size, pause
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
    """One batch: the next keys, the update of those that match, the progress row, in one statement."""
    cols = ", ".join(f'"{c}"' for c, _ in key)
    after = f"WHERE {_after_last(key, '>')} " if resume else ""
    join = " AND ".join(f't."{c}" = b."{c}"' for c, _ in key)
    match = f" AND ({op.where})" if op.where else ""
    last = ", ".join(f'b."{c}"::text' for c, _ in key)
    order = ", ".join(f'"{c}" DESC' for c, _ in key)
    return (f"WITH b AS (SELECT {cols} FROM {op.table} {after}ORDER BY {cols} LIMIT :n), "
            f"moved AS (UPDATE {op.table} AS t SET {op.set_} FROM b WHERE {join}{match} RETURNING 1), "
            f"top AS (SELECT jsonb_build_array({last}) AS k FROM b ORDER BY {order} LIMIT 1) "
            f"INSERT INTO {PROGRESS_TABLE} AS p (name, table_name, last_key, rows, done) "
            f"SELECT :name, :table, (SELECT k FROM top), (SELECT count(*) FROM moved), NOT EXISTS (SELECT 1 FROM b) "
            f"ON CONFLICT (name) DO UPDATE SET last_key = coalesce(excluded.last_key, p.last_key), "
            f"rows = p.rows + excluded.rows, done = excluded.done, updated_at = now() "
            f"RETURNING p.last_key, p.rows, p.done")


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
        if self.bar is not None:
            self.bar.update(self.task, completed=walked, rows=rows)
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
    row = connection.execute(text(f"SELECT last_key, rows, done FROM {PROGRESS_TABLE} WHERE name = :n"),
                             {"n": op.name}).first()
    if row is not None and row[2]:
        return 0
    last, start = (row[0] if row else None), (row[1] if row else 0)
    progress = progress or BackfillProgress(report)
    walked = _walked(connection, op, key, last)
    progress.start(op.describe(), _estimate(connection, op), walked)
    rows, started = start, time.monotonic()
    while True:
        _throttle(connection, op, sleep, progress)
        sql = batch_sql(op, key, resume=last is not None)
        params = {"n": op.batch_size, "name": op.name, "table": op.table, "last": json.dumps(last)}
        last, rows, done = connection.execute(text(sql), params).one()
        if done:
            progress.finish(op.describe(), rows, _rate(rows - start, started))
            return rows - start
        walked += op.batch_size
        progress.advance(op.describe(), walked, rows, _rate(rows - start, started))
        if op.pause:
            sleep(op.pause)


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
