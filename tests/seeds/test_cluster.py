"""Seeding a three-master Redis Cluster: every key on the master of its slot, reset finds them all."""

from __future__ import annotations

import json

import pytest
import redis

from sovren_db import commands
from sovren_db.core.config import load_settings

from .helpers import FRAMEWORK_KEYS, run

pytestmark = [pytest.mark.postgres, pytest.mark.cluster]


@pytest.fixture
def cluster_triad(project, redis_cluster, monkeypatch):
    nodes = [redis.Redis(host=host, port=port) for host, port in redis_cluster.nodes]
    for node in nodes:
        node.flushall()
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,redis")
    monkeypatch.setenv("REDIS_URL", redis_cluster.url)
    commands.migrate(load_settings(project))
    yield nodes
    for node in nodes:
        node.close()


def seeded_keys(nodes) -> dict[bytes, redis.Redis]:
    return {key: node for node in nodes for key in node.scan_iter(count=1000) if not key.startswith(FRAMEWORK_KEYS)}


def test_keys_land_on_the_master_of_their_slot_and_reset_finds_them(cluster_triad):
    nodes = cluster_triad
    result = run("seed", "--profile", "ci", "--format", "json")
    assert result.exit_code == 0, result.output   # a key sent to the wrong master would have failed (MOVED)
    counts = json.loads(result.output)["stores"]["redis"]["counts"]
    keys = seeded_keys(nodes)
    assert len({id(node) for node in keys.values()}) == 3          # spread over every master
    streams = {b"{comms}:outbox": counts["comms_outbox"], b"{comms}:dead": counts["comms_dead"]}
    assert len(keys) == sum(counts.values()) - sum(streams.values()) + len(streams)
    for key, entries in streams.items():
        assert keys[key].xlen(key) == entries
    sessions = [k for k in keys if k.startswith(b"session:5eed")]
    assert len(sessions) == counts["session"] and all(keys[k].ttl(k) > 0 for k in sessions)

    again = run("seed", "--profile", "ci", "--seed", "3", "--reset")
    assert again.exit_code == 0, again.output
    replaced = seeded_keys(nodes)
    assert not set(sessions) & set(replaced)
    assert any(k.startswith(b"session:5eed") for k in replaced)
