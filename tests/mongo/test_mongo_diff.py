"""The pure diff: every operation kind, in order, and no drift when both sides agree."""

from __future__ import annotations

from sovren_db.mongo.diff import diff_states, unsharded_note
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
from sovren_db.mongo.state import CollectionSpec, DatabaseState, IndexSpec, ShardKey, ZoneRange

SCHEMA = {"$jsonSchema": {"bsonType": "object", "required": ["a"]}}
BY_USER = IndexSpec("userId_1_timestamp_-1", (("userId", 1), ("timestamp", -1)))
HASHED = IndexSpec("userId_hashed", (("userId", "hashed"),))
EU = ZoneRange("eu", (("region", "eu"),), (("region", "ev"),))
US = ZoneRange("us", (("region", "us"),), (("region", "ut"),))


def spec(**fields) -> CollectionSpec:
    return CollectionSpec(**{"name": "c", "validator": SCHEMA, "indexes": (BY_USER,), **fields})


def state(*specs: CollectionSpec, sharded: bool = True) -> DatabaseState:
    return DatabaseState({s.name: s for s in specs}, sharded=sharded)


def kinds(ops) -> list[str]:
    return [op.op_name for op in ops]


def test_equal_states_have_no_drift(sovren_declared):
    assert diff_states(sovren_declared, sovren_declared) == []


def test_missing_collection_is_created_whole():
    [op] = diff_states(
        state(spec(shard_key=ShardKey((("userId", "hashed"),)), indexes=(BY_USER, HASHED))), state()
    )
    assert isinstance(op, CreateCollectionOp)
    assert op.spec() == spec(shard_key=ShardKey((("userId", "hashed"),)), indexes=(BY_USER, HASHED))
    assert op.drift() == ("collection c", "missing in database")


def test_undeclared_collection_is_dropped_with_its_spec_kept():
    [op] = diff_states(state(), state(spec()))
    assert isinstance(op, DropCollectionOp) and op.destructive
    assert op.reverse().spec() == spec()  # known to the diff, not written: the drop renders as its name
    assert op.render() == "op.mongo_drop_collection(collection='c')"
    assert op.drift() == ("collection c", "in database but not declared")


def test_changed_validator():
    tighter = {"$jsonSchema": {"bsonType": "object", "required": ["a", "b"]}}
    [op] = diff_states(state(spec(validator=tighter)), state(spec()))
    assert isinstance(op, SetValidatorOp)
    assert (op.validator, op.prior["validator"]) == (tighter, SCHEMA)
    assert op.drift() == ("validator of c", "differs from the declaration")


def test_changed_validation_level_only():
    [op] = diff_states(state(spec(validation_level="moderate")), state(spec()))
    assert (op.validation_level, op.validator) == ("moderate", SCHEMA)
    assert op.drift() == ("validation of c", "declared moderate/error, database strict/error")


def test_validator_missing_or_undeclared():
    [added] = diff_states(state(spec()), state(spec(validator=None)))
    assert added.drift() == ("validator of c", "missing in database")
    [removed] = diff_states(state(spec(validator=None)), state(spec()))
    assert removed.validator is None and removed.drift() == ("validator of c", "in database but not declared")


def test_new_and_undeclared_indexes():
    ops = diff_states(state(spec(indexes=(BY_USER, HASHED))), state(spec()))
    assert ops == [CreateIndexOp("c", HASHED.to_json())]
    assert ops[0].drift() == ("index c.userId_hashed", "missing in database")
    [drop] = diff_states(state(spec(indexes=())), state(spec()))
    assert drop == DropIndexOp("c", BY_USER.to_json())
    assert drop.drift() == ("index c.userId_1_timestamp_-1", "in database but not declared")


def test_changed_index_is_dropped_before_it_is_rebuilt():
    unique = IndexSpec(BY_USER.name, BY_USER.key, {"unique": True})
    ops = diff_states(state(spec(indexes=(unique,))), state(spec()))
    assert ops == [DropIndexOp("c", BY_USER.to_json()), CreateIndexOp("c", unique.to_json())]


def test_renamed_index_drops_the_old_name_first():
    renamed = IndexSpec("by_user", BY_USER.key)
    assert kinds(diff_states(state(spec(indexes=(renamed,))), state(spec()))) == [
        "mongo_drop_index",
        "mongo_create_index",
    ]


def test_shard_key_on_an_unsharded_collection():
    key = ShardKey((("userId", "hashed"),))
    [op] = diff_states(state(spec(shard_key=key)), state(spec()))
    assert op == ShardCollectionOp("c", [["userId", "hashed"]], False, None)
    assert op.drift() == ("shard key of c", "missing in database")


def test_changed_shard_key_keeps_the_prior_key():
    [op] = diff_states(
        state(spec(shard_key=ShardKey((("userId", 1), ("timestamp", 1))))),
        state(spec(shard_key=ShardKey((("userId", 1),)))),
    )
    assert (op.key, op.prior_key) == ([["userId", 1], ["timestamp", 1]], [["userId", 1]])


def test_undeclared_shard_key():
    [op] = diff_states(state(spec()), state(spec(shard_key=ShardKey((("userId", "hashed"),)))))
    assert isinstance(op, UnshardCollectionOp) and op.key == [["userId", "hashed"]]


def test_zone_ranges_are_set_exactly():
    key = ShardKey((("region", 1),))
    [op] = diff_states(state(spec(shard_key=key, zones=(EU, US))), state(spec(shard_key=key, zones=(EU,))))
    assert op == SetZonesOp("c", [EU.to_json(), US.to_json()], [EU.to_json()])
    assert op.drift() == ("zones of c", 'missing in database: us [{region: "us"}, {region: "ut"})')


def test_sharding_is_not_compared_on_a_server_that_is_no_mongos():
    declared = state(spec(shard_key=ShardKey((("region", 1),)), zones=(EU,)))
    live = state(spec(), sharded=False)
    assert diff_states(declared, live) == []
    assert "shard keys and zones of c" in unsharded_note(declared, live)
    assert unsharded_note(declared, state(spec())) is None


def test_changed_options():
    [op] = diff_states(
        state(spec(options={"capped": True, "size": 8192})),
        state(spec(options={"capped": True, "size": 4096})),
    )
    assert op == ModifyCollectionOp("c", {"capped": True, "size": 8192}, {"capped": True, "size": 4096})
    assert op.drift() == ("options of c", "size declared 8192, database 4096")


def test_operations_of_one_collection_come_in_the_order_they_must_run():
    declared = spec(
        validator={"$jsonSchema": {"bsonType": "object"}},
        indexes=(HASHED,),
        shard_key=ShardKey((("userId", "hashed"),)),
        options={"capped": True, "size": 8192},
    )
    ops = diff_states(state(declared), state(spec(options={"capped": True, "size": 4096})))
    assert kinds(ops) == [
        "mongo_modify_collection",
        "mongo_set_validator",
        "mongo_drop_index",
        "mongo_create_index",
        "mongo_shard_collection",
    ]


def test_converting_to_capped_builds_every_declared_index_again():
    # convertToCapped keeps only the _id index, so indexes present before it are built after it
    declared = spec(indexes=(BY_USER, HASHED), options={"capped": True, "size": 8192})
    ops = diff_states(state(declared), state(spec(indexes=(BY_USER, HASHED))))
    assert [(op.op_name, getattr(op, "index", {}).get("name")) for op in ops] == [
        ("mongo_modify_collection", None),
        ("mongo_create_index", "userId_1_timestamp_-1"),
        ("mongo_create_index", "userId_hashed"),
    ]


def test_collections_are_diffed_in_name_order():
    ops = diff_states(state(spec(name="b"), spec(name="a")), state(spec(name="z")))
    assert [(op.op_name, op.collection) for op in ops] == [
        ("mongo_create_collection", "a"),
        ("mongo_create_collection", "b"),
        ("mongo_drop_collection", "z"),
    ]
