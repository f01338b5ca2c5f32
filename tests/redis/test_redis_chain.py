"""The revision chain as a Redis reader: pure replay of redis_* steps (no server but for the last test)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sovren_db.core.config import load_settings
from sovren_db.core.storeops import STORE_OPS
from sovren_db.mongo import ops as mongo_ops
from sovren_db.redis import ops
from sovren_db.redis.chain import APPLY, read_chain, replay
from sovren_db.redis.declared import load_declarations
from sovren_db.redis.compare.config import normalize_config
from sovren_db.redis.diff import diff_redis
from sovren_db.redis.live import read_live
from sovren_db.redis.state import Channel, KeyFamily, RedisState, TtlRule
from sovren_db.resync import chain_steps

from redis_helpers import REPO

SESSION = KeyFamily("session", "session:{user_id}", "string", TtlRule("required", max=86400, default=3600),
                    pii=True, subject="user_id")
OUTBOX = KeyFamily("outbox", "{{{tenant}}}:outbox", "stream", TtlRule("none"), groups=("workers",))
LIVE = Channel("live", "live:{user_id}")


def repository_chain() -> list:
    """Every store step of the repository's revisions, collected offline (no server is reached)."""
    settings = load_settings(REPO, environ={})
    return [op for _, steps in chain_steps(settings, "heads") for op in steps]


def test_the_initial_revision_replays_into_the_declarations():
    declared = load_declarations(REPO / "redis")
    steps = repository_chain()
    assert any(op.store == "mongo" for op in steps) and any(op.store == "redis" for op in steps)
    replayed = replay(steps)
    assert replayed.registry == declared  # families, channels and server configuration
    assert replayed.groups == {"{comms}:outbox": {"dispatchers"}}
    assert diff_redis(declared, read_chain(steps, declared)) == []


def test_every_redis_operation_kind_has_a_replay():
    assert set(APPLY) == {cls for cls in STORE_OPS.values() if cls.store == "redis"}


def test_steps_of_other_stores_are_left_out():
    steps = [mongo_ops.DropCollectionOp(collection="session"), ops.DeclareKeyFamilyOp(SESSION.to_json())]
    assert replay(steps).registry == RedisState({"session": SESSION})


def test_families_are_declared_updated_and_retired():
    described = replace(SESSION, description="the token")
    steps = [ops.DeclareKeyFamilyOp(SESSION.to_json()),
             ops.DeclareKeyFamilyOp(described.to_json(), SESSION.to_json())]
    assert replay(steps).registry.families == {"session": described}
    assert replay([*steps, ops.RetireKeyFamilyOp("session")]).registry.families == {}


def test_channels_are_declared_and_retired():
    steps = [ops.DeclareChannelOp(LIVE.to_json())]
    assert replay(steps).registry.channels == {"live": LIVE}
    assert replay([*steps, ops.RetireChannelOp("live")]).registry.channels == {}


def test_server_configuration_keeps_the_last_value_set():
    steps = [ops.SetConfigOp("maxmemory-policy", "volatile-lru", "noeviction"),
             ops.SetConfigOp("maxmemory-policy", "allkeys-lru", "volatile-lru")]
    live = replay(steps)
    assert live.registry.server == {"maxmemory-policy": "allkeys-lru"}
    assert live.config == {"maxmemory-policy": ["allkeys-lru"]}


def test_groups_are_created_and_dropped_per_stream_key():
    steps = [ops.CreateGroupOp("{acme}:outbox", "workers"), ops.CreateGroupOp("{acme}:outbox", "audit"),
             ops.CreateGroupOp("{zeta}:outbox", "workers"), ops.DropGroupOp("{acme}:outbox", "workers")]
    assert replay(steps).groups == {"{acme}:outbox": {"audit"}, "{zeta}:outbox": {"workers"}}
    assert replay([ops.DropGroupOp("{none}:outbox", "workers")]).groups == {}


def test_a_renamed_family_is_republished_and_its_streams_keep_their_groups():
    mailbox = replace(OUTBOX, name="mailbox", pattern="{{{tenant}}}:mailbox")
    steps = [ops.DeclareKeyFamilyOp(OUTBOX.to_json()), ops.CreateGroupOp("{acme}:outbox", "workers"),
             ops.CreateGroupOp("other", "workers"), ops.RenameKeyFamilyOp(OUTBOX.to_json(), mailbox.to_json())]
    live = replay(steps)
    assert live.registry.families == {"mailbox": mailbox}
    assert live.groups == {"{acme}:mailbox": {"workers"}, "other": {"workers"}}
    kept = replace(SESSION, pattern="session:v2:{user_id}")
    renamed_in_place = [ops.DeclareKeyFamilyOp(SESSION.to_json()),
                        ops.RenameKeyFamilyOp(SESSION.to_json(), kept.to_json())]
    assert replay(renamed_in_place).registry.families == {"session": kept}


def test_an_overlap_keeps_the_old_family_until_the_contract():
    sess = KeyFamily("sess", "sess:{user_id}", "string")
    session = KeyFamily("session", "session:{user_id}", "string")
    expanded = replay([ops.DeclareKeyFamilyOp(sess.to_json()),
                       ops.RenameKeyFamilyOp(sess.to_json(), session.to_json(), overlap=True)])
    assert set(expanded.registry.families) == {"sess", "session"}
    assert expanded.registry.families["session"].fallback == "sess:{user_id}"
    contracted = replay([ops.DeclareKeyFamilyOp(sess.to_json()),
                         ops.RenameKeyFamilyOp(sess.to_json(), session.to_json(), overlap=True),
                         ops.ContractKeyFamilyOp(sess.to_json(), session.to_json())])
    assert list(contracted.registry.families) == ["session"]
    assert contracted.registry.families["session"].fallback is None


def test_a_rename_keeping_the_existing_destination_leaves_its_groups():
    mailbox = replace(OUTBOX, name="mailbox", pattern="{{{tenant}}}:mailbox")
    steps = [ops.CreateGroupOp("{acme}:outbox", "old"), ops.CreateGroupOp("{acme}:mailbox", "new")]
    keep_new = replay([*steps, ops.RenameKeyFamilyOp(OUTBOX.to_json(), mailbox.to_json(), "keep-new")])
    assert keep_new.groups == {"{acme}:mailbox": {"new"}}
    keep_old = replay([*steps, ops.RenameKeyFamilyOp(OUTBOX.to_json(), mailbox.to_json(), "keep-old")])
    assert keep_old.groups == {"{acme}:mailbox": {"old"}}


def test_deleting_a_family_takes_its_streams_groups_and_touches_nothing_else():
    steps = [ops.DeclareKeyFamilyOp(OUTBOX.to_json()), ops.CreateGroupOp("{acme}:outbox", "workers"),
             ops.CreateGroupOp("other", "workers"), ops.RetireKeyFamilyOp(OUTBOX.name),
             ops.DeleteKeyFamilyOp(OUTBOX.to_json())]
    live = replay(steps)
    assert live.registry.families == {} and live.groups == {"other": {"workers"}}


def test_steps_on_keys_values_and_ttls_change_nothing_compared():
    before = replay([ops.DeclareKeyFamilyOp(SESSION.to_json())])
    after = replay([ops.DeclareKeyFamilyOp(SESSION.to_json()), ops.BackfillTtlOp(SESSION.to_json(), 3600),
                    ops.SkipReverseOp("something")])
    assert after == before


def test_a_declared_stream_the_chain_gave_no_group_has_none():
    fixed = KeyFamily("jobs", "{{q}}:jobs", "stream", TtlRule("none"), groups=("workers",), hash_tag="q")
    declared = RedisState({"jobs": fixed}, server={"maxmemory-policy": "volatile-lru"})
    steps = [ops.DeclareKeyFamilyOp(fixed.to_json())]
    assert read_chain(steps, declared).groups == {"{q}:jobs": set()}
    changes = diff_redis(declared, read_chain(steps, declared))
    assert changes == [ops.CreateGroupOp("{q}:jobs", "workers"), ops.SetConfigOp("maxmemory-policy",
                                                                                        "volatile-lru")]
    assert changes[1].drift() == ("server configuration maxmemory-policy", "is not set to 'volatile-lru'")
    done = [*steps, ops.CreateGroupOp("{q}:jobs", "workers"), *changes[1:]]
    assert diff_redis(declared, read_chain(done, declared)) == []


@pytest.mark.redis
def test_the_replay_reads_as_the_server_does_after_the_same_steps(project, backend, client):
    """The two readers agree: steps run on a real Redis, then read live, give the replayed state."""
    declared = load_declarations(project / "redis")
    family = declared.families
    profile, outbox = family["profile"], family["outbox"]
    prof = replace(profile, name="prof", pattern="prof:{user_id}")
    before = client.config_get("maxmemory-policy")["maxmemory-policy"]
    steps = [*(ops.DeclareKeyFamilyOp(f.to_json()) for f in family.values()),
             ops.DeclareChannelOp(declared.channels["live"].to_json()),
             ops.DeclareChannelOp(LIVE.to_json() | {"name": "gone", "pattern": "gone:{user_id}"}),
             ops.RetireChannelOp("gone"),
             ops.CreateGroupOp("{q}:outbox", "workers"), ops.CreateGroupOp("{q}:outbox", "extra"),
             ops.DropGroupOp("{q}:outbox", "extra"),
             ops.RenameKeyFamilyOp(profile.to_json(), prof.to_json()),
             ops.DeclareKeyFamilyOp(replace(outbox, description="the outbox").to_json(), outbox.to_json()),
             ops.BackfillTtlOp(family["session"].to_json(), 3600),
             ops.RetireKeyFamilyOp("session"), ops.DeleteKeyFamilyOp(family["session"].to_json()),
             ops.SetConfigOp("maxmemory-policy", "volatile-lru", before),
             ops.SkipReverseOp("nothing")]
    client.hset("profile:1", "name", "Ada")
    client.set("session:1", "token")
    try:
        for step in steps:
            backend.execute(step)
        wanted = replace(declared, server={"maxmemory-policy": "volatile-lru"})
        live, chain = read_live(backend, wanted), read_chain(steps, wanted)
    finally:
        client.config_set("maxmemory-policy", before)
    assert live.registry.families == chain.registry.families and "prof" in chain.registry.families
    assert live.registry.channels == chain.registry.channels
    assert live.groups == chain.groups == {"{q}:outbox": {"workers"}}
    assert [normalize_config("maxmemory-policy", v) for v in live.config["maxmemory-policy"]] == \
        [normalize_config("maxmemory-policy", v) for v in chain.config["maxmemory-policy"]]
    assert client.hget("prof:1", "name") == b"Ada" and not client.exists("session:1")
