"""The command documents operations send.

These tests run operations against ``RecordingDatabase``, which records the
commands and answers with canned replies shaped like the server's. They check
command construction and the handling of documented replies, NOT MongoDB's
behaviour: that is the real-mongod tests' job (test_mongo_server.py).
"""

from __future__ import annotations

import mongo_replies as R
import pytest
from bson import Int64, MaxKey, MinKey, ObjectId
from mongo_support import RecordingDatabase

from sovren_db.core.errors import Refused
from sovren_db.mongo import commands
from sovren_db.mongo.ops import (
    CreateCollectionOp,
    CreateIndexOp,
    DropCollectionOp,
    DropIndexOp,
    ModifyCollectionOp,
    SetValidatorOp,
    SetZonesOp,
    ShardCollectionOp,
    UnshardCollectionOp,
)
from sovren_db.mongo.toimpl import execute, undo
from sovren_db.mongo.live import state_from_replies
from sovren_db.mongo.state import IndexSpec, ShardKey, ZoneRange

VALIDATOR = {"$jsonSchema": {"bsonType": "object", "required": ["status"]}}
EU = {
    "zone": "eu",
    "min": [["region", "eu"], ["userId", {"$minKey": 1}]],
    "max": [["region", "eu"], ["userId", {"$maxKey": 1}]],
}
US = {
    "zone": "us",
    "min": [["region", "us"], ["userId", {"$minKey": 1}]],
    "max": [["region", "us"], ["userId", {"$maxKey": 1}]],
}


def mongos(collections=(), tags=(), shards=R.CONFIG_SHARDS) -> RecordingDatabase:
    """A recording stand-in answering hello as a mongos and finds on config as given."""
    return RecordingDatabase(
        replies={
            "hello": R.HELLO_MONGOS,
            ("config", "find", "collections"): R.find_reply("config.collections", collections),
            ("config", "find", "tags"): R.find_reply("config.tags", tags),
            ("config", "find", "shards"): R.find_reply("config.shards", shards),
        }
    )


def test_create_collection_sends_create_then_indexes_and_skips_sharding_off_mongos(sovren_declared):
    db = RecordingDatabase(replies={"hello": R.HELLO_MONGOD})
    execute(CreateCollectionOp.of(sovren_declared.collections["communications"]), db)
    assert db.verbs() == ["sovren_ai.hello", "sovren_ai.create", "sovren_ai.createIndexes"]
    create = db.commands("create")[0]
    assert (create["create"], create["validationLevel"], create["validationAction"]) == (
        "communications",
        "strict",
        "error",
    )
    assert create["validator"]["$jsonSchema"]["properties"]["status"]["enum"] == [
        "sent",
        "delivered",
        "failed",
    ]
    indexes = {i["name"]: i for i in db.commands("createIndexes")[0]["indexes"]}
    assert list(indexes["userId_1_timestamp_-1"]["key"].items()) == [("userId", 1), ("timestamp", -1)]
    assert indexes["failed_by_timestamp"]["partialFilterExpression"] == {"status": "failed"}


def test_create_collection_shards_and_zones_on_a_mongos(sovren_declared):
    db = mongos()
    execute(CreateCollectionOp.of(sovren_declared.collections["scenario_simulations"]), db)
    shard = db.commands("shardCollection")[0]
    assert shard["shardCollection"] == "sovren_ai.scenario_simulations"
    assert list(shard["key"].items()) == [("region", 1), ("userId", 1)] and shard["unique"] is False
    zones = db.commands("updateZoneKeyRange")
    assert [
        (z["zone"], z["min"]["region"], type(z["min"]["userId"]), type(z["max"]["userId"])) for z in zones
    ] == [("eu", "eu", MinKey, MaxKey), ("us", "us", MinKey, MaxKey)]
    assert all(
        db_name == "admin"
        for db_name, cmd in db.sent
        if next(iter(cmd)) in ("shardCollection", "updateZoneKeyRange")
    )
    # zone ranges before shardCollection: the initial chunks are made per zone, on the zone's shards
    admin = [next(iter(cmd)) for name, cmd in db.sent if name == "admin"]
    assert admin == ["updateZoneKeyRange", "updateZoneKeyRange", "shardCollection"]
    assert db.verbs().count("sovren_ai.hello") == 1


def test_a_zone_without_a_shard_refuses_the_creation_before_anything_is_sent(sovren_declared):
    db = mongos(shards=R.CONFIG_SHARDS[:1])
    with pytest.raises(Refused, match=r"Zone\(s\) us of scenario_simulations have no shard"):
        execute(CreateCollectionOp.of(sovren_declared.collections["scenario_simulations"]), db)
    assert db.verbs() == ["sovren_ai.hello", "config.find"]


def test_creating_an_existing_collection_converges_its_validation():
    db = RecordingDatabase(replies={"create": R.NAMESPACE_EXISTS, "aggregate": R.VIOLATIONS_NONE})
    execute(CreateCollectionOp("communications", validator=VALIDATOR), db)
    assert db.verbs() == ["sovren_ai.create", "sovren_ai.aggregate", "sovren_ai.collMod"]
    assert db.commands("collMod")[0] == {
        "collMod": "communications",
        "validator": VALIDATOR,
        "validationLevel": "strict",
        "validationAction": "error",
    }


def test_set_validator_counts_violations_server_side_before_collmod():
    db = RecordingDatabase(replies={"aggregate": R.VIOLATIONS_NONE, "collMod": R.COLLMOD_OK})
    execute(SetValidatorOp("communications", VALIDATOR), db)
    aggregate = db.commands("aggregate")[0]
    assert aggregate["pipeline"][0] == {"$match": {"$nor": [VALIDATOR]}}
    assert aggregate["pipeline"][1]["$facet"]["sample"] == [{"$limit": 5}, {"$project": {"_id": 1}}]
    assert db.verbs() == ["sovren_ai.aggregate", "sovren_ai.collMod"]


def test_tightening_over_violating_documents_is_refused_with_count_and_ids():
    db = RecordingDatabase(replies={"aggregate": R.VIOLATIONS_THREE})
    with pytest.raises(Refused) as refused:
        execute(SetValidatorOp("communications", VALIDATOR), db)
    message = str(refused.value)
    assert "3 existing document(s) violate it" in message
    assert '65f1a2b3c4d5e6f708091b01, 65f1a2b3c4d5e6f708091b02, "legacy-7"' in message
    assert "collMod" not in [next(iter(c)) for _, c in db.sent]


@pytest.mark.parametrize(
    "how", [{"validation_level": "moderate"}, {"validation_action": "warn"}, {"allow_violations": True}]
)
def test_a_revision_that_says_how_to_proceed_is_not_counted(how):
    db = RecordingDatabase(replies={"aggregate": R.VIOLATIONS_THREE})
    execute(SetValidatorOp("communications", VALIDATOR, **how), db)
    assert db.verbs() == ["sovren_ai.collMod"]


def test_removing_a_validator_sends_an_empty_one():
    db = RecordingDatabase()
    execute(SetValidatorOp("c", None), db)
    assert db.sent == [
        (
            "sovren_ai",
            {"collMod": "c", "validator": {}, "validationLevel": "strict", "validationAction": "error"},
        )
    ]


def test_index_commands_and_convergent_drops():
    db = RecordingDatabase(
        replies={
            "createIndexes": R.CREATE_INDEXES_EXISTING,
            "dropIndexes": R.INDEX_NOT_FOUND,
            "drop": R.NAMESPACE_NOT_FOUND,
        }
    )
    index = {"name": "createdAt_1", "key": [["createdAt", 1]], "expireAfterSeconds": 2592000}
    execute(CreateIndexOp("a", index), db)
    execute(DropIndexOp("a", index), db)
    execute(DropCollectionOp("a"), db)
    assert [cmd for _, cmd in db.sent] == [
        {
            "createIndexes": "a",
            "indexes": [{"key": {"createdAt": 1}, "name": "createdAt_1", "expireAfterSeconds": 2592000}],
        },
        {"dropIndexes": "a", "index": "createdAt_1"},
        {"drop": "a"},
    ]


def test_an_unexpected_error_is_not_swallowed():
    from pymongo.errors import OperationFailure

    db = RecordingDatabase(replies={"dropIndexes": {"ok": 0.0, "errmsg": "not authorized", "code": 13}})
    with pytest.raises(OperationFailure):
        execute(DropIndexOp("a", {"name": "x_1", "key": [["x", 1]]}), db)


def test_sharding_an_already_sharded_collection_sends_nothing_to_admin():
    db = mongos(collections=R.CONFIG_COLLECTIONS[:1])
    execute(ShardCollectionOp("communications", [["userId", "hashed"]]), db)
    assert db.verbs() == ["sovren_ai.hello", "config.find"]
    assert db.commands("find")[0]["filter"] == {"_id": "sovren_ai.communications"}


@pytest.mark.parametrize(
    "current, key, verb",
    [
        (None, (("u", 1),), "shardCollection"),
        ((("u", 1),), (("u", 1), ("t", 1)), "refineCollectionShardKey"),
        ((("u", 1),), (("t", 1),), "reshardCollection"),
    ],
)
def test_shard_key_command_choice(current, key, verb):
    command = commands.shard_key_command("db.c", ShardKey(key), ShardKey(current) if current else None)
    assert next(iter(command)) == verb and list(command["key"]) == [f for f, _ in key]


def test_unshard_on_mongos_and_not_elsewhere():
    sharded = mongos(collections=R.CONFIG_COLLECTIONS[:1])
    sharded.replies["hello"] = R.HELLO_MONGOS_8
    execute(UnshardCollectionOp("communications", [["userId", "hashed"]]), sharded)
    assert sharded.commands("unshardCollection") == [{"unshardCollection": "sovren_ai.communications"}]
    before_8 = mongos(collections=R.CONFIG_COLLECTIONS[:1])  # 7.0 has no unshardCollection
    with pytest.raises(Refused, match="needs MongoDB 8.0 or later"):
        execute(UnshardCollectionOp("communications", [["userId", "hashed"]]), before_8)
    assert before_8.commands("unshardCollection") == []
    standalone = RecordingDatabase(replies={"hello": R.HELLO_MONGOD})
    execute(UnshardCollectionOp("communications", [["userId", "hashed"]]), standalone)
    assert standalone.verbs() == ["sovren_ai.hello"]
    tracked = mongos(collections=[d for d in R.CONFIG_COLLECTIONS if d.get("unsplittable")])
    execute(UnshardCollectionOp("executives", [["_id", 1]]), tracked)  # 8.0's unsplittable: not sharded
    assert tracked.commands("unshardCollection") == []


def test_set_zones_removes_stale_ranges_then_adds_new_ones():
    stale = {
        **R.CONFIG_TAGS[1],
        "min": {"region": "us", "userId": MinKey()},
        "max": {"region": "uz", "userId": MaxKey()},
    }
    db = mongos(tags=[R.CONFIG_TAGS[0], stale])
    execute(SetZonesOp("scenario_simulations", [EU, US]), db)
    updates = db.commands("updateZoneKeyRange")
    assert [(u["zone"], u["max"]["region"]) for u in updates] == [(None, "uz"), ("us", "us")]


def test_zones_without_a_shard_are_refused():
    db = mongos(shards=R.CONFIG_SHARDS[:1])
    with pytest.raises(Refused, match=r"Zone\(s\) us of scenario_simulations have no shard"):
        execute(SetZonesOp("scenario_simulations", [EU, US]), db)
    assert db.commands("updateZoneKeyRange") == []


@pytest.mark.parametrize(
    "options, prior, expected",
    [
        (
            {"capped": True, "size": 8192},
            {"capped": True, "size": 4096},
            [{"collMod": "c", "cappedSize": 8192}],
        ),
        (
            {"capped": True, "size": 8192, "max": 10},
            {},
            [{"convertToCapped": "c", "size": 8192}, {"collMod": "c", "cappedMax": 10}],
        ),
        (
            {"timeseries": {"timeField": "t", "granularity": "hours"}},
            {"timeseries": {"timeField": "t", "granularity": "minutes"}},
            [{"collMod": "c", "timeseries": {"granularity": "hours"}}],
        ),
        (
            {"timeseries": {"timeField": "t", "granularity": "hours"}},
            {"timeseries": {"timeField": "t", "granularity": "hours"}, "expireAfterSeconds": 60},
            [{"collMod": "c", "expireAfterSeconds": "off"}],
        ),
    ],
)
def test_options_changed_in_place(options, prior, expected):
    db = RecordingDatabase()
    execute(ModifyCollectionOp("c", options, prior), db)
    assert [cmd for _, cmd in db.sent] == expected


@pytest.mark.parametrize(
    "options, prior",
    [
        ({}, {"capped": True, "size": 4096}),
        ({"timeseries": {"timeField": "t2"}}, {"timeseries": {"timeField": "t"}}),
        ({"collation": {"locale": "fr"}}, {}),
    ],
)
def test_options_mongodb_cannot_change_are_refused(options, prior):
    with pytest.raises(Refused, match="cannot change .* in place"):
        execute(ModifyCollectionOp("c", options, prior), RecordingDatabase())


def test_violation_sample_ids_keep_their_types():
    count, sample = commands.violations_from_reply(R.VIOLATIONS_THREE)
    assert count == 3 and sample[0] == ObjectId("65f1a2b3c4d5e6f708091b01") and sample[2] == "legacy-7"
    assert commands.violations_from_reply(R.VIOLATIONS_NONE) == (0, [])


def test_text_indexes_are_sent_the_simple_collation_and_others_what_they_declare():
    text = commands.index_document(IndexSpec("bio_text", (("bio", "text"),)))
    assert text["collation"] == {"locale": "simple"}
    plain = commands.index_document(IndexSpec("name_1", (("name", 1),)))
    assert "collation" not in plain  # inherits the collection's default


def test_shard_keys_are_always_sent_with_the_simple_collation():
    command = commands.shard_key_command("db.c", ShardKey((("u", 1),)), None)
    assert command["collation"] == {"locale": "simple"}


def test_integer_zone_bounds_go_out_as_number_long():
    # a hashed field's zone bounds must be NumberLong; bools and strings stay as they are
    zone = ZoneRange("eu", (("h", 0), ("flag", True)), (("h", 4611686018427387902), ("flag", "x")))
    command = commands.zone_range_command("db.c", zone, "eu")
    assert type(command["min"]["h"]) is Int64 and type(command["max"]["h"]) is Int64
    assert command["min"]["flag"] is True and command["max"]["flag"] == "x"


def test_changing_only_the_uniqueness_of_a_shard_key_is_refused():
    db = mongos(collections=R.CONFIG_COLLECTIONS[:1])  # communications: {userId: "hashed"}, not unique
    with pytest.raises(Refused, match="not unique on the server"):
        execute(ShardCollectionOp("communications", [["userId", "hashed"]], True), db)
    assert db.commands("shardCollection") == db.commands("reshardCollection") == []


def test_an_existing_time_series_collection_gets_no_validation_collmod():
    db = RecordingDatabase(replies={"hello": R.HELLO_MONGOD, "create": R.NAMESPACE_EXISTS})
    execute(CreateCollectionOp("metrics", options={"timeseries": {"timeField": "ts", "granularity": "minutes"}}), db)
    assert db.verbs() == ["sovren_ai.create"]


def test_an_index_conflicting_with_an_existing_one_is_refused_in_one_sentence():
    conflict = {"ok": 0.0, "code": 86, "codeName": "IndexKeySpecsConflict",
                "errmsg": "An existing index has the same name as the requested index. "
                          "Requested index: { v: 2, key: { a: 1 }, name: \"x_1\" }"}
    db = RecordingDatabase(replies={"createIndexes": conflict})
    with pytest.raises(Refused, match=r"An index of a already exists .*same name"):
        execute(CreateIndexOp("a", {"name": "x_1", "key": [["a", 1]]}), db)


@pytest.mark.parametrize(
    "old, new",
    [
        ({"granularity": "hours"}, {"granularity": "minutes"}),
        ({"bucketMaxSpanSeconds": 7200, "bucketRoundingSeconds": 7200},
         {"bucketMaxSpanSeconds": 3600, "bucketRoundingSeconds": 3600}),
    ],
)
def test_finer_time_series_buckets_are_refused(old, new):
    prior = {"timeseries": {"timeField": "t", **old}}
    with pytest.raises(Refused, match="coarser"):
        commands.options_commands("m", {"timeseries": {"timeField": "t", **new}}, prior)
    assert commands.options_commands("m", prior, {"timeseries": {"timeField": "t", **new}}) == [
        {"collMod": "m", "timeseries": old}
    ]


def _filtered(reply_documents, namespace, field, key):
    """A find/listCollections reply holding the documents the command's filter selects."""
    return lambda command: R.cursor_reply(namespace, [d for d in reply_documents
                                                      if d[field] == command["filter"][key]])


def test_a_drop_keeps_as_its_undo_the_collection_the_server_holds_just_before():
    infos = R.LIST_COLLECTIONS["cursor"]["firstBatch"]
    db = RecordingDatabase(replies={
        "hello": R.HELLO_MONGOS,
        "listCollections": _filtered(infos, "sovren_ai.$cmd.listCollections", "name", "name"),
        ("sovren_ai", "listIndexes", "communications"): R.LIST_INDEXES_COMMUNICATIONS,
        ("config", "find", "collections"): _filtered(R.CONFIG_COLLECTIONS, "config.collections", "_id", "_id"),
        ("config", "find", "tags"): _filtered(R.CONFIG_TAGS, "config.tags", "ns", "ns"),
    })
    undo_step = undo(DropCollectionOp("communications"), db)
    held = state_from_replies("sovren_ai", infos, {"communications": R.LIST_INDEXES_COMMUNICATIONS["cursor"]["firstBatch"]},
                              R.CONFIG_COLLECTIONS, R.CONFIG_TAGS, sharded=True).collections["communications"]
    assert undo_step == CreateCollectionOp.of(held) and undo_step.spec().shard_key == ShardKey((("userId", "hashed"),))
    assert db.verbs() == ["sovren_ai.listCollections", "sovren_ai.listIndexes", "sovren_ai.hello",
                          "config.find", "config.find"]
    assert undo(DropCollectionOp("gone"), db) is None  # nothing to recreate: the drop's undo is no step
    assert undo(DropCollectionOp("recent_failures"), db) is None  # a view is not a managed collection
