"""Concurrent index builds that leave the workload its cores, and say how far they are.

A ``CREATE INDEX CONCURRENTLY`` runs with Postgres's parallel maintenance workers, which on a
small server take every core the workload needs: measured with ``bench/safe_migrations.py``
(2 M rows, pgbench at 200 tx/s), the build added +20.6 ms to the workload's p99 with the
server's default workers and +3.8 ms with none. So the builds migrate runs set
``max_parallel_maintenance_workers`` to ``index_build_workers`` (default 0) and, when
``index_build_memory`` is set, ``maintenance_work_mem``, on the migration's own session.

While a build runs, a second session reads ``pg_stat_progress_create_index`` for the migration's
backend and prints the phase and how much of it is done, every few seconds (a build that
finishes sooner prints nothing).
"""

from __future__ import annotations

import re
import sys
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from ..core.errors import ConfigError

DEFAULT_WORKERS = 0
PROGRESS_EVERY = 2.0
_MEMORY = re.compile(r"\s*\d+\s*(kB|MB|GB|TB)?\s*\Z")


def build_workers(value: object, key: str = "index_build_workers") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{key} = {value!r} must be a whole number of workers, 0 or more.")
    return value


def build_memory(value: object, key: str = "index_build_memory") -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _MEMORY.match(value):
        raise ConfigError(f"{key} = {value!r} is not a memory size (use e.g. 256MB or 1GB).")
    return value.replace(" ", "")


def limit_build(connection: Any, settings: Any) -> None:
    """Bound the session's parallel maintenance workers and memory before a concurrent build."""
    workers = getattr(settings, "index_build_workers", DEFAULT_WORKERS)
    connection.execute(text("SELECT set_config('max_parallel_maintenance_workers', :v, false)"), {"v": str(workers)})
    memory = getattr(settings, "index_build_memory", None)
    if memory:
        connection.execute(text("SELECT set_config('maintenance_work_mem', :v, false)"), {"v": memory})


_PROGRESS = """
SELECT phase, blocks_done, blocks_total, tuples_done, tuples_total
FROM pg_stat_progress_create_index WHERE pid = :pid
"""


def describe_progress(index: str, table: str, row: Any) -> str:
    phase, blocks_done, blocks_total, tuples_done, tuples_total = row
    done = ""
    if blocks_total:
        done = f", {100 * blocks_done // blocks_total}% of {blocks_total:,} blocks"
    elif tuples_total:
        done = f", {100 * tuples_done // tuples_total}% of {tuples_total:,} tuples"
    return f"building index {index} on {table}: {phase}{done}"


def _stderr(message: str) -> None:
    print(f"sovren-db: {message}", file=sys.stderr, flush=True)


@contextmanager
def reporting_progress(connection: Any, index: str, table: str, *, every: float = PROGRESS_EVERY,
                       report: Callable[[str], None] = _stderr) -> Iterator[None]:
    """While the block runs a build on ``connection``, print its progress every ``every`` seconds."""
    pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    stop = threading.Event()
    engine = create_engine(connection.engine.url, poolclass=NullPool)

    def watch() -> None:
        last = None
        try:
            with engine.connect() as watcher:
                watcher.execution_options(isolation_level="AUTOCOMMIT")  # a fresh stats snapshot each read
                while not stop.wait(every):
                    row = watcher.execute(text(_PROGRESS), {"pid": pid}).first()
                    line = describe_progress(index, table, row) if row else None
                    if line and line != last:
                        report(line)
                        last = line
        except Exception:  # progress is a courtesy: a watcher that cannot connect must not fail the build
            return

    thread = threading.Thread(target=watch, name=f"progress {index}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)
        engine.dispose()
