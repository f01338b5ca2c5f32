"""The keyspace audit on a real server: every finding, sampling, rate limit, odd keys."""

from __future__ import annotations

import pytest
import redis

from sovren_db.core.errors import StoreUnavailable
from sovren_db.redis import scan
from sovren_db.redis.audit import AuditOptions, KeyspaceAudit
from sovren_db.redis.checks import audit_findings, check_findings, drift_findings, run_audit
from sovren_db.redis.declared import load_declarations
from sovren_db.redis.state import FRAMEWORK_FAMILIES, KeyFamily, TtlRule

pytestmark = pytest.mark.redis


def seed_problems(client) -> None:
    client.set("session:1", "ok", ex=100)
    client.set("session:2", "no ttl")
    client.set("session:3", "long ttl", ex=10 * 86400)
    client.hset("session:4", "not", "a string")
    client.set("session:5", "x" * 20, ex=100)
    client.hset("profile:1", mapping={"a": 1, "b": 2})
    client.hset("profile:2", mapping={str(i): i for i in range(5)})
    client.hset("profile:3", "a", 1)
    client.expire("profile:3", 500)
    client.xadd("{q}:outbox", {"m": "1"})
    client.hset("{sovren-db}:ledger", "r:up:0", "{}")
    for key in ("legacy:a", "legacy:b", "legacy:c", "tmp1"):
        client.set(key, "?")


def test_every_key_finding(project, backend, client):
    seed_problems(client)
    declared = load_declarations(project / "redis")
    report = run_audit(backend, declared, AuditOptions(count=10))
    session, profile, outbox = (report.families[n] for n in ("session", "profile", "outbox"))
    assert (session.keys, session.inspected) == (5, 5)
    assert {p: t.count for p, t in session.problems.items()} == {
        "missing_ttl": 1, "ttl_above_max": 1, "wrong_type": 1, "oversize": 1}
    assert session.problems["missing_ttl"].examples == ["session:2"]
    assert session.problems["wrong_type"].examples == ["session:4 (hash)"]
    assert session.problems["oversize"].examples == ["session:5 (20 bytes)"]
    assert session.problems["ttl_above_max"].examples[0].startswith("session:3 (")
    assert {p: t.count for p, t in profile.problems.items()} == {"oversize": 1, "unexpected_ttl": 1}
    assert profile.problems["oversize"].examples == ["profile:2 (5 elements)"]
    assert outbox.problems["missing_group"].examples == ["{q}:outbox (no consumer group workers)"]
    assert report.families["sovren_db_ledger"].keys == 1
    assert {p: (t.count, sorted(t.examples)) for p, t in report.unknown.items()} == {
        "legacy:*": (3, ["legacy:a", "legacy:b", "legacy:c"]), "tmp*": (1, ["tmp1"])}
    assert (report.scanned, report.complete, report.nodes) == (14, True, 1)

    findings = audit_findings(backend.settings, declared, report)
    codes = sorted(f.code for f in findings)
    assert codes == sorted(["redis-missing-ttl", "redis-ttl-bounds", "redis-wrong-type", "redis-oversize",
                            "redis-oversize", "redis-unexpected-ttl", "redis-unknown-keys", "redis-unknown-keys"])
    # the missing group of the one-key stream is drift (redis-group, with its operation), not repeated here
    missing = next(f for f in findings if f.code == "redis-missing-ttl")
    assert missing.sentence() == ("key family session (session:{user_id}): 1 of 5 inspected keys have no TTL "
                                  "although one is required, e.g. session:2")
    assert missing.file == "redis/app.toml"


def test_a_clean_keyspace_gives_no_audit_finding(project, backend, client):
    client.set("session:1", "ok", ex=100)
    client.xadd("{q}:outbox", {"m": "1"})
    client.xgroup_create("{q}:outbox", "workers")
    report = run_audit(backend, load_declarations(project / "redis"), AuditOptions())
    assert audit_findings(backend.settings, load_declarations(project / "redis"), report) == []
    assert report.families["outbox"].inspected == 1


def test_memory_sample_and_byte_limits_of_aggregates(backend, client):
    tags = KeyFamily("tags", "tags:{id}", "set", TtlRule("optional"), max_bytes=200)
    client.sadd("tags:small", "a")
    client.sadd("tags:big", *[f"member-{i:04d}" for i in range(300)])
    report = KeyspaceAudit([tags], AuditOptions(memory_every=1)).run(backend.masters())
    stats = report.families["tags"]
    assert stats.memory_samples == 2 and stats.estimated_bytes > 200
    assert [e.split(" (")[0] for e in stats.problems["oversize"].examples] == ["tags:big"]


def fill(client, count: int, prefix: str = "item") -> None:
    pipe = client.pipeline(transaction=False)
    for i in range(count):
        pipe.set(f"{prefix}:{i}", i, ex=1000)
    pipe.execute()


ITEMS = [KeyFamily("item", "item:{n}", "string", TtlRule("required", max=3600))]


def test_sampling_stops_early_or_inspects_a_fraction(backend, client):
    fill(client, 3000)
    stopped = KeyspaceAudit(ITEMS, AuditOptions(count=100, max_keys=500)).run(backend.masters())
    assert 500 <= stopped.scanned < 1000 and not stopped.complete
    fraction = KeyspaceAudit(ITEMS, AuditOptions(count=200, fraction=0.1)).run(backend.masters())
    assert fraction.families["item"].keys == 3000 and fraction.complete
    assert fraction.families["item"].inspected == 300


def test_rate_limit_sleeps_between_batches(backend, client):
    fill(client, 2000)
    audit = KeyspaceAudit(ITEMS, AuditOptions(count=100, rate=1000))
    slept = []
    audit.sleep = slept.append
    report = audit.run(backend.masters())
    assert report.scanned == 2000
    assert len(slept) >= 5 and sum(slept) > 1.0  # 2000 keys at 1000 keys/s: about 2 s of pacing


def test_binary_keys_and_replies_split_anywhere(redis_url, client):
    odd = [b"item:\r\n1", b"item:\x00\xff", b"item:" + b"y" * 3000, b"\r\n:*3\r\n"]
    for key in odd:
        client.set(key, "v", ex=100)
    client.set(b"item:\r\nnottl", "v")
    fill(client, 300)
    small_reads = redis.Redis.from_url(redis_url, socket_read_size=7)  # every reply cut across reads
    report = KeyspaceAudit(ITEMS, AuditOptions(count=50)).run([("server", small_reads)])
    assert report.families["item"].keys == 304
    assert report.families["item"].problems["missing_ttl"].examples == ["item:\\r\\nnottl"]
    assert report.unknown["\\r\\n:*"].count == 1


def test_check_findings_is_the_audit_and_drift_findings_the_diff(project, backend, client):
    client.set("session:2", "no ttl")
    assert check_findings(backend.settings, backend, data=False) == []  # drift comes as operations
    assert {f.code for f in check_findings(backend.settings, backend, data=True)} == {"redis-missing-ttl"}
    drift = drift_findings(backend.settings, load_declarations(project / "redis"), backend)
    assert {f.code for f in drift} == {"redis-registry", "redis-group"}
    families = [f for f in drift if f.object == "key family session"]
    assert families[0].message == "not published in the registry" and families[0].file == "redis/app.toml"


def test_framework_families_are_known(backend, client):
    backend.set_position("abc")
    backend.publish("family:x", {"name": "x"})
    report = KeyspaceAudit(list(FRAMEWORK_FAMILIES)).run(backend.masters())
    assert report.unknown == {} and report.families["sovren_db_position"].problems == {}


def test_streams_with_placeholders_are_checked_for_their_groups(backend, client):
    jobs = KeyFamily("jobs", "jobs:{queue}", "stream", TtlRule("none"), groups=("workers",))
    for name in ("mail", "sms"):
        client.xadd(f"jobs:{name}", {"m": 1})
    client.xgroup_create("jobs:mail", "workers")
    report = KeyspaceAudit([jobs]).run(backend.masters())
    assert report.families["jobs"].problems["missing_group"].examples == ["jobs:sms (no consumer group workers)"]


def test_a_server_lost_during_the_audit_is_one_sentence(project, backend, client, monkeypatch):
    fill(client, 50)

    def lost(self, *args, **kwargs):
        raise redis.ConnectionError("Connection reset by peer")

    monkeypatch.setattr(scan.RawNode, "read_scan", lost)
    with pytest.raises(StoreUnavailable, match=r"^redis server at redis://.* is not usable: Connection reset by peer\.$"):
        run_audit(backend, load_declarations(project / "redis"), AuditOptions())


def test_server_expectations_are_checked(project, backend, client):
    (project / "redis" / "server.toml").write_text(
        '[server]\nmaxmemory-policy = "volatile-lru"\nnotify-keyspace-events = "Ex"\n')
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    client.config_set("notify-keyspace-events", "xE")  # the same flags, in the server's order
    try:
        client.config_set("maxmemory-policy", "noeviction")
        declared = load_declarations(project / "redis")
        found = [f for f in drift_findings(backend.settings, declared, backend) if f.code == "redis-config"]
        assert [f.sentence() for f in found] == [
            "server configuration maxmemory-policy: is 'noeviction', expected 'volatile-lru'"]
        client.config_set("maxmemory-policy", "volatile-lru")
        assert not [f for f in drift_findings(backend.settings, declared, backend) if f.code == "redis-config"]
    finally:
        client.config_set("maxmemory-policy", before)
        client.config_set("notify-keyspace-events", "")
