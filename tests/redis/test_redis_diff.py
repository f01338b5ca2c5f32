"""Pure: the diff of declared state against the published registry, config and groups."""

from __future__ import annotations

from dataclasses import replace

from sovren_db.redis.compare.config import diff_config, normalize_config
from sovren_db.redis.compare.families import diff_families
from sovren_db.redis.diff import diff_redis
from sovren_db.redis.live import LiveRedis, registry_state
from sovren_db.redis.ops import (
    ContractKeyFamilyOp,
    BackfillTtlOp,
    CreateGroupOp,
    DeclareChannelOp,
    DeclareKeyFamilyOp,
    RenameKeyFamilyOp,
    RetireChannelOp,
    RetireKeyFamilyOp,
    SetConfigOp,
)
from sovren_db.redis.state import Channel, KeyFamily, RedisState, TtlRule

SESSION = KeyFamily("session", "session:{user_id}", "string", TtlRule("required", max=86400, default=3600),
                    pii=True, subject="user_id")
CACHE = KeyFamily("cache", "cache:{h}", "string", TtlRule("optional"))


def published(*families: KeyFamily, channels=()) -> RedisState:
    docs = {f"family:{f.name}": f.to_json() for f in families}
    docs.update({f"channel:{c.name}": c.to_json() for c in channels})
    return registry_state(docs)


def test_in_sync_gives_nothing():
    state = RedisState({"session": SESSION})
    assert diff_redis(state, LiveRedis(published(SESSION))) == []


def test_new_changed_and_gone_families():
    changed = replace(SESSION, description="now documented")
    ops = diff_families({"session": changed}, {"session": SESSION, "cache": CACHE})
    assert ops == [DeclareKeyFamilyOp(changed.to_json(), SESSION.to_json()), RetireKeyFamilyOp("cache")]
    assert diff_families({"cache": CACHE}, {}) == [DeclareKeyFamilyOp(CACHE.to_json())]


def test_renamed_from_moves_the_keys_instead_of_retire_and_declare():
    old = replace(SESSION, name="sess", pattern="sess:{user_id}")
    new = replace(SESSION, renamed_from="sess:{user_id}")
    ops = diff_families({"session": new}, {"sess": old})
    assert ops == [RenameKeyFamilyOp(old.to_json(), new.to_json())]
    assert ops[0].reverse() == RenameKeyFamilyOp(new.to_json(), old.to_json())
    # once applied, the registry holds the new pattern and nothing more happens
    assert diff_families({"session": new}, {"session": SESSION}) == []


def test_a_family_keeping_its_name_is_renamed_too():
    old = replace(SESSION, pattern="session:{user_id}")
    new = replace(SESSION, pattern="session:v2:{user_id}", renamed_from="session:{user_id}")
    assert diff_families({"session": new}, {"session": old}) == [RenameKeyFamilyOp(old.to_json(), new.to_json())]


def test_an_overlap_expands_then_waits_then_contracts():
    old = replace(SESSION, name="sess", pattern="sess:{user_id}")
    new = replace(SESSION, renamed_from="sess:{user_id}", overlap=True)
    assert diff_families({"session": new}, {"sess": old}) == [
        RenameKeyFamilyOp(old.to_json(), new.to_json(), overlap=True)]
    # during the overlap both are published, the new one with its fallback: nothing to do, nothing retired
    during = {"sess": old, "session": SESSION.with_fallback("sess:{user_id}")}
    assert diff_families({"session": new}, during) == []
    assert diff_families(during, during) == []  # the chain's replay against the server (chain_drift)
    # the declaration drops overlap: the contract step retires the old pattern and name
    contracted = replace(new, overlap=False)
    assert diff_families({"session": contracted}, during) == [ContractKeyFamilyOp(old.to_json(), contracted.to_json())]
    assert diff_families({"session": contracted}, {"session": SESSION}) == []


def test_an_overlap_keeping_the_name_contracts_to_the_same_entry():
    new = replace(SESSION, pattern="session:v2:{user_id}", renamed_from="session:{user_id}")
    during = {"session": replace(new, renamed_from=None).with_fallback("session:{user_id}")}
    assert diff_families({"session": new}, during) == [
        ContractKeyFamilyOp(replace(SESSION, renamed_from=None).to_json(), new.to_json())]
    # a change during the overlap keeps the fallback published
    longer = replace(new, overlap=True, description="changed")
    (declare,) = diff_families({"session": longer}, during)
    assert declare.family["fallback"] == "session:{user_id}" and declare.family["description"] == "changed"


def test_ttl_becoming_required_or_shorter_backfills_the_default():
    loose = replace(SESSION, ttl=TtlRule("optional"))
    ops = diff_families({"session": SESSION}, {"session": loose})
    assert ops[1] == BackfillTtlOp(SESSION.to_json(), 3600)
    longer = replace(SESSION, ttl=TtlRule("required", max=7 * 86400, default=3600))
    assert isinstance(diff_families({"session": SESSION}, {"session": longer})[1], BackfillTtlOp)
    shorter_max_is_fine = diff_families({"session": longer}, {"session": SESSION})
    assert [type(op) for op in shorter_max_is_fine] == [DeclareKeyFamilyOp]
    no_default = replace(SESSION, ttl=TtlRule("required"))
    assert [type(op) for op in diff_families({"session": no_default}, {"session": loose})] == [DeclareKeyFamilyOp]


def test_channels():
    live = Channel("live", "live:{user_id}")
    gone = Channel("old", "old:{x}")
    state = RedisState(channels={"live": live})
    ops = diff_redis(state, LiveRedis(published(channels=[gone])))
    assert ops == [DeclareChannelOp(live.to_json()), RetireChannelOp("old")]


def test_groups_of_fixed_streams():
    outbox = KeyFamily("outbox", "{{q}}:outbox", "stream", TtlRule("none"), groups=("workers", "audit"))
    state = RedisState({"outbox": outbox})
    live = LiveRedis(published(outbox), groups={"{q}:outbox": {"audit"}})
    assert diff_redis(state, live) == [CreateGroupOp("{q}:outbox", "workers")]


def test_server_configuration_is_compared_normalised():
    assert normalize_config("notify-keyspace-events", "Ex") == normalize_config("notify-keyspace-events", "xE")
    assert normalize_config("notify-keyspace-events", "AK") == normalize_config("notify-keyspace-events", "Kg$lshzxetd")
    assert normalize_config("maxmemory", "1gb") == normalize_config("maxmemory", "1073741824")
    assert normalize_config("maxmemory-policy", "Volatile-LRU") == "volatile-lru"
    assert diff_config({"maxmemory-policy": "volatile-lru"}, {"maxmemory-policy": ["volatile-lru"] * 3}) == []
    ops = diff_config({"maxmemory-policy": "volatile-lru"}, {"maxmemory-policy": ["volatile-lru", "noeviction"]})
    assert ops == [SetConfigOp("maxmemory-policy", "volatile-lru", "noeviction")]
    assert ops[0].drift() == ("server configuration maxmemory-policy", "is 'noeviction', expected 'volatile-lru'")
