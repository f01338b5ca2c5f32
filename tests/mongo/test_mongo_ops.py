"""Operations: rendering into a revision, reverse, JSON arguments, descriptions."""

from __future__ import annotations

import dataclasses
import json

import pytest
from alembic.autogenerate import render_python_code
from alembic.operations import ops as alembic_ops

from sovren_db.core.storeops import STORE_OPS, IrreversibleOp, op_from_record
from sovren_db.mongo import commands, toimpl
from sovren_db.mongo.chain import with_past
from sovren_db.mongo.ops import (
    MONGO_OPS,
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

INDEX = {"name": "userId_1_timestamp_-1", "key": [["userId", 1], ["timestamp", -1]]}
ZONE = {
    "zone": "eu",
    "min": [["region", "eu"], ["userId", {"$minKey": 1}]],
    "max": [["region", "eu"], ["userId", {"$maxKey": 1}]],
}


def every_op(sovren_declared) -> list:
    communications = sovren_declared.collections["communications"]
    return [
        CreateCollectionOp.of(communications),
        DropCollectionOp.of(sovren_declared.collections["scenario_simulations"]),
        SetValidatorOp(
            "communications",
            communications.validator,
            "moderate",
            "warn",
            prior={"validator": None, "validation_level": "strict", "validation_action": "error"},
            allow_violations=True,
        ),
        CreateIndexOp(
            "communications", {**INDEX, "unique": True, "partialFilterExpression": {"status": "failed"}}
        ),
        DropIndexOp("communications", INDEX),
        ShardCollectionOp("communications", [["userId", "hashed"]]),
        ShardCollectionOp("c", [["a", 1], ["b", 1]], prior_key=[["a", 1]]),
        UnshardCollectionOp("c", [["a", 1]], unique=True),
        SetZonesOp("scenario_simulations", [ZONE], prior=[]),
        ModifyCollectionOp("log", {"capped": True, "size": 8192}, {"capped": True, "size": 4096}),
    ]


class _OpNamespace:
    """What ``op`` is to a revision file: op.<op_name>(**arguments) builds the operation."""

    def __getattr__(self, name: str):
        return lambda **arguments: STORE_OPS[name](**arguments)


def test_every_operation_kind_is_registered():
    assert {cls.op_name for cls in MONGO_OPS} <= set(STORE_OPS)
    assert all(cls.op_name.startswith("mongo_") and cls.store == "mongo" for cls in MONGO_OPS)


def test_rendered_text_evaluates_back_to_an_equal_operation(sovren_declared):
    for op in every_op(sovren_declared):
        text = op.render()
        assert text.startswith(f"op.{op.op_name}(")
        assert eval(text, {"op": _OpNamespace()}) == op, text


def test_alembic_renders_mongo_operations_into_the_revision(sovren_declared):
    upgrade = alembic_ops.UpgradeOps(ops=every_op(sovren_declared)[:2])
    text = render_python_code(upgrade)
    assert "op.mongo_create_collection(" in text and "op.mongo_drop_collection(" in text
    assert "'key': [['userId', 'hashed']]" in text


def test_reverse_always_returns_an_operation_and_twice_is_the_same(sovren_declared):
    for op in every_op(sovren_declared):
        back = op.reverse()
        assert back.store == "mongo"
        if not isinstance(op, SetValidatorOp):  # allow_violations is not carried back
            assert back.reverse() == op


def test_reverses_carry_what_they_need(sovren_declared):
    create = CreateCollectionOp.of(sovren_declared.collections["communications"])
    assert create.reverse().reverse().spec() == sovren_declared.collections["communications"]
    assert DropIndexOp("c", INDEX).reverse() == CreateIndexOp("c", INDEX)
    assert ShardCollectionOp("c", [["a", 1]]).reverse() == UnshardCollectionOp("c", [["a", 1]])
    validator = SetValidatorOp("c", {"$jsonSchema": {"bsonType": "object"}}).reverse()
    assert (validator.validator, validator.validation_level) == (None, "strict")


def test_a_drop_carries_its_name_and_takes_its_reverse_from_the_chain(sovren_declared):
    spec = sovren_declared.collections["executives"]
    drop = DropCollectionOp("executives")
    assert drop.arguments() == {"collection": "executives"} and drop.describe() == (
        "drop collection executives and its documents")
    with pytest.raises(IrreversibleOp, match="known only to the revision chain"):
        drop.reverse()
    create = CreateCollectionOp.of(spec)
    assert with_past([create, drop])[1].reverse() == create
    assert with_past([drop]) == [drop]  # a drop of what the chain never created stays as it is


def test_a_drop_written_in_the_full_form_keeps_its_reverse_and_stores_only_its_name(sovren_declared):
    whole = sovren_declared.collections["executives"].to_json()
    drop = op_from_record("mongo_drop_collection", whole)
    assert drop.reverse() == CreateCollectionOp(**whole) and drop.arguments() == {"collection": "executives"}
    assert "had validator" in drop.describe()


def test_destructive_operations():
    assert {cls.op_name for cls in MONGO_OPS if cls.destructive} == {
        "mongo_drop_collection",
        "mongo_drop_index",
    }


def _jsonb(value):
    """What a round trip through Postgres jsonb does to JSON: object keys reordered."""
    if isinstance(value, dict):
        return {k: _jsonb(value[k]) for k in sorted(value, key=lambda k: (len(k), k))}
    if isinstance(value, list):
        return [_jsonb(v) for v in value]
    return value


def test_arguments_survive_a_deferred_trip_through_jsonb(sovren_declared):
    for op in every_op(sovren_declared):
        stored = json.loads(json.dumps(_jsonb(op.arguments())))
        assert op_from_record(op.op_name, stored) == op


def test_index_key_order_survives_jsonb():
    op = CreateIndexOp("c", {"name": "z_1_a_1", "key": [["z", 1], ["a", 1]]})
    replayed = op_from_record(op.op_name, _jsonb(op.arguments()))
    assert list(commands.index_document(replayed.spec())["key"]) == ["z", "a"]


def test_descriptions_are_one_line(sovren_declared):
    lines = [op.describe() for op in every_op(sovren_declared)]
    assert all("\n" not in line for line in lines)
    assert lines[0] == (
        'create collection communications (validator, 4 index(es), sharded on {userId: "hashed"})'
    )
    assert lines[6] == "change the shard key of c from {a: 1} to {a: 1, b: 1}"
    assert lines[8].startswith(
        'set the zone ranges of scenario_simulations: eu [{region: "eu", userId: {"$minKey": 1}}'
    )


@pytest.mark.parametrize(
    "prior, message",
    [
        (None, "missing in database"),
        (
            {"validator": {"$jsonSchema": {}}, "validation_level": "strict", "validation_action": "error"},
            "differs from the declaration",
        ),
    ],
)
def test_validator_drift_messages(prior, message):
    op = SetValidatorOp("c", {"$jsonSchema": {"bsonType": "object"}}, prior=prior)
    assert op.drift() == ("validator of c", message)


def test_operations_are_frozen_data_each_run_by_one_function_of_toimpl():
    assert all(dataclasses.fields(cls) and cls.__dataclass_params__.frozen for cls in MONGO_OPS)
    assert set(MONGO_OPS) <= set(toimpl.execute.registry)
    assert all(cls.__name__.endswith("Op") and "execute" not in vars(cls) for cls in MONGO_OPS)
