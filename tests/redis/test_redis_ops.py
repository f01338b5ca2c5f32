"""Operations against a real server: convergent, resumable, guarded."""

from __future__ import annotations

import pytest

from sovren_db.core.runtime import Runtime

from sovren_db.core.errors import MigrationFailed, Refused
from sovren_db.core.runtime import run_step
from sovren_db.redis import keyops, moves, ops
from sovren_db.redis.state import KeyFamily, TtlRule

from redis_helpers import after_each_batch, connect

pytestmark = pytest.mark.redis

OLD = KeyFamily("sess", "sess:{user_id}", "string", TtlRule("required", max=86400)).to_json()
NEW = KeyFamily("session", "session:v2:{user_id}", "string", TtlRule("required", max=86400)).to_json()


def seed_old_keys(client, count: int = 60) -> dict[bytes, tuple[bytes, int]]:
    """Keys of several types, half with a TTL; returns key -> (DUMP, PTTL)."""
    for i in range(count):
        key = f"sess:{i}"
        if i % 3 == 0:
            client.set(key, f"token-{i}")
        elif i % 3 == 1:
            client.hset(key, mapping={"user": i, "ip": "10.0.0.1"})
        else:
            client.rpush(key, *range(i))
        if i % 2:
            client.expire(key, 5000 + i)
    client.set("sess:1:other", "not of the family")
    return {f"sess:{i}".encode(): (client.dump(f"sess:{i}"), client.pttl(f"sess:{i}")) for i in range(count)}


def assert_moved_once(client, before: dict[bytes, tuple[bytes, int]]) -> None:
    assert not [k for k in client.scan_iter("sess:*") if k != b"sess:1:other"]
    assert client.exists("sess:1:other")
    moved = set(client.scan_iter("session:v2:*"))
    assert moved == {b"session:v2:" + k.split(b":", 1)[1] for k in before}
    for key, (payload, ttl) in before.items():
        new_key = b"session:v2:" + key.split(b":", 1)[1]
        assert client.dump(new_key) == payload
        if ttl < 0:
            assert client.pttl(new_key) == -1
        else:
            assert 0 < client.pttl(new_key) <= ttl


def test_declare_and_retire_publish_the_registry(backend):
    backend.execute(ops.DeclareKeyFamilyOp(NEW))
    backend.execute(ops.DeclareChannelOp({"name": "live", "pattern": "live:{u}"}))
    assert backend.registry()["family:session"] == KeyFamily.from_json(NEW).to_json()
    assert backend.registry()["channel:live"]["pattern"] == "live:{u}"
    backend.execute(ops.DeclareKeyFamilyOp(NEW))  # convergent
    backend.execute(ops.RetireKeyFamilyOp(NEW["name"]))
    backend.execute(ops.RetireChannelOp("live"))
    assert backend.registry() == {}


def test_rename_moves_values_and_ttls(backend, client):
    before = seed_old_keys(client)
    backend.execute(ops.DeclareKeyFamilyOp(OLD))
    backend.execute(ops.RenameKeyFamilyOp(OLD, NEW))
    assert_moved_once(client, before)
    assert set(backend.registry()) == {"family:session"}
    backend.execute(ops.RenameKeyFamilyOp(OLD, NEW))  # nothing left: a rerun is harmless
    assert_moved_once(client, before)


def test_a_rename_that_dies_half_way_is_finished_by_the_next_run(backend, client, monkeypatch):
    before = seed_old_keys(client)
    moved = []

    def dies_after_25_keys(count):
        if count.moved >= 25:
            moved.append(count.moved)
            raise ConnectionError("the runner was killed")

    after_each_batch(monkeypatch, dies_after_25_keys)
    op = ops.RenameKeyFamilyOp(OLD, NEW, batch=10)
    with pytest.raises(ConnectionError):
        backend.execute(op)
    assert 25 <= moved[0] < len(before) and len(list(client.scan_iter("session:v2:*"))) == moved[0]
    assert "family:session" not in backend.registry()

    monkeypatch.undo()
    backend.execute(op)
    assert_moved_once(client, before)
    assert "family:session" in backend.registry()


def test_a_move_interrupted_after_its_copy_is_completed(backend, client):
    client.set("sess:7", "v", ex=100)
    client.restore("session:v2:7", client.pttl("sess:7"), client.dump("sess:7"))  # copied, source not yet deleted
    move, count = moves.Move(KeyFamily.from_json(OLD).parsed, KeyFamily.from_json(NEW).parsed), moves.MoveCount()
    moves.settle_existing(backend, move, "fail", moves.Pace(), count)
    assert (count.moved, count.completed) == (0, 1)
    assert not client.exists("sess:7") and client.get("session:v2:7") == b"v"


@pytest.mark.parametrize("policy, survivor", [("keep-new", b"newer"), ("keep-old", b"older")])
def test_rename_conflicts(backend, client, policy, survivor):
    client.set("sess:1", "older")
    client.set("session:v2:1", "newer")
    with pytest.raises(MigrationFailed, match=r"Cannot move Redis key 'sess:1' to 'session:v2:1': the destination"):
        backend.execute(ops.RenameKeyFamilyOp(OLD, NEW))
    assert client.get("sess:1") == b"older"  # nothing half-done
    backend.execute(ops.RenameKeyFamilyOp(OLD, NEW, on_conflict=policy))
    assert not client.exists("sess:1") and client.get("session:v2:1") == survivor


def test_rename_refuses_patterns_that_overlap_or_differ(backend):
    with pytest.raises(MigrationFailed, match="matches both patterns"):
        backend.execute(ops.RenameKeyFamilyOp(dict(OLD, pattern="a{user_id}"), dict(NEW, pattern="ab{user_id}")))
    with pytest.raises(MigrationFailed, match="same placeholders"):
        backend.execute(ops.RenameKeyFamilyOp(OLD, dict(NEW, pattern="s:{id}")))


def test_backfill_ttl_only_where_missing_or_above_the_maximum(backend, client):
    family = KeyFamily("session", "session:{u}", "string", TtlRule("required", max=3600, default=600)).to_json()
    client.set("session:none", 1)
    client.set("session:long", 1, ex=86400)
    client.set("session:fine", 1, ex=60)
    client.set("other:none", 1)
    op = ops.BackfillTtlOp(family, 600)
    backend.execute(op)
    assert 590_000 < client.pttl("session:none") <= 600_000
    assert 590_000 < client.pttl("session:long") <= 600_000
    assert client.pttl("session:fine") <= 60_000
    assert client.pttl("other:none") == -1
    pattern = KeyFamily.from_json(family).parsed
    assert keyops.backfill_ttl(backend, pattern, 600, 3600) == 0  # converged


def test_delete_family_is_guarded(project, backend, client, redis_url, monkeypatch):
    family = KeyFamily("old", "old:{id}", "string").to_json()
    client.set("old:1", 1)
    client.set("old:2", 1)
    client.set("old:1:keep", 1)
    backend.execute(ops.DeclareKeyFamilyOp(family))
    with pytest.raises(Refused, match="still published; retire it first"):
        backend.execute(ops.DeleteKeyFamilyOp(family))
    backend.execute(ops.RetireKeyFamilyOp(family["name"]))

    # In a protected environment the runtime refuses the step unless migrate --allow-destructive.
    production = connect(project, redis_url, SOVREN_ENV="production")
    try:
        refusing = Runtime(production.settings)
        with pytest.raises(Refused, match="environment 'production' is protected"):
            refusing.collect(ops.DeleteKeyFamilyOp(family), _Operations())
        assert client.exists("old:1")
        allowing = Runtime(production.settings, allow_destructive=True)
        allowing.collect(ops.DeleteKeyFamilyOp(family), _Operations())
        production.execute(allowing._pending.pop())
    finally:
        production.close()
    assert not client.exists("old:1", "old:2") and client.exists("old:1:keep")


def test_set_config_and_its_reverse(backend, client):
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    op = ops.SetConfigOp("maxmemory-policy", "volatile-lru", before)
    try:
        backend.execute(op)
        assert client.config_get("maxmemory-policy")["maxmemory-policy"] == "volatile-lru"
        assert backend.config_values(["maxmemory-policy"]) == {"maxmemory-policy": ["volatile-lru"]}
    finally:
        backend.execute(op.reverse())
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] == before


def test_consumer_groups(backend, client):
    op = ops.CreateGroupOp("{q}:outbox", "workers")
    backend.execute(op)
    backend.execute(op)  # BUSYGROUP is success
    assert [g["name"] for g in client.xinfo_groups("{q}:outbox")] == [b"workers"]
    backend.execute(op.reverse())
    assert client.xinfo_groups("{q}:outbox") == []


def test_ledger_and_position(backend):
    assert backend.position() is None
    run_step(backend, "abc:up:0", ops.DeclareKeyFamilyOp(NEW), "abc")
    run_step(backend, "abc:up:1", ops.DeclareKeyFamilyOp(OLD), "abc")
    assert backend.ledger_keys("abc:up:") == {"abc:up:0", "abc:up:1"}
    backend.ledger_forget("abc:up:")
    assert backend.ledger_keys("abc:") == set()
    backend.set_position("abc")
    assert backend.position() == "abc"
    backend.set_position(None)
    assert backend.position() is None


def test_a_failing_step_is_one_sentence_and_not_recorded(backend, client):
    client.set("{q}:outbox", "not a stream")
    with pytest.raises(MigrationFailed, match=r"^Revision r1, redis step 0 \(create consumer group workers"):
        run_step(backend, "r1:up:0", ops.CreateGroupOp("{q}:outbox", "workers"), "r1")
    assert backend.ledger_keys("r1:") == set()


class _Operations:
    """The two attributes Runtime.collect reads from Alembic's Operations, online mode."""

    class migration_context:  # noqa: N801
        as_sql = False
