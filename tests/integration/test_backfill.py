"""op.backfill: keyset batches, each its own transaction; killed at any point it resumes after the
last committed batch and updates no row twice; throttled while the workload is busy."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from sovren_db.cli.main import cli
from sovren_db.postgres.backfill import BackfillOp, run_backfill
from tests.integration.conftest import add_revision, migrate_killed_when

pg = pytest.mark.postgres

TABLE = """    op.create_table("items", sa.Column("a", sa.Integer, primary_key=True), sa.Column("b", sa.Text, primary_key=True),
                    sa.Column("n", sa.Integer, nullable=False, server_default="0"), sa.Column("kind", sa.Text))
    op.execute("INSERT INTO items (a, b, kind) SELECT g % 50, 'k' || g, CASE WHEN g % 3 = 0 THEN 'x' END "
               "FROM generate_series(1, 3000) g")"""
BACKFILL = """    with op.get_context().autocommit_block():
        op.backfill("items", "n = n + 1", where="kind IS NULL", batch_size={batch}, pause={pause})"""


def counts(pg_url: str) -> tuple:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT count(*) FILTER (WHERE n = 1), count(*) FILTER (WHERE n > 1), "
                            "count(*) FILTER (WHERE n = 1 AND kind IS NOT NULL) FROM items").fetchone()


def progress(pg_url: str) -> tuple | None:
    with psycopg.connect(pg_url) as conn:
        if not conn.execute("SELECT to_regclass('sovren_db.backfill_progress') IS NOT NULL").fetchone()[0]:
            return None
        return conn.execute("SELECT rows, done FROM sovren_db.backfill_progress").fetchone()


@pg
def test_a_backfill_updates_matching_rows_once_in_batches(project, pg_url):
    add_revision(project, "b1fill", TABLE)
    add_revision(project, "b2fill", BACKFILL.format(batch=128, pause=0))
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output
    assert counts(pg_url) == (2000, 0, 0)
    assert progress(pg_url) == (2000, True)
    assert "backfill items: SET n = n + 1 WHERE kind IS NULL: done, 2,000 rows" in result.output


@pg
def test_a_killed_backfill_resumes_where_it_stopped_and_updates_no_row_twice(project, pg_url, tmp_path):
    add_revision(project, "b1fill", TABLE)
    assert CliRunner().invoke(cli, ["migrate"]).exit_code == 0
    add_revision(project, "b2fill", BACKFILL.format(batch=50, pause=0.02))
    migrate_killed_when(project, lambda: (progress(pg_url) or (0,))[0] >= 300)
    rows, done = progress(pg_url)
    assert 300 <= rows < 2000 and not done
    updated, twice, wrong = counts(pg_url)
    assert (twice, wrong) == (0, 0) and updated == progress(pg_url)[0]
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output
    assert counts(pg_url) == (2000, 0, 0)
    assert progress(pg_url) == (2000, True)


@pg
def test_a_backfill_pauses_while_other_sessions_are_busy(pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE busy_fill (id int PRIMARY KEY, v int)")
        conn.execute("INSERT INTO busy_fill SELECT g, 0 FROM generate_series(1, 100) g")
    busy = psycopg.connect(pg_url, autocommit=True)
    worker = threading.Thread(target=lambda: busy.execute("SELECT pg_sleep(1.5)"))
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    slept, said = [], []
    worker.start()
    time.sleep(0.2)
    try:
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            op = BackfillOp("busy_fill", "v = 1", batch_size=30, max_active=0)
            assert run_backfill(connection, op, report=said.append,
                                sleep=lambda s: (slept.append(s), time.sleep(s))) == 100
    finally:
        worker.join()
        busy.close()
        engine.dispose()
    assert len(slept) >= 5  # paused about 1.3 s in steps of 0.1 s while pg_sleep was active
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM busy_fill WHERE v = 1").fetchone() == (100,)
        conn.execute("DROP TABLE busy_fill")
        conn.execute("DELETE FROM sovren_db.backfill_progress WHERE table_name = 'busy_fill'")


@pg
def test_the_progress_table_is_not_drift(project, pg_url):
    assert CliRunner().invoke(cli, ["migrate"]).exit_code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS sovren_db")
        conn.execute("CREATE TABLE IF NOT EXISTS sovren_db.backfill_progress (name text PRIMARY KEY)")
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 0, result.output


def _fill_table(pg_url: str, name: str, rows: int) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {name} (id int PRIMARY KEY, v int)")
        conn.execute(f"INSERT INTO {name} SELECT g, 0 FROM generate_series(1, {rows}) g")
        conn.execute(f"ANALYZE {name}")


def _run(pg_url: str, op: BackfillOp, **kw) -> int:
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            return run_backfill(connection, op, **kw)
    finally:
        engine.dispose()


@pg
def test_a_backfill_pauses_while_the_probe_is_slower_than_its_bound_and_says_why(pg_url):
    _fill_table(pg_url, "probed_fill", 100)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE probe_target (id int)")
    holder = psycopg.connect(pg_url)
    holder.execute("LOCK TABLE probe_target IN ACCESS EXCLUSIVE MODE")  # the workload's reads now wait
    release = threading.Timer(1.0, holder.rollback)
    said, slept = [], []
    release.start()
    try:
        op = BackfillOp("probed_fill", "v = 1", batch_size=25, max_probe_ms=200,
                        probe="SELECT count(*) FROM probe_target")
        assert _run(pg_url, op, report=said.append, sleep=lambda s: (slept.append(s), time.sleep(s))) == 100
    finally:
        release.join()
        holder.close()
    pauses = [line for line in said if "paused" in line]
    assert len(pauses) == 1 and "the probe took" in pauses[0] and "(bound 200 ms)" in pauses[0], said
    assert slept, "the backfill never paused"
    took = int(pauses[0].split("the probe took ")[1].split(" ms")[0].replace(",", ""))
    assert took >= 500  # the probe waited behind the lock: that is what was measured


@pg
def test_on_a_terminal_the_backfill_draws_a_progress_bar_of_keys_walked(pg_url):
    from io import StringIO

    from rich.console import Console

    from sovren_db.postgres.backfill import BackfillProgress

    _fill_table(pg_url, "barred_fill", 100)
    screen, said = StringIO(), []
    progress = BackfillProgress(said.append, Console(file=screen, force_terminal=True, width=120))
    assert _run(pg_url, BackfillOp("barred_fill", "v = 1", batch_size=10), progress=progress) == 100
    drawn = screen.getvalue()
    assert "backfill barred_fill: SET v = 1" in drawn and "rows walked" in drawn
    assert "100/100" in drawn and "100 updated" in drawn, drawn
    assert said[-1].startswith("backfill barred_fill: SET v = 1: done, 100 rows (")


@pg
def test_a_backfill_refuses_a_table_whose_rows_row_level_security_hides_from_it(pg_url):
    import uuid

    from sovren_db.core.errors import MigrationFailed

    owner = f"fill_owner_{uuid.uuid4().hex[:8]}"
    _fill_table(pg_url, "hidden_fill", 10)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {owner}")
        conn.execute(f"GRANT USAGE, CREATE ON SCHEMA public TO {owner}")
        conn.execute(f"ALTER TABLE hidden_fill OWNER TO {owner}")
        conn.execute("ALTER TABLE hidden_fill ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY")
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(sa.text(f"SET ROLE {owner}"))
            with pytest.raises(MigrationFailed, match=f"row-level security hides rows from Postgres user '{owner}'"):
                run_backfill(connection, BackfillOp("hidden_fill", "v = 1"))
        with psycopg.connect(pg_url) as conn:  # nothing done: every row as it was
            assert conn.execute("SELECT count(*) FROM hidden_fill WHERE v = 0").fetchone() == (10,)
    finally:
        engine.dispose()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP TABLE hidden_fill")
            conn.execute(f"REVOKE ALL ON SCHEMA public FROM {owner}")
            conn.execute(f"DROP ROLE {owner}")
