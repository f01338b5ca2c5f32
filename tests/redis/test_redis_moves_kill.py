"""kill -9 in the middle of a family move, then a rerun: it converges, standalone and on a cluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sovren_db.redis import ops
from sovren_db.redis.state import KeyFamily, TtlRule

from redis_helpers import REPO

pytestmark = pytest.mark.redis

OLD = KeyFamily("sess", "sess:{user_id}", "string", TtlRule("optional")).to_json()
NEW = KeyFamily("session", "session:v2:{user_id}", "string", TtlRule("optional")).to_json()
COUNT = 20_000

MOVER = """
import sys
sys.path.insert(0, {helpers!r})
from redis_helpers import connect
from sovren_db.redis import ops
backend = connect({project!r}, {url!r})
backend.execute(ops.RenameKeyFamilyOp({old!r}, {new!r}, batch=100, rate=4000))
"""


def seed(client) -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(COUNT):
        pipe.set(f"sess:{i}", f"v0-{i}", ex=10_000 if i % 2 else None)
    pipe.execute()


def count(client, glob: str) -> int:
    return sum(1 for _ in client.scan_iter(glob, count=1000))


def kill_mid_move(project: Path, url: str, client) -> None:
    """Start the move in a process of its own, kill -9 it once about a quarter of the keys moved."""
    script = MOVER.format(helpers=str(REPO / "tests" / "redis"), project=str(project), url=url, old=OLD, new=NEW)
    mover = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 60
    while count(client, "session:v2:*") < COUNT // 4:
        assert mover.poll() is None, "the move ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    os.kill(mover.pid, signal.SIGKILL)
    mover.wait()


def rerun_converges(backend, client) -> None:
    moved = count(client, "session:v2:*")
    # across cluster slots a batch (100 keys) may be copied with its sources not yet deleted
    assert COUNT // 4 <= moved < COUNT and 0 <= count(client, "sess:*") - (COUNT - moved) <= 100
    assert "move:session" in backend.registry()  # the killed move left its mark
    # while nobody moved keys, a client wrote some again under the old name, and a new one
    again = {f"sess:{i}": f"again-{i}" for i in range(0, COUNT, 400)}
    for key, value in {**again, "sess:fresh": "fresh"}.items():
        client.set(key, value)
    backend.execute(ops.RenameKeyFamilyOp(OLD, NEW, batch=100))
    assert count(client, "sess:*") == 0 and count(client, "session:v2:*") == COUNT + 1
    for i in range(0, COUNT, 97):
        expected = again.get(f"sess:{i}", f"v0-{i}")
        assert client.get(f"session:v2:{i}") == expected.encode()
        assert (client.ttl(f"session:v2:{i}") > 0) == bool(i % 2 and f"sess:{i}" not in again)
    assert client.get("session:v2:fresh") == b"fresh"
    assert set(backend.registry()) == {"family:session"}


def test_kill_9_mid_move_then_rerun_converges(project, backend, client, redis_url):
    seed(client)
    backend.execute(ops.DeclareKeyFamilyOp(OLD))
    kill_mid_move(project, redis_url, client)
    rerun_converges(backend, client)


def test_kill_9_mid_move_on_a_cluster_then_rerun_converges(project, cluster_backend, cluster_client, cluster_url):
    seed(cluster_client)
    cluster_backend.execute(ops.DeclareKeyFamilyOp(OLD))
    kill_mid_move(project, cluster_url, cluster_client)
    rerun_converges(cluster_backend, cluster_client)
