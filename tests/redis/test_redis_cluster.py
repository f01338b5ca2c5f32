"""Redis Cluster: every master audited, keys moved across slots, reserved keys on one slot."""

from __future__ import annotations

import pytest
import redis

from sovren_db import services
from sovren_db.core.errors import StoreUnavailable
from sovren_db.redis import moves, ops
from sovren_db.redis.audit import AuditOptions
from sovren_db.redis.checks import drift_findings, run_audit
from sovren_db.redis.declared import load_declarations
from sovren_db.redis.state import KeyFamily, TtlRule

from redis_helpers import connect

pytestmark = [pytest.mark.redis, pytest.mark.cluster]



def test_connect_detects_the_cluster(cluster_backend, redis_cluster):
    assert cluster_backend.cluster
    assert sorted(name for name, _ in cluster_backend.masters()) == sorted(f"{h}:{p}" for h, p in redis_cluster.nodes)


def test_audit_covers_every_master(project, cluster_backend, cluster_client):
    for i in range(300):
        cluster_client.set(f"session:{i}", "t", ex=100)
    for i in range(30):
        cluster_client.set(f"session:nottl{i}", "t")
        cluster_client.set(f"legacy:{i}", "?")
    report = run_audit(cluster_backend, load_declarations(project / "redis"), AuditOptions(count=50))
    assert report.nodes == 3 and report.scanned == 360
    assert report.families["session"].keys == 330
    assert report.families["session"].problems["missing_ttl"].count == 30
    assert report.unknown["legacy:*"].count == 30
    sampled = run_audit(cluster_backend, load_declarations(project / "redis"), AuditOptions(count=20, max_keys=60))
    assert not sampled.complete and 60 <= sampled.scanned < 360


def test_registry_ledger_and_config_on_a_cluster(cluster_backend, redis_cluster):
    family = KeyFamily("session", "session:{u}", "string").to_json()
    cluster_backend.execute(ops.DeclareKeyFamilyOp(family))
    cluster_backend.set_position("r1")
    cluster_backend.ledger_record("r1:up:0", ops.DeclareKeyFamilyOp(family))
    assert cluster_backend.registry()["family:session"]["pattern"] == "session:{u}"
    assert (cluster_backend.position(), cluster_backend.ledger_keys("r1:")) == ("r1", {"r1:up:0"})
    cluster_backend.execute(ops.SetConfigOp("maxmemory-policy", "volatile-lru", "noeviction"))
    try:
        assert cluster_backend.config_values(["maxmemory-policy"]) == {"maxmemory-policy": ["volatile-lru"] * 3}
    finally:
        cluster_backend.execute(ops.SetConfigOp("maxmemory-policy", "noeviction"))


def test_drift_on_a_cluster(project, cluster_backend):
    findings = drift_findings(cluster_backend.settings, load_declarations(project / "redis"), cluster_backend)
    assert {f.code for f in findings} == {"redis-registry", "redis-group"}


OLD = KeyFamily("sess", "sess:{user_id}", "string", TtlRule("optional")).to_json()
NEW = KeyFamily("session", "session:v2:{user_id}", "string", TtlRule("optional")).to_json()


def test_rename_across_slots_dies_and_is_finished(cluster_backend, cluster_client, monkeypatch):
    for i in range(80):
        cluster_client.set(f"sess:{i}", f"v{i}", ex=1000 + i if i % 2 else None)
    real, moved = moves._copy_across_slots, []

    def dies_after_30(backend, client, pairs, **kwargs):
        room = max(0, 30 - len(moved))
        moved.extend(pairs[:room])
        real(backend, client, pairs[:room], **kwargs)
        if room < len(pairs):
            raise redis.ConnectionError("killed")

    monkeypatch.setattr(moves, "_copy_across_slots", dies_after_30)
    op = ops.RenameKeyFamilyOp(OLD, NEW)
    with pytest.raises(redis.ConnectionError):
        cluster_backend.execute(op)
    # a copy made, its source not yet deleted: the rerun must finish it too
    left = [i for i in range(80) if cluster_client.exists(f"sess:{i}")]
    assert len(left) == 50
    cluster_client.restore(f"session:v2:{left[0]}", max(0, cluster_client.pttl(f"sess:{left[0]}")),
                           cluster_client.dump(f"sess:{left[0]}"))
    monkeypatch.setattr(moves, "_copy_across_slots", real)
    cluster_backend.execute(op)
    assert [cluster_client.exists(f"sess:{i}") for i in range(80)] == [0] * 80
    for i in range(80):
        assert cluster_client.get(f"session:v2:{i}") == f"v{i}".encode()
        assert (cluster_client.pttl(f"session:v2:{i}") > 0) == bool(i % 2)


def test_rename_within_a_hash_tag_uses_renamenx(cluster_backend, cluster_client, monkeypatch):
    old = dict(OLD, pattern="sess:{{{user_id}}}")
    new = dict(NEW, pattern="session:{{{user_id}}}")
    for i in range(20):
        cluster_client.set(f"sess:{{{i}}}", i)
    monkeypatch.setattr(moves, "_copy_across_slots", lambda *a, **k: pytest.fail("no copy expected in one slot"))
    cluster_backend.execute(ops.RenameKeyFamilyOp(old, new))
    assert sorted(int(cluster_client.get(f"session:{{{i}}}")) for i in range(20)) == list(range(20))


@pytest.mark.slow
def test_a_cluster_node_down_is_one_sentence(project, tmp_path):
    cluster = services.start_redis_cluster(tmp_path / "cluster", masters=3)
    try:
        services.stop(cluster.servers[2])
        with pytest.raises(StoreUnavailable) as caught:
            connect(project, cluster.url)
        message = str(caught.value)
        port = cluster.servers[2].port
        assert message.startswith(f"redis server at {cluster.url} is not usable: ")
        assert f"cluster node 127.0.0.1:{port} does not answer" in message or "cluster state is fail" in message
        assert "\n" not in message
    finally:
        services.stop(cluster)
