"""Migrate never queues in front of the workload: a session holding a conflicting lock is waited out
outside the lock queue (asserted from pg_locks and pg_stat_activity), named, optionally cancelled;
the deadline ends the run with exit 1 and nothing of the revision applied; a rerun continues."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import psycopg
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from sovren_db import commands
from sovren_db.cli.main import cli
from sovren_db.core.config import load_settings
from sovren_db.postgres.lockwait import Blocker, LockGuard, LockPolicy
from tests.integration.conftest import add_revision

pg = pytest.mark.postgres

TABLES = """    op.create_table("acc", sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("name", sa.Text))
    op.create_table("ops", sa.Column("id", sa.BigInteger, primary_key=True), sa.Column("acc_id", sa.BigInteger))
    op.execute("INSERT INTO acc SELECT g, 'a' || g FROM generate_series(1, 50) g")"""
FOREIGN_KEY = """    op.create_foreign_key_not_valid("ops_acc_fkey", "ops", "acc", ["acc_id"], ["id"])"""
COLUMN_THEN_KEY = """    op.add_column("acc", sa.Column("note", sa.Text))
    op.create_foreign_key_not_valid("ops_acc_fkey", "ops", "acc", ["acc_id"], ["id"])"""


def set_keys(project, **keys: str) -> None:
    path = project / "pyproject.toml"
    lines = "".join(f'{k} = "{v}"\n' for k, v in keys.items())
    path.write_text(path.read_text().replace("[tool.sovren-db]\n", "[tool.sovren-db]\n" + lines, 1))


@pytest.fixture
def live(project, pg_url):
    """The project migrated to a head that created acc and ops, and a revision adding ops' foreign key."""
    add_revision(project, "a1live", TABLES)
    assert CliRunner().invoke(cli, ["migrate"]).exit_code == 0
    return project


def blocker(pg_url: str, sql: str = "UPDATE acc SET name = name WHERE id = 1") -> psycopg.Connection:
    """A web request that forgot to commit: a row lock taken, the transaction left open."""
    conn = psycopg.connect(pg_url, application_name="forgetful-web")
    conn.execute(sql)
    return conn


def has_key(pg_url: str) -> bool:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT count(*) FROM pg_constraint WHERE conname = 'ops_acc_fkey'").fetchone()[0] == 1


def waiting_sessions(conn: psycopg.Connection) -> tuple[int, int]:
    """(locks requested and not granted, sessions waiting on a lock) across the server."""
    locks = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]
    waiting = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'").fetchone()[0]
    return locks, waiting


def run_in_thread(fn) -> tuple[threading.Thread, list]:
    outcome: list = []

    def target():
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed to the test
            outcome.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def wait_for_output(capfd, needle: str, seen: list[str], timeout: float = 30.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        seen.append(capfd.readouterr().err)
        if needle in "".join(seen):
            return "".join(seen)
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} never printed: {''.join(seen)!r}")


@contextmanager
def migrating_behind(project, pg_url: str, held: psycopg.Connection, capfd, needle: str) -> Iterator[list[str]]:
    """migrate running in a thread, seen waiting (``needle`` printed); on leaving, still waiting with
    nothing applied, then the blocker commits and migrate must finish and add the key."""
    seen: list[str] = []
    thread, outcome = run_in_thread(lambda: commands.migrate(load_settings(project)))
    try:
        wait_for_output(capfd, needle, seen)
        yield seen
        assert thread.is_alive() and not has_key(pg_url)
    finally:
        held.commit()
        thread.join(60)
    assert not isinstance(outcome[0], BaseException), outcome
    assert has_key(pg_url)
    seen.append(capfd.readouterr().err)
    held.close()


def workload_round(conn: psycopg.Connection, n: int) -> None:
    """One insert into ops and one read of acc, each failing fast rather than queueing unseen."""
    conn.execute("SET lock_timeout = '2s'")
    conn.execute("INSERT INTO ops VALUES (%s, 2)", (n,))
    conn.execute("SELECT count(*) FROM acc").fetchone()
    conn.commit()


@pg
def test_a_blocker_is_waited_out_without_any_session_queueing_behind_migrate(live, pg_url, capfd):
    add_revision(live, "a2live", FOREIGN_KEY)
    held = blocker(pg_url)
    pid = held.info.backend_pid
    with migrating_behind(live, pg_url, held, capfd, "waiting, outside the lock queue") as seen:
        with psycopg.connect(pg_url, application_name="workload") as work, psycopg.connect(pg_url) as probe:
            for n in range(40):
                workload_round(work, 1000 + n)
                assert waiting_sessions(probe) == (0, 0)
                time.sleep(0.02)
    printed = "".join(seen)
    assert re.search(rf"pid {pid} \(application 'forgetful-web', idle in transaction, "
                     r"transaction open \d+\.\d s, holding RowExclusiveLock on acc\)", printed)
    assert "UPDATE" not in printed  # never the query's text


@pg
def test_the_deadline_exits_1_naming_the_blocker_and_a_rerun_continues(live, pg_url):
    add_revision(live, "a2live", FOREIGN_KEY)
    set_keys(live, lock_wait_deadline="1s")
    held = blocker(pg_url)
    try:
        result = CliRunner().invoke(cli, ["migrate"])
        assert result.exit_code == 1, result.output
        assert f"pid {held.info.backend_pid} (application 'forgetful-web', idle in transaction" in result.output
        assert "Gave up after 1." in result.output and "Traceback" not in result.output
        assert not has_key(pg_url)
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("a1live",)
    finally:
        held.rollback()
        held.close()
    assert CliRunner().invoke(cli, ["migrate"]).exit_code == 0
    assert has_key(pg_url)


@pg
def test_cancel_blockers_after_ends_the_idle_transaction_and_applies(live, pg_url):
    add_revision(live, "a2live", FOREIGN_KEY)
    held = blocker(pg_url)
    result = CliRunner().invoke(cli, ["migrate", "--cancel-blockers-after", "300ms"])
    assert result.exit_code == 0, result.output
    assert f"ended pid {held.info.backend_pid} (application 'forgetful-web'" in result.output
    assert has_key(pg_url)
    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()


@pg
def test_cancel_blockers_is_refused_in_a_protected_environment_unless_asked(live, pg_url, monkeypatch):
    add_revision(live, "a2live", FOREIGN_KEY)
    monkeypatch.setenv("SOVREN_ENV", "production")
    result = CliRunner().invoke(cli, ["migrate", "--cancel-blockers-after", "1s"])
    assert result.exit_code == 2 and "protected" in result.output and "--allow-protected" in result.output
    assert not has_key(pg_url)
    held = blocker(pg_url)
    result = CliRunner().invoke(cli, ["migrate", "--cancel-blockers-after", "200ms", "--allow-protected"])
    assert result.exit_code == 0, result.output
    assert has_key(pg_url)
    held.close()


@pg
def test_locks_taken_earlier_in_the_revision_are_not_held_while_waiting(live, pg_url, capfd):
    """acc is altered first, then ops is blocked: migrate rolls back and retries rather than keeping
    acc locked, so readers of acc go through while it waits."""
    add_revision(live, "a2live", COLUMN_THEN_KEY)
    held = blocker(pg_url, "INSERT INTO ops VALUES (1, 1)")
    with migrating_behind(live, pg_url, held, capfd, "holding RowExclusiveLock on ops"):
        with psycopg.connect(pg_url) as reader:
            reader.execute("SET lock_timeout = '1s'")
            for _ in range(20):
                assert reader.execute("SELECT count(*) FROM acc").fetchone() == (50,)
                reader.commit()
                time.sleep(0.05)


@pg
def test_a_cancel_the_role_may_not_send_is_reported_and_the_transaction_stays_usable(live, pg_url):
    """Run as the application role, migrate may not end a superuser's session: it says so and waits on."""
    held, said = blocker(pg_url), []
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SET ROLE sovren_app"))
            guard = LockGuard(LockPolicy(cancel_after=0.0), report=said.append)
            target = Blocker(held.info.backend_pid, "forgetful-web", "idle in transaction", 5.0, "acc",
                             "RowExclusiveLock")
            guard.cancel_old(connection, [target])
            assert connection.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
    assert len(said) == 1 and said[0].startswith(f"could not cancel pid {held.info.backend_pid}")
    assert "permission denied" in said[0] or "must be" in said[0]
    assert held.execute("SELECT 1").fetchone() == (1,)
    held.close()


@pg
def test_migrate_killed_while_waiting_leaves_nothing_and_the_rerun_applies(live, pg_url, tmp_path):
    add_revision(live, "a2live", COLUMN_THEN_KEY)
    held = blocker(pg_url, "INSERT INTO ops VALUES (1, 1)")
    err = tmp_path / "stderr"
    exe = Path(sys.executable).with_name("sovren-db")
    with err.open("w") as sink:
        proc = subprocess.Popen([str(exe), "migrate"], cwd=live, stderr=sink, stdout=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 30
        while "waiting, outside the lock queue" not in err.read_text() and time.monotonic() < end:
            time.sleep(0.05)
        assert "waiting, outside the lock queue" in err.read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        with psycopg.connect(pg_url) as probe:
            end = time.monotonic() + 10
            while probe.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sovren-db'"
                                ).fetchone()[0] and time.monotonic() < end:
                time.sleep(0.05)
            probe.rollback()
            assert probe.execute("SELECT version_num FROM alembic_version").fetchone() == ("a1live",)
            assert probe.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'acc' "
                                 "AND column_name = 'note'").fetchone() == (0,)
        assert not has_key(pg_url)
    finally:
        if proc.poll() is None:
            proc.kill()
        held.commit()
        held.close()
    assert CliRunner().invoke(cli, ["migrate"]).exit_code == 0
    assert has_key(pg_url)


@pg
def test_an_autovacuum_in_the_way_is_cancelled_as_postgres_would_for_a_queued_lock(pg_url):
    """An autovacuum holds SHARE UPDATE EXCLUSIVE for as long as it runs (hours on a big table);
    Postgres cancels it for a lock request queued behind it, but the guard never queues."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE av_fill (id int PRIMARY KEY, v text) WITH (autovacuum_vacuum_threshold = 0, "
                     "autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_cost_delay = 100, "
                     "autovacuum_vacuum_cost_limit = 1)")
        conn.execute("INSERT INTO av_fill SELECT g, repeat('x', 200) FROM generate_series(1, 50000) g")
        conn.execute("DELETE FROM av_fill WHERE id % 2 = 0")
        conn.execute("ALTER SYSTEM SET autovacuum_naptime = '1s'")
        conn.execute("SELECT pg_reload_conf()")
        try:
            deadline = time.monotonic() + 60
            while not conn.execute("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' "
                                   "AND query LIKE '%av_fill%'").fetchone()[0]:
                assert time.monotonic() < deadline, "no autovacuum started on av_fill"
                time.sleep(0.1)
        finally:
            conn.execute("ALTER SYSTEM RESET autovacuum_naptime")
            conn.execute("SELECT pg_reload_conf()")
    said: list[str] = []
    guard = LockGuard(LockPolicy(deadline=30.0), report=said.append)
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            sql = "ALTER TABLE av_fill ADD COLUMN note text"
            guard.run(connection, guard.needs(connection, sql), lambda: connection.execute(sa.text(sql)))
    finally:
        engine.dispose()
    assert any(line.startswith("cancelled autovacuum pid ") for line in said), said
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'av_fill'::regclass "
                            "AND attname = 'note'").fetchone() == (1,)
        conn.execute("DROP TABLE av_fill")
