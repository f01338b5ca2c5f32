"""``migrate`` bringing stores back in line before it migrates: the lock it holds, one chain read, clear errors."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest
import redis as redis_py
from sqlalchemy import event
from sqlalchemy.pool import Pool

from sovren_db import commands, resync
from sovren_db.core.config import load_settings
from sovren_db.core.errors import RevisionError
from sovren_db.core.runtime import ADVISORY_LOCK_KEY
from tests.integration.conftest import add_revision

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
REGISTRY = "{sovren-db}:registry"


def test_resync_waits_for_the_migrations_advisory_lock(project, pg_url, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    client = redis_py.Redis.from_url(redis_url)
    lost = next(f for f in client.hkeys(REGISTRY) if f.startswith(b"family:"))
    client.hdel(REGISTRY, lost)

    errors: list[BaseException] = []

    def run() -> None:
        try:
            commands.migrate(settings, resync=("redis",))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    with psycopg.connect(pg_url, autocommit=True) as other:  # another runner holds the lock
        other.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        runner = threading.Thread(target=run)
        runner.start()
        time.sleep(1.5)
        assert runner.is_alive()
        assert client.hget(REGISTRY, lost) is None  # nothing replayed while the other runner holds it
        other.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    runner.join(timeout=60)
    assert not runner.is_alive() and errors == []
    assert client.hget(REGISTRY, lost) is not None


def test_a_fresh_store_is_resynced_on_one_connection_from_one_chain_read(project, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,redis")
    settings = load_settings(project)
    commands.migrate(settings)
    redis_py.Redis.from_url(redis_url).flushdb()  # fresh: the next migrate replays the chain into it

    reads: list[set] = []
    collect_steps = resync.collect_steps
    monkeypatch.setattr(resync, "collect_steps",
                        lambda s, script, moves: reads.append(moves) or collect_steps(s, script, moves))
    opened: list[object] = []

    def count(dbapi_connection, record) -> None:
        opened.append(dbapi_connection)

    event.listen(Pool, "connect", count)
    try:
        out = commands.migrate(settings)
    finally:
        event.remove(Pool, "connect", count)
    assert any("replayed the chain's redis steps" in n for n in out.notes)
    assert len(reads) == 1
    assert len(opened) == 1  # the stores are brought in line on the migration's own connection


def test_a_revision_that_cannot_run_offline_fails_resync_naming_its_line(project, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    path = add_revision(project, "feed00000001", "    op.get_bind().execute(sa.text('SELECT 1')).all()")
    commands.migrate(settings)  # online it runs
    with pytest.raises(RevisionError) as err:
        commands.migrate(settings, resync=("redis",))
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "get_bind" in text)
    assert f"migrations/versions/{path.name}:{line} failed while running offline" in str(err.value)


def test_downgrade_reads_heads_and_runs_on_one_connection(project, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    head = commands.migrate(settings).data["applied"][-1]
    opened: list[object] = []

    def count(dbapi_connection, record) -> None:
        opened.append(dbapi_connection)

    event.listen(Pool, "connect", count)
    try:
        out = commands.downgrade(settings, "base")
    finally:
        event.remove(Pool, "connect", count)
    assert out.data == {"from": [head], "to": []}
    assert len(opened) == 1
    assert commands.status(settings).data["stores"]["postgres"]["revision"] == []
