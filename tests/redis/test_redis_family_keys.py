"""Finding a family's keys: a fully fixed key is asked for with EXISTS (no SCAN), and deleting
seeded keys scans each master once for every family together. Results match the per-family
SCAN ... MATCH walk they replace (re-implemented here as the reference)."""

from __future__ import annotations

import pytest
import redis
from redis.cluster import RedisCluster

from sovren_db.redis.declared import load_declarations
from sovren_db.redis.erase import erase_subject
from sovren_db.redis.keyops import unlink_keys
from sovren_db.redis.patterns import parse_pattern
from sovren_db.redis.state import KeyFamily
from sovren_db.seeds import redis_load
from sovren_db.seeds.profiles import load_profile
from sovren_db.seeds.redis_keys import is_seeded_value

from redis_helpers import REPO, connect

pytestmark = pytest.mark.redis

SEEDED = "5eed{:04x}-0000-8000-8000-{:012x}"


def seeded_id(i: int) -> str:
    return SEEDED.format(i, i)


@pytest.fixture
def commands(monkeypatch):
    """The name (and arguments) of every command sent by a client (standalone, cluster or cluster node)."""
    sent: list[tuple] = []

    def recording(original):
        def execute_command(self, *args, **options):
            sent.append(tuple(a.upper() if i == 0 and isinstance(a, str) else a for i, a in enumerate(args)))
            return original(self, *args, **options)
        return execute_command

    monkeypatch.setattr(redis.Redis, "execute_command", recording(redis.Redis.execute_command))
    monkeypatch.setattr(RedisCluster, "execute_command", recording(RedisCluster.execute_command))
    return sent


def names(sent: list[tuple]) -> list[str]:
    return [args[0] for args in sent]


def reference_batches(backend, pattern, values=None) -> set[bytes]:
    """The keys the former family_batches found: SCAN MATCH on every master, then the regex."""
    regex, glob = pattern.regex(), pattern.glob(values)
    wanted = {name: value.encode() for name, value in (values or {}).items()}
    found = set()
    for _, client in backend.masters():
        for key in client.scan_iter(match=glob, count=1000):
            match = regex.fullmatch(key)
            if match is not None and all(match[n] == v for n, v in wanted.items()):
                found.add(key)
    return found


def found_keys(backend, pattern, values=None) -> set[bytes]:
    keys = [k for _, batch in backend.family_batches(pattern, values=values) for k in batch]
    assert len(keys) == len(set(keys))
    return set(keys)


# -- (a) a fully fixed key: EXISTS, no SCAN ----------------------------------------------

def test_a_fully_fixed_key_is_asked_with_exists_not_scanned(backend, client, commands):
    for i in range(200):
        client.set(f"session:{i}", "t")
    client.set("session:a*", "t")
    client.set("session:ab", "t")
    client.set("session:[x]", "t")
    session = parse_pattern("session:{user_id}")
    commands.clear()
    batches = list(backend.family_batches(session, values={"user_id": "42"}))
    assert [keys for _, keys in batches] == [[b"session:42"]]
    assert batches[0][0] is backend.client
    assert "SCAN" not in names(commands) and names(commands).count("EXISTS") == 1
    commands.clear()
    assert list(backend.family_batches(session, values={"user_id": "999"})) == []
    assert names(commands) == ["EXISTS"]
    # glob characters are literal; a value the placeholder cannot hold finds nothing (and asks nothing)
    for value in ("42", "999", "a*", "[x]", "a?", "4:2", "x}"):
        assert found_keys(backend, session, {"user_id": value}) == reference_batches(backend, session,
                                                                                    {"user_id": value})
    commands.clear()
    assert list(backend.family_batches(session, values={"user_id": "4:2"})) == []
    assert "SCAN" not in names(commands)


def test_a_literal_pattern_is_one_exists(backend, client, commands):
    client.set("{comms}:dead", "x")
    client.set("{comms}:deadx", "x")
    commands.clear()
    assert found_keys(backend, parse_pattern("{{comms}}:dead")) == {b"{comms}:dead"}
    assert found_keys(backend, parse_pattern("{{comms}}:gone")) == set()
    assert "SCAN" not in names(commands)


def test_partly_fixed_values_still_scan_and_find_the_same_keys(backend, client, commands):
    for user in range(20):
        for window in range(5):
            client.set(f"ratelimit:user:{user}:{window}", "1")
    client.set("ratelimit:user:3:4:extra", "1")
    pattern = parse_pattern("ratelimit:user:{user_id}:{window}")
    commands.clear()
    assert found_keys(backend, pattern, {"user_id": "3"}) == {b"ratelimit:user:3:%d" % w for w in range(5)}
    assert "SCAN" in names(commands)
    assert found_keys(backend, pattern) == reference_batches(backend, pattern)
    assert found_keys(backend, pattern, {"window": "2"}) == reference_batches(backend, pattern, {"window": "2"})
    commands.clear()
    assert found_keys(backend, pattern, {"user_id": "3", "window": "4"}) == {b"ratelimit:user:3:4"}
    assert "SCAN" not in names(commands)


def test_erase_finds_the_same_keys_without_scanning(project, backend, client, commands):
    for i in range(100):
        client.set(f"session:{i}", "t")
        client.hset(f"profile:{i}", "a", "1")
    client.set("session:7:x", "not of the family")
    declared = load_declarations(project / "redis")
    commands.clear()
    assert sorted(erase_subject(backend, declared, "user_id", "7", dry_run=True)) == [b"profile:7", b"session:7"]
    assert "SCAN" not in names(commands)
    assert sorted(erase_subject(backend, declared, "user_id", "7")) == [b"profile:7", b"session:7"]
    assert not client.exists("session:7", "profile:7") and client.exists("session:7:x", "session:8", "profile:8") == 3
    assert "SCAN" not in names(commands)


# -- (b) seeded keys: one SCAN per master for every family -------------------------------------

def repo_families() -> list[KeyFamily]:
    """The families the ci profile seeds (what the seed passes to delete_seeded)."""
    seeded = load_profile(REPO / "seeds", "ci").families
    return [f for f in load_declarations(REPO / "redis").families.values() if f.name in seeded]


def write_mixed_keys(client) -> None:
    """Seeded and hand-written keys of several families, seeded and other stream entries, unknown keys."""
    for i in range(150):
        seeded = seeded_id(i)
        client.set(f"session:{seeded}", "t", ex=3600)
        client.set(f"session:user-{i}", "t", ex=3600)
        client.sadd(f"session:devices:{seeded}", "phone")
        client.sadd(f"session:devices:user-{i}", "phone")
        client.hset(f"cache:executive:{seeded}", "role", "CSO")
        client.hset(f"comms:status:{seeded}", "status", "sent")
        client.set(f"ratelimit:user:{seeded}:1", "1")    # a family no seed writes: kept
        client.set(f"legacy:{seeded}", "?")              # no family: kept
        client.xadd("{comms}:outbox", {"messageId": seeded})
        client.xadd("{comms}:outbox", {"messageId": f"hand-{i}"})
    client.set("session:" + seeded_id(1) + ":extra", "not of the family")


def reference_delete_seeded(backend, families: list[KeyFamily]) -> dict[str, int]:
    """The former delete_seeded: one SCAN MATCH walk per family."""
    deleted = {}
    for family in families:
        if family.fixed_key is not None:
            deleted[family.name] = redis_load._delete_entries(backend.client, family.fixed_key)
            continue
        regex, count = family.parsed.regex(), 0
        for _, client in backend.masters():
            keys = [k for k in client.scan_iter(match=family.parsed.glob(), count=1000) if regex.fullmatch(k)]
            seeded = [k for k in keys if any(is_seeded_value(v) for v in regex.fullmatch(k).groupdict().values())]
            if seeded:
                count += unlink_keys(client, seeded)
        deleted[family.name] = count
    return deleted


def everything(client) -> dict[bytes, object]:
    out = {}
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        out[key] = [f[b"messageId"] for _, f in client.xrange(key)] if kind == b"stream" else kind
    return out


def test_delete_seeded_scans_each_master_once_and_deletes_the_same(project, redis_url, client, commands):
    backend = connect(project, redis_url)
    try:
        families = repo_families()
        write_mixed_keys(client)
        expected = reference_delete_seeded(backend, families)
        left = everything(client)
        client.flushdb()
        write_mixed_keys(client)
        advanced: list[int] = []
        commands.clear()
        deleted = redis_load.delete_seeded(backend, families, advanced.append)
        scans = [args for args in commands if args[0] == "SCAN"]
        assert [args[1] for args in scans].count(0) == 1          # one pass over the one master
        assert not any(b"MATCH" in args or "MATCH" in args for args in scans)
        assert deleted == expected and list(deleted) == list(expected)
        assert deleted["session"] == deleted["session_devices"] == deleted["comms_outbox"] == 150
        assert deleted["executive_cache"] == deleted["comms_status"] == 150
        assert advanced == list(deleted.values())
        assert everything(client) == left
        assert client.exists("session:user-3", f"ratelimit:user:{seeded_id(3)}:1", f"legacy:{seeded_id(3)}") == 3
        assert redis_load.seeded_entries(client, b"{comms}:outbox") == set()
        assert redis_load.delete_seeded(backend, families) == {name: 0 for name in expected}
    finally:
        backend.close()


def test_stream_entries_are_paged(client, monkeypatch):
    monkeypatch.setattr(redis_load, "PAGE", 7)
    for i in range(30):
        client.xadd("{comms}:dead", {"messageId": seeded_id(i) if i % 3 else f"hand-{i}"})
    assert redis_load.seeded_entries(client, b"{comms}:dead") == {seeded_id(i).encode() for i in range(30) if i % 3}
    assert redis_load._delete_entries(client, b"{comms}:dead") == 20
    assert [f[b"messageId"] for _, f in client.xrange("{comms}:dead")] == [f"hand-{i}".encode()
                                                                          for i in range(0, 30, 3)]
    assert redis_load._delete_entries(client, b"{comms}:dead") == 0


# -- on a cluster ------------------------------------------------------------------------


@pytest.mark.cluster
def test_fixed_key_on_a_cluster_comes_from_its_slot_without_scan(cluster_backend, cluster_client, commands):
    for i in range(60):
        cluster_client.set(f"session:{i}", "t")
    session = parse_pattern("session:{user_id}")
    for i in (0, 17, 42, 59):
        commands.clear()
        [(node, keys)] = list(cluster_backend.family_batches(session, values={"user_id": str(i)}))
        assert keys == [f"session:{i}".encode()] and node.get(keys[0]) == b"t"   # a node client: no redirection
        assert "SCAN" not in names(commands)
        assert found_keys(cluster_backend, session, {"user_id": str(i)}) == reference_batches(
            cluster_backend, session, {"user_id": str(i)})
    assert list(cluster_backend.family_batches(session, values={"user_id": "600"})) == []


@pytest.mark.cluster
def test_delete_seeded_on_a_cluster_scans_each_master_once(cluster_backend, cluster_client, commands):
    families = repo_families()
    write_mixed_keys(cluster_client)
    expected = reference_delete_seeded(cluster_backend, families)
    left = {k for _, c in cluster_backend.masters() for k in c.scan_iter(count=1000)}
    for _, node in cluster_backend.masters():
        node.flushall()
    write_mixed_keys(cluster_client)
    commands.clear()
    assert redis_load.delete_seeded(cluster_backend, families) == expected
    starts = [args for args in commands if args[0] == "SCAN" and args[1] == 0]
    assert len(starts) == len(cluster_backend.masters()) == 3
    assert {k for _, c in cluster_backend.masters() for k in c.scan_iter(count=1000)} == left
    assert expected["session"] == 150
