"""op.backfill on a primary with a hot standby: it pauses while the standby replays too far behind
(replay paused on the standby), names it, and finishes once the standby catches up."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
import sqlalchemy as sa

from sovren_db.postgres.backfill import BackfillOp, run_backfill
from tests.topology.test_replicas import primary_and_replica, urls  # noqa: F401 (fixtures)

pytestmark = pytest.mark.postgres


def _progress(url: str) -> tuple:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT rows, done FROM sovren_db.backfill_progress").fetchone() or (0, False)


def test_a_backfill_pauses_while_a_replica_lags_and_names_it(urls):
    primary_url, replica_url = urls
    with psycopg.connect(primary_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE lag_fill (id int PRIMARY KEY, v int)")
        conn.execute("INSERT INTO lag_fill SELECT g, 0 FROM generate_series(1, 200) g")
    replica = psycopg.connect(replica_url, autocommit=True)
    replica.execute("SELECT pg_wal_replay_pause()")
    said: list[str] = []
    engine = sa.create_engine(primary_url.replace("postgresql://", "postgresql+psycopg://"))

    def backfill() -> None:
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            run_backfill(connection, BackfillOp("lag_fill", "v = 1", batch_size=10, batch_ms=None, pause=0.05,
                                                    max_lag=0.5),
                         report=said.append)

    worker = threading.Thread(target=backfill)
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not any("paused" in line for line in said) and time.monotonic() < deadline:
            time.sleep(0.05)
        held = _progress(primary_url)
        time.sleep(1.0)
        assert _progress(primary_url) == held and not held[1]  # no batch ran while the replica lagged
    finally:
        replica.execute("SELECT pg_wal_replay_resume()")
        worker.join(60)
        replica.close()
        engine.dispose()
    pauses = [line for line in said if "paused" in line]
    assert pauses and "replica replica" in pauses[0] and "behind (bound 0.5 s)" in pauses[0], said
    assert _progress(primary_url) == (200, True)
