"""Backfills as an operation: ``op.backfill(table, set_, where=...)`` inside an autocommit block.

The table is walked in keyset batches of its primary key. Each batch is one statement, hence one
short transaction: it picks the next ``batch_size`` keys, updates those rows that match ``where``
and records the last key and the row count in ``sovren_db.backfill_progress``, all at once, so a
backfill killed at any point resumes after the last batch that committed and never updates a row
twice. Between batches it throttles the way gh-ost and pt-online-schema-change do: it pauses
while more than ``max_active`` other sessions are running a query or a replica's replay lag
(``pg_stat_replication``) exceeds ``max_lag`` seconds, and sleeps ``pause`` seconds after each
batch. It prints rows done and rows per second every few seconds.

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

from ..core.errors import MigrationFailed

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
_ACTIVE = """
SELECT count(*) FROM pg_stat_activity
WHERE state = 'active' AND backend_type = 'client backend' AND pid <> pg_backend_pid()
"""
_LAG = "SELECT coalesce(max(extract(epoch FROM replay_lag)), 0)::float8 FROM pg_stat_replication"


@Operations.register_operation("backfill")
class BackfillOp(MigrateOperation):
    """Update a live table in keyset batches, each its own transaction; resumable and throttled."""

    def __init__(self, table_name: str, set_: str, *, where: str | None = None, batch_size: int = 1000,
                 pause: float = 0.0, max_active: int | None = None, max_lag: float | None = None,
                 schema: str | None = None):
        self.table_name, self.set_, self.where, self.schema = table_name, set_, where, schema
        self.batch_size, self.pause, self.max_active, self.max_lag = batch_size, pause, max_active, max_lag

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


def batch_sql(op: BackfillOp, key: list[tuple[str, str]], resume: bool) -> str:
    """One batch: the next keys, the update of those that match, the progress row, in one statement."""
    cols = ", ".join(f'"{c}"' for c, _ in key)
    after = ""
    if resume:
        bounds = ", ".join(f"CAST(CAST(:last AS jsonb) ->> {i} AS {t})" for i, (_, t) in enumerate(key))
        after = f"WHERE ({cols}) > ({bounds}) "
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


@Operations.implementation_for(BackfillOp)
def _backfill(operations: Operations, op: BackfillOp) -> None:
    if operations.migration_context.as_sql:
        operations.execute(f"-- {op.describe()}, in keyset batches of {op.batch_size} (online only)")
        return
    run_backfill(operations.get_bind(), op)


def run_backfill(connection: Any, op: BackfillOp, *, report: Callable[[str], None] = _stderr,
                 sleep: Callable[[float], None] = time.sleep) -> int:
    """Run (or resume) ``op`` to the end; the rows it updated in this run."""
    if not connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        raise MigrationFailed(f"op.backfill on {op.table} must run inside op.get_context().autocommit_block(), "
                              "so that each batch commits on its own.")
    for statement in _DDL.split(";"):
        if statement.strip():
            connection.execute(text(statement))
    key = [(r[0], r[1]) for r in connection.execute(text(_KEY), {"t": op.table})]
    if not key:
        raise MigrationFailed(f"op.backfill on {op.table}: the table has no primary key to walk in batches.")
    row = connection.execute(text(f"SELECT last_key, rows, done FROM {PROGRESS_TABLE} WHERE name = :n"),
                             {"n": op.name}).first()
    if row is not None and row[2]:
        return 0
    last, start, started = (row[0] if row else None), (row[1] if row else 0), time.monotonic()
    told, rows = started, start
    while True:
        _throttle(connection, op, sleep)
        sql = batch_sql(op, key, resume=last is not None)
        params = {"n": op.batch_size, "name": op.name, "table": op.table, "last": json.dumps(last)}
        last, rows, done = connection.execute(text(sql), params).one()
        if done:
            report(f"{op.describe()}: done, {rows:,} rows ({_rate(rows - start, started)})")
            return rows - start
        if time.monotonic() - told >= REPORT_EVERY:
            told = time.monotonic()
            report(f"{op.describe()}: {rows:,} rows so far ({_rate(rows - start, started)})")
        if op.pause:
            sleep(op.pause)


def _rate(rows: int, started: float) -> str:
    seconds = max(time.monotonic() - started, 1e-6)
    return f"{rows / seconds:,.0f} rows/s"


def _throttle(connection: Any, op: BackfillOp, sleep: Callable[[float], None]) -> None:
    """Wait while the workload is busy (active sessions) or a replica lags, at most a minute at a time."""
    for _ in range(600):
        busy = op.max_active is not None and connection.execute(text(_ACTIVE)).scalar() > op.max_active
        lagging = op.max_lag is not None and connection.execute(text(_LAG)).scalar() > op.max_lag
        if not (busy or lagging):
            return
        sleep(0.1)
