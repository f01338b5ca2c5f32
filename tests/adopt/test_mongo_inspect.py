"""MongoDB inspect, pure: the live state read from server-shaped replies (tests/mongo/mongo_replies.py)
is written as the mongo/ folder and loads back equal; $jsonSchema inference from documents."""

from __future__ import annotations

import datetime
import sys
from pathlib import Path

import jsonschema
import pytest
from bson import Decimal128, Int64, ObjectId

from sovren_db import commands

from sovren_db.adopt.inspect import with_inferred_validators
from sovren_db.adopt.mongo_infer import infer_schema
from sovren_db.adopt.mongo_write import write_mongo
from sovren_db.mongo.declared import load_declared
from sovren_db.mongo.diff import diff_states
from sovren_db.mongo.live import managed, state_from_replies
from sovren_db.mongo.state import CollectionSpec, DatabaseState

MONGO_TESTS = Path(__file__).resolve().parents[1] / "mongo"
sys.path.insert(0, str(MONGO_TESTS))

import mongo_replies as R  # noqa: E402
from .roundtrip import assert_clean, empty_project, settings_for  # noqa: E402
from test_mongo_live import sovren_live  # noqa: E402

SOVREN_MONGO = Path(__file__).resolve().parents[2] / "mongo"


def _round_trip(live: DatabaseState, folder: Path) -> DatabaseState:
    write_mongo(live, folder)
    return load_declared(folder, display_root=folder.parent)


def test_sovren_collections_read_from_a_mongos_load_back_equal(tmp_path):
    declared = load_declared(SOVREN_MONGO)
    live = sovren_live(declared, mongos=True)
    again = _round_trip(live, tmp_path / "mongo")
    assert diff_states(again, live) == []
    assert again.collections == live.collections
    simulations = (tmp_path / "mongo" / "scenario_simulations.toml").read_text()
    assert "[shard]" in simulations and '[[zones]]\nzone = "eu"' in simulations
    assert (tmp_path / "mongo" / "communications.schema.json").is_file()


def test_capped_time_series_and_special_indexes_load_back_equal(tmp_path):
    infos = [c for c in R.LIST_COLLECTIONS["cursor"]["firstBatch"] if managed(c)]
    indexes = {c["name"]: [] for c in infos}
    indexes["communications"] = R.LIST_INDEXES_SPECIAL["cursor"]["firstBatch"]
    # listIndexes on a time series, MongoDB 6.3+: the index the server creates on {metaField, timeField}
    indexes["metrics"] = [{"v": 2, "key": {"meta": 1, "ts": 1}, "name": "meta_1_ts_1"}]
    live = state_from_replies("sovren_ai", infos, indexes, sharded=False)
    assert live.collections["audit_tail"].options["capped"] is True
    again = _round_trip(live, tmp_path / "mongo")
    assert diff_states(again, live) == [] and again.collections == live.collections


DOCUMENTS = [
    {"_id": ObjectId(), "userId": "u1", "count": 3, "big": Int64(2**40), "at": datetime.datetime(2026, 1, 1),
     "profile": {"name": "Ada", "tags": ["a", "b"]}, "price": Decimal128("1.50")},
    {"_id": ObjectId(), "userId": "u2", "count": 4.5, "big": Int64(7), "at": datetime.datetime(2026, 1, 2),
     "profile": {"name": "Bo"}, "price": None},
    {"_id": ObjectId(), "userId": "u3", "count": 5, "big": Int64(1), "at": datetime.datetime(2026, 1, 3),
     "profile": {"name": "Cy", "tags": [], "age": 30}},
]


def test_inferred_schema_types_unions_required_and_nesting():
    schema = infer_schema(DOCUMENTS, "people", total=30)
    assert schema["required"] == ["_id", "userId", "count", "big", "at", "profile"]
    props = schema["properties"]
    assert props["count"]["bsonType"] == ["double", "int"]
    assert props["big"]["bsonType"] == "long" and props["at"]["bsonType"] == "date"
    assert props["price"]["bsonType"] == ["decimal", "null"]
    assert props["profile"]["required"] == ["name"]
    assert props["profile"]["properties"]["tags"] == {"bsonType": "array", "items": {"bsonType": "string"}}
    assert "from 3 sampled documents of about 30 of people" in schema["description"]
    jsonschema.Draft4Validator.check_schema({k: v for k, v in schema.items() if k != "bsonType"})
    assert infer_schema([], "empty") is None


def test_infer_fills_only_collections_without_a_validator(tmp_path):
    with_validator = CollectionSpec("kept", validator={"$jsonSchema": {"bsonType": "object"}})
    state = DatabaseState({"kept": with_validator, "people": CollectionSpec("people"),
                           "series": CollectionSpec("series", options={"timeseries": {"timeField": "ts"}})},
                          sharded=False)
    inferred, notes = with_inferred_validators(state, lambda name: DOCUMENTS, lambda name: 30)
    assert inferred.collections["kept"] == with_validator and inferred.collections["series"].validator is None
    assert inferred.collections["people"].validator["$jsonSchema"]["properties"]["userId"] == {"bsonType": "string"}
    assert notes == {"people": "Validator inferred from 3 sampled documents: review it before applying."}
    again = load_declared(_write(inferred, tmp_path), display_root=tmp_path)
    assert again.collections["people"].validator == inferred.collections["people"].validator


def _write(state: DatabaseState, tmp_path: Path) -> Path:
    write_mongo(state, tmp_path / "mongo")
    return tmp_path / "mongo"


@pytest.mark.postgres
def test_baseline_holds_the_collections_and_replays_to_them(tmp_path, pg_url):
    """Mongo declared (written from server-shaped replies), no mongod: the baseline's Mongo steps are
    deferred by migrate, and check, comparing with the chain's replayed steps, finds no drift."""
    root = empty_project(tmp_path / "p", ("postgres", "mongo"))
    live = sovren_live(load_declared(SOVREN_MONGO), mongos=True)
    write_mongo(live, root / "mongo")
    (root / "postgres").mkdir()
    (root / "postgres" / "schema.py").write_text("from sovren_db.postgres import Schema\n\nschema = Schema()\n")
    settings = settings_for(root, pg_url)
    commands.baseline(settings)
    revision = next((root / "migrations" / "versions").glob("*_baseline.py")).read_text()
    assert revision.count("op.mongo_create_collection(") == 4
    migrated = commands.migrate(settings)
    assert any("mongo" in note and "deferred" in note for note in migrated.notes), migrated.notes
    assert_clean(settings)


def test_personal_fields_of_a_schema_are_candidates():
    from sovren_db.adopt.personal import mongo_candidates

    schema = infer_schema(DOCUMENTS, "people")
    found = {f.object for f in mongo_candidates("people", schema, "mongo/people.schema.json")}
    assert found == {"field people.profile.name"}
