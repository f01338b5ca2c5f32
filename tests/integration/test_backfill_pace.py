"""op.backfill's pace on a real server: a batch that meets a row the workload holds locked gives up
at once (NOWAIT) and is retried smaller, so no workload session queues behind the rows the batch
already updated; the backfill finishes once the holder commits."""

from __future__ import annotations

import threading

import psycopg
import pytest

from sovren_db.postgres.backfill import BackfillOp
from tests.integration.test_backfill import _fill_table, _run

pg = pytest.mark.postgres


def _app_updates(pg_url: str, row: int, until: threading.Event, failures: list) -> None:
    """The workload: updates ``row`` again and again, each waiting at most 1 s for its lock."""
    with psycopg.connect(pg_url, autocommit=True, application_name="app") as conn:
        conn.execute("SET lock_timeout = '1s'")
        while not until.wait(0.05):
            try:
                conn.execute(f"UPDATE paced_fill SET v = v WHERE id = {row}")
            except psycopg.errors.LockNotAvailable as error:
                failures.append(str(error))


@pg
def test_a_batch_meeting_a_locked_row_never_makes_the_workload_queue_behind_it(pg_url):
    _fill_table(pg_url, "paced_fill", 200)
    holder = psycopg.connect(pg_url, application_name="forgetful-request")
    holder.execute("UPDATE paced_fill SET v = v WHERE id = 100")  # row 100 locked for 3 s
    release, stop, failures, said = threading.Timer(3.0, holder.commit), threading.Event(), [], []
    app = threading.Thread(target=_app_updates, args=(pg_url, 99, stop, failures))  # in the batch 51..100
    release.start()
    app.start()
    try:
        op = BackfillOp("paced_fill", "v = 1", batch_size=50, batch_ms=None, nice=0)
        assert _run(pg_url, op, report=said.append) == 200
    finally:
        stop.set()
        app.join()
        release.join()
        holder.close()
    assert failures == []  # the app's update of row 99 never waited 1 s behind the backfill
    assert any("a row it would update is locked by another transaction" in line for line in said), said
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM paced_fill WHERE v = 1").fetchone() == (200,)


@pg
def test_a_row_locked_past_the_deadline_stops_the_backfill_naming_the_holder_and_a_rerun_finishes(pg_url,
                                                                                                  monkeypatch):
    from sovren_db.postgres import backfill

    monkeypatch.setattr(backfill, "MAX_PAUSE", 0.5)
    _fill_table(pg_url, "stuck_fill", 40)
    holder = psycopg.connect(pg_url, application_name="forgetful-request")
    holder.execute("UPDATE stuck_fill SET v = v WHERE id = 25")
    op = BackfillOp("stuck_fill", "v = 1", batch_size=10, batch_ms=None, nice=0)
    try:
        with pytest.raises(backfill.RowLockWaitExpired) as stopped:
            _run(pg_url, op, report=lambda _: None)
        assert stopped.value.exit_code == 1
        assert "a row op.backfill on stuck_fill needs stayed locked likely by pid" in str(stopped.value)
        assert "application 'forgetful-request', idle in transaction" in str(stopped.value)
        with psycopg.connect(pg_url) as conn:  # every batch before the locked row committed, none after
            assert conn.execute("SELECT min(id), max(id) FROM stuck_fill WHERE v = 1").fetchone() == (1, 24)
    finally:
        holder.rollback()
        holder.close()
    assert _run(pg_url, op, report=lambda _: None) == 16
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM stuck_fill WHERE v = 1").fetchone() == (40,)
