"""Errors name their store: a server dying mid-command, a driver's own error, a refused safe form."""

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
import redis

from sovren_db import services
from tests.integration.conftest import add_revision

from .conftest import refused, run

SOVREN_DB = str(Path(sys.executable).parent / "sovren-db")
PASSWORD = "Dies9MidAudit"


@pytest.fixture
def doomed_redis(tmp_path):
    """A password-protected redis-server of this test's own, with a keyspace worth auditing slowly."""
    server = services.start_redis(tmp_path / "redis", password=PASSWORD)
    client = redis.Redis.from_url(server.url)
    with client.pipeline(transaction=False) as pipe:
        for i in range(20_000):
            pipe.set(f"session:{i:08x}-0000-4000-8000-000000000000", "t", ex=3600)
        pipe.execute()
    client.close()
    yield server
    services.stop(server)


@pytest.mark.redis
def test_redis_killed_mid_audit_is_one_sentence_naming_redis(bare, doomed_redis):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env.update(REDIS_URL=doomed_redis.url, SOVREN_DB_STORES="postgres,redis")
    audit = subprocess.Popen([SOVREN_DB, "redis", "audit", "--rate", "2000", "--count", "10", "--format", "json"],
                             cwd=bare, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)  # the rate keeps it at it for ~10 s: it is mid-scan now
    assert audit.poll() is None, audit.communicate()
    os.kill(doomed_redis.pid, signal.SIGKILL)
    out, err = audit.communicate(timeout=60)
    assert audit.returncode == 2 and "Traceback" not in err, (out, err)
    error = json.loads(out)["error"]
    assert error["store"] == "redis" and error["kind"] == "StoreUnavailable"
    assert error["message"].startswith(f"redis server at redis://:***@127.0.0.1:{doomed_redis.port}/0 is not usable:")
    assert PASSWORD not in out + err and "BrokenPipe" not in out + err


@pytest.mark.redis
def test_a_raw_connection_whose_server_died_raises_redis_s_own_error(doomed_redis):
    from sovren_db.redis.scan import RawNode

    node = RawNode(redis.Redis.from_url(doomed_redis.url), name="127.0.0.1")
    os.kill(doomed_redis.pid, signal.SIGKILL)
    time.sleep(0.2)
    with pytest.raises(redis.ConnectionError, match="127.0.0.1"):
        for _ in range(100):  # the first writes may still land in the socket buffer
            node.send(b"*1\r\n$4\r\nPING\r\n" * 1000)
            node.read(1000)


@pytest.mark.postgres
def test_a_unique_constraint_using_index_on_a_partitioned_table_is_a_typed_refusal(project, pg_url):
    assert run("migrate").exit_code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE parted (id int, at date) PARTITION BY RANGE (at)")
    add_revision(project, "p1", "    op.create_unique_constraint_using_index('parted_id_key', 'parted')")
    sentence = refused(run("migrate", "--format", "json"), "json")
    assert "parted is partitioned" in sentence and "NotImplementedError" not in sentence
    assert json.loads(run("migrate", "--format", "json").stdout)["error"]["kind"] == "Refused"


@pytest.mark.parametrize("error, store", [
    (redis.ConnectionError("gone"), "redis"), (psycopg.OperationalError("gone"), "postgres"),
    (__import__("pymongo").errors.AutoReconnect("gone"), "mongo"), (ValueError("x"), None),
])
def test_an_unexpected_driver_error_names_the_store_it_came_from(error, store):
    from sovren_db.cli.main import _store_of

    assert _store_of(error) == store
    try:
        raise RuntimeError("wrapped") from error
    except RuntimeError as wrapped:
        assert _store_of(wrapped) == store
