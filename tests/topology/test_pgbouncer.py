"""migrate through a transaction-pooling PgBouncer: one runner at a time, nothing leaked, kill -9 survived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory

from sovren_db import commands
from sovren_db.core.config import load_settings
from tests.integration.conftest import add_revision, copy_project

pytestmark = pytest.mark.postgres
SOVREN_DB = str(Path(sys.executable).with_name("sovren-db"))
REVISIONS = ("t01", "t02", "t03", "t04")


@pytest.fixture
def pooled_project(tmp_path, repo_root, bouncer_url, monkeypatch) -> Path:
    root = copy_project(repo_root, tmp_path / "project")
    for var in ("CI", "MONGO_URL", "REDIS_URL", "SOVREN_ENV", "SOVREN_DB_STORES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("POSTGRES_URL", bouncer_url)
    monkeypatch.setenv("SOVREN_LOCK_LEASE", "3")
    monkeypatch.chdir(root)
    for name in REVISIONS:  # each a table and a short wait, so concurrent runners overlap
        add_revision(root, name, f"    op.execute('SELECT pg_sleep(0.2)')\n    op.create_table('{name}', "
                                 "sa.Column('id', sa.Integer, primary_key=True))")
    return root


def migrate_process(root: Path) -> subprocess.Popen:
    return subprocess.Popen([SOVREN_DB, "migrate", "--format", "json"], cwd=root, env=dict(os.environ),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_four_concurrent_migrates_through_pgbouncer_apply_each_revision_once(pooled_project, pg_url):
    runners = [migrate_process(pooled_project) for _ in range(4)]
    results = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in runners]
    assert [code for code, _, _ in results] == [0, 0, 0, 0], results
    applied = [rev for _, out, _ in results for rev in json.loads(out)["applied"]]
    chain = [r.revision for r in ScriptDirectory(str(pooled_project / "migrations")).walk_revisions()]
    assert sorted(applied) == sorted(chain)  # the project's revisions and ours, each applied by one runner
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("t04",)]
        assert conn.execute("SELECT count(*) FROM sovren_db.migration_lease").fetchone()[0] == 0


def test_migrate_through_pgbouncer_leaves_no_session_setting_or_advisory_lock(pooled_project, bouncer_url, pg_url):
    commands.migrate(load_settings(pooled_project))
    for _ in range(3):  # every pooled server connection answers with the server's defaults
        with psycopg.connect(bouncer_url, prepare_threshold=None) as conn:
            assert conn.execute("SHOW lock_timeout").fetchone()[0] == "0"
            assert conn.execute("SHOW statement_timeout").fetchone()[0] == "0"
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0] == 0


def test_a_migrate_killed_with_kill_9_does_not_block_the_next(pooled_project, pg_url):
    add_revision(pooled_project, "t05", "    op.execute('SELECT pg_sleep(CASE WHEN to_regclass(\\'hold_me\\') "
                                        "IS NULL THEN 0 ELSE 600 END)')")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE hold_me ()")
        victim = migrate_process(pooled_project)
        deadline = time.monotonic() + 60
        while not conn.execute("SELECT 1 FROM pg_stat_activity WHERE query LIKE '%pg_sleep(CASE%' "
                               "AND state = 'active' AND pid <> pg_backend_pid()").fetchone():
            assert time.monotonic() < deadline and victim.poll() is None, victim.stderr.read()
            time.sleep(0.1)
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        conn.execute("DROP TABLE hold_me")
    started = time.monotonic()
    nxt = subprocess.run([SOVREN_DB, "migrate"], cwd=pooled_project, capture_output=True, text=True, timeout=90)
    assert nxt.returncode == 0, nxt.stderr
    assert "applied t05" in nxt.stdout
    assert time.monotonic() - started < 60  # the lease (3 s) expired; nobody waited for the 600 s sleep
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("t05",)


def test_a_runner_whose_lease_expired_and_was_taken_applies_nothing_more(pg_url):
    from sovren_db.core.errors import Refused
    from sovren_db.postgres.lease import Lease

    stalled = Lease(pg_url, seconds=1)
    stalled.acquire()
    stalled._stop.set()  # its heartbeat stops, as when the process hangs
    stalled._thread.join()
    time.sleep(1.2)
    taker = Lease(pg_url, seconds=30)
    taker.acquire()  # the expired lease is taken over without waiting
    try:
        with psycopg.connect(pg_url) as conn, pytest.raises(Refused, match="lost its lease"):
            stalled.guard(conn, "5s", "1min", 1)  # the stalled runner's next transaction
    finally:
        taker.release()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM sovren_db.migration_lease").fetchone() == (0,)
