"""Against a real mongod (MONGO_URL, or a mongod on PATH); skipped elsewhere, saying why.

These are the tests of MongoDB behaviour: validators enforced by the server,
what it echoes back, and the violation count it computes.
"""

from __future__ import annotations

import json

import pytest
from bson import Decimal128, Int64, ObjectId, json_util
from mongo_support import COMMUNICATION, write_declarations
from pymongo.errors import WriteError

from sovren_db.core.errors import Refused
from sovren_db.mongo.checks import check_findings
from sovren_db.mongo.declared import load_declared
from sovren_db.mongo.diff import diff_states
from sovren_db.mongo.ops import CreateCollectionOp, CreateIndexOp, DropIndexOp, SetValidatorOp
from sovren_db.mongo.toimpl import execute
from sovren_db.mongo.validate import DocumentValidator

pytestmark = pytest.mark.mongo


def apply(backend, ops) -> None:
    for op in ops:
        backend.execute(op)


def converge(backend, declared):
    apply(backend, diff_states(declared, backend.introspect()))


def message(**fields) -> dict:
    """A communications document with its BSON types and an _id of its own."""
    return {**json_util.loads(json.dumps(COMMUNICATION)), "_id": ObjectId(), **fields}


def test_sovren_collections_are_created_and_then_show_no_drift(mongo_backend, sovren_declared):
    converge(mongo_backend, sovren_declared)
    assert diff_states(sovren_declared, mongo_backend.introspect()) == []
    # convergent: every creation again succeeds and changes nothing
    apply(mongo_backend, [CreateCollectionOp.of(c) for c in sovren_declared.collections.values()])
    assert diff_states(sovren_declared, mongo_backend.introspect()) == []


def test_special_indexes_echoed_by_the_server_show_no_drift(mongo_backend, tmp_path):
    write_declarations(
        tmp_path,
        {
            "people.toml": (
                '[[indexes]]\nkey = { name = 1 }\ncollation = { locale = "en", strength = 2 }\n'
                '[[indexes]]\nkey = { bio = "text", title = "text" }\nweights = { title = 10 }\n'
                '[[indexes]]\nkey = { location = "2dsphere" }\n'
                "[[indexes]]\nkey = { seenAt = 1 }\nexpireAfterSeconds = 3600\n"
                "[[indexes]]\nkey = { email = 1 }\nunique = true\nsparse = true\n"
            ),
            "tail.toml": "[capped]\nsize = 5000\nmax = 100\n",
        },
    )
    declared = load_declared(tmp_path / "mongo")
    converge(mongo_backend, declared)
    assert diff_states(declared, mongo_backend.introspect()) == []


def test_the_server_enforces_the_validator_as_the_offline_validator_predicts(mongo_backend, sovren_declared):
    converge(mongo_backend, sovren_declared)
    offline = DocumentValidator(sovren_declared.collections["communications"].validator["$jsonSchema"])
    candidates = [
        message(),
        message(status="queued"),
        message(timestamp="2024-03-13"),
        message(extra=1),
        message(recipient=""),
        {k: v for k, v in message().items() if k != "userId"},
    ]
    for document in candidates:
        try:
            mongo_backend.db["communications"].insert_one(document)
            accepted = True
        except WriteError as exc:
            assert exc.code == 121  # DocumentValidationFailure
            accepted = False
        assert accepted == offline.accepts(document), document


def test_bson_numeric_types_are_told_apart_like_the_server_does(mongo_backend):
    schema = {
        "bsonType": "object",
        "properties": {
            "i": {"bsonType": "int"},
            "l": {"bsonType": "long"},
            "d": {"bsonType": "double"},
            "m": {"bsonType": "decimal"},
            "n": {"type": "number"},
        },
    }
    mongo_backend.db.create_collection("numbers", validator={"$jsonSchema": schema})
    offline = DocumentValidator(schema)
    for document in (
        {"i": 1},
        {"i": Int64(1)},
        {"l": Int64(1)},
        {"l": 1},
        {"d": 1.5},
        {"d": 1},
        {"m": Decimal128("1.5")},
        {"m": 1.5},
        {"n": Decimal128("2")},
        {"n": True},
    ):
        try:
            mongo_backend.db["numbers"].insert_one(dict(document))
            accepted = True
        except WriteError:
            accepted = False
        assert accepted == offline.accepts(document), document


def test_drift_after_a_manual_collmod_and_drop_index(mongo_backend, sovren_declared):
    converge(mongo_backend, sovren_declared)
    db = mongo_backend.db
    db.command(
        {
            "collMod": "communications",
            "validator": {"$jsonSchema": {"bsonType": "object"}},
            "validationAction": "warn",
        }
    )
    db["communications"].drop_index("userId_1_timestamp_-1")
    db["communications"].create_index([("recipient", 1)])
    ops = diff_states(sovren_declared, mongo_backend.introspect())
    assert [(op.op_name, op.drift()[0]) for op in ops] == [
        ("mongo_set_validator", "validator of communications"),
        ("mongo_drop_index", "index communications.recipient_1"),
        ("mongo_create_index", "index communications.userId_1_timestamp_-1"),
    ]
    apply(mongo_backend, ops)
    assert diff_states(sovren_declared, mongo_backend.introspect()) == []


def test_add_and_drop_an_index(mongo_backend, sovren_declared):
    converge(mongo_backend, sovren_declared)
    index = {"name": "recipient_1", "key": [["recipient", 1]]}
    execute(CreateIndexOp("communications", index), mongo_backend.db)
    execute(CreateIndexOp("communications", index), mongo_backend.db)  # exists: converges
    assert "recipient_1" in mongo_backend.db["communications"].index_information()
    execute(DropIndexOp("communications", index), mongo_backend.db)
    execute(DropIndexOp("communications", index), mongo_backend.db)  # gone: converges
    assert "recipient_1" not in mongo_backend.db["communications"].index_information()


def test_tightening_counts_violations_before_changing_anything(mongo_backend, sovren_declared, tmp_path):
    db = mongo_backend.db
    db.create_collection("communications")
    bad = [message(status="queued") for _ in range(3)]
    db["communications"].insert_many([message(), *bad])
    validator = sovren_declared.collections["communications"].validator
    with pytest.raises(Refused) as refused:
        execute(SetValidatorOp("communications", validator), db)
    assert "3 existing document(s) violate it" in str(refused.value)
    assert str(bad[0]["_id"]) in str(refused.value)
    assert (
        "validator"
        not in db.command({"listCollections": 1, "filter": {"name": "communications"}})["cursor"][
            "firstBatch"
        ][0]["options"]
    )
    execute(SetValidatorOp("communications", validator, validation_level="moderate"), db)
    [finding] = check_findings(mongo_backend.settings, mongo_backend, data=True)
    assert (finding.object, finding.message.split(" (")[0]) == (
        "collection communications",
        "3 document(s) violate the current validator",
    )


def test_ledger_and_position(mongo_backend):
    op = SetValidatorOp("c", None)
    mongo_backend.ledger_record("rev1:up:0", op)
    mongo_backend.ledger_record("rev1:up:1", op)
    mongo_backend.ledger_record("rev2:up:0", op)
    assert mongo_backend.ledger_keys("rev1:up:") == {"rev1:up:0", "rev1:up:1"}
    mongo_backend.ledger_forget("rev1:")
    assert mongo_backend.ledger_keys("") == {"rev2:up:0"}
    assert mongo_backend.position() is None
    mongo_backend.set_position("rev2")
    assert mongo_backend.position() == "rev2"
    assert "sovren_db_ledger" not in mongo_backend.introspect().collections



def declare(tmp_path, files: dict) -> "DatabaseState":
    write_declarations(tmp_path, files)
    return load_declared(tmp_path / "mongo")


def test_a_collection_collation_and_its_indexes_echoed_by_the_server_show_no_drift(mongo_backend, tmp_path):
    # an inherited index collation is echoed in full, a simple one not at all, a text index gets simple
    declared = declare(
        tmp_path,
        {
            "people.toml": (
                'collation = { locale = "fr", strength = 1 }\n'
                "[[indexes]]\nkey = { name = 1 }\n"
                '[[indexes]]\nkey = { code = 1 }\ncollation = { locale = "simple" }\n'
                '[[indexes]]\nkey = { bio = "text" }\n'
                '[[indexes]]\nkey = { nick = 1 }\ncollation = { locale = "da" }\n'
            )
        },
    )
    converge(mongo_backend, declared)
    assert diff_states(declared, mongo_backend.introspect()) == []


def test_a_time_series_collection_shows_no_drift_and_converges_when_created_again(mongo_backend, tmp_path):
    declared = declare(
        tmp_path,
        {
            "metrics.toml": (
                'expireAfterSeconds = 604800\n[timeseries]\ntimeField = "ts"\nmetaField = "meta"\n'
                'granularity = "minutes"\n[[indexes]]\nkey = { "meta.site" = 1, ts = -1 }\n'
            )
        },
    )
    converge(mongo_backend, declared)
    assert diff_states(declared, mongo_backend.introspect()) == []
    apply(mongo_backend, [CreateCollectionOp.of(declared.collections["metrics"])])  # no collMod on a time series
    assert diff_states(declared, mongo_backend.introspect()) == []


def test_capped_options_change_in_place_and_show_no_drift(mongo_backend, tmp_path):
    first = declare(tmp_path, {"tail.toml": "[[indexes]]\nkey = { at = 1 }\n"})
    converge(mongo_backend, first)
    capped = declare(tmp_path, {"tail.toml": "[[indexes]]\nkey = { at = 1 }\n[capped]\nsize = 5000\nmax = 100\n"})
    converge(mongo_backend, capped)  # convertToCapped keeps only _id: the declared index is built again
    assert diff_states(capped, mongo_backend.introspect()) == []
    assert "at_1" in mongo_backend.db["tail"].index_information()
    unbounded = declare(tmp_path, {"tail.toml": "[[indexes]]\nkey = { at = 1 }\n[capped]\nsize = 5000\n"})
    converge(mongo_backend, unbounded)  # cappedMax 0, echoed as 2^31 - 1
    assert diff_states(unbounded, mongo_backend.introspect()) == []
