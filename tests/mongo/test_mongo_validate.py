"""The offline $jsonSchema validator: MongoDB's types and MongoDB's dialect."""

from __future__ import annotations

import datetime
import json

import pytest
from bson import Decimal128, Int64, ObjectId, json_util
from bson.binary import Binary
from mongo_support import COMMUNICATION, UUID

from sovren_db.core.errors import DeclarationError
from sovren_db.mongo.extjson import read_documents
from sovren_db.mongo.validate import DocumentValidator, bson_type


def check(properties: dict, document: dict, **schema) -> list[str]:
    return DocumentValidator({"bsonType": "object", "properties": properties, **schema}).errors(document)


@pytest.mark.parametrize(
    "value, name",
    [
        (5, "int"),
        (Int64(5), "long"),
        (2**40, "long"),
        (5.0, "double"),
        (Decimal128("5"), "decimal"),
        (True, "bool"),
        ("5", "string"),
        (ObjectId(), "objectId"),
        (datetime.datetime(2024, 1, 1), "date"),
        (None, "null"),
        ([], "array"),
        ({}, "object"),
        (Binary(b"x", 4), "binData"),
    ],
)
def test_bson_type_names(value, name):
    assert bson_type(value) == name


def test_int_long_double_and_decimal_are_different_bson_types():
    schema = {"n": {"bsonType": "int"}}
    assert check(schema, {"n": 5}) == []
    for other, shown in (
        (Int64(5), "long value 5"),
        (5.0, "double value 5.0"),
        (Decimal128("5"), 'decimal value {"$numberDecimal": "5"}'),
    ):
        assert check(schema, {"n": other}) == [f"/n: {shown} is not of bsonType int"]


def test_number_alias_matches_every_numeric_type_but_not_bool():
    for keyword in ("bsonType", "type"):
        for value in (5, Int64(5), 5.5, Decimal128("5.5")):
            assert check({"n": {keyword: "number"}}, {"n": value}) == []
        assert check({"n": {keyword: "number"}}, {"n": True}) != []


def test_a_date_is_not_a_string_and_an_object_id_is_not_either():
    assert check({"t": {"bsonType": "date"}}, {"t": "2024-01-01T00:00:00Z"}) != []
    assert check({"t": {"type": "string"}}, {"t": datetime.datetime(2024, 1, 1)}) != []
    assert check({"i": {"type": "string"}}, {"i": ObjectId()}) != []


def test_additional_properties_false_counts_the_id_field():
    schema = {"_id": {"bsonType": "objectId"}, "a": {"bsonType": "string"}}
    assert check(schema, {"_id": ObjectId(), "a": "x"}, additionalProperties=False) == []
    assert check(schema, {"_id": ObjectId(), "a": "x", "b": 1}, additionalProperties=False) == [
        "Additional properties are not allowed ('b' was unexpected)"
    ]


def test_enum_compares_numbers_across_types_but_not_bools():
    assert check({"n": {"enum": [1]}}, {"n": 1.0}) == []
    assert check({"n": {"enum": [1]}}, {"n": Int64(1)}) == []
    assert check({"n": {"enum": [1]}}, {"n": True}) != []


def test_bounds_and_multiples_work_on_decimal128():
    schema = {
        "c": {
            "bsonType": ["double", "decimal"],
            "minimum": 0,
            "maximum": Decimal128("100"),
            "multipleOf": 0.25,
        }
    }
    assert check(schema, {"c": Decimal128("99.75")}) == []
    assert check(schema, {"c": Decimal128("100.25")})[0].startswith("/c: Decimal('100.25') is greater than")
    assert "not a multiple of 0.25" in check(schema, {"c": Decimal128("1.1")})[0]


def test_restrictions_skip_other_types_and_missing_fields():
    schema = {"s": {"minLength": 3}, "n": {"minimum": 10}}
    assert check(schema, {"s": 1, "n": "x"}) == []
    assert check(schema, {}) == []


def test_nested_objects_arrays_items_and_required():
    schema = {
        "skills": {"bsonType": "array", "items": {"bsonType": "string"}, "maxItems": 2},
        "profile": {
            "bsonType": "object",
            "required": ["voice"],
            "properties": {"voice": {"bsonType": "string"}},
        },
    }
    assert check(schema, {"skills": ["a"], "profile": {"voice": "v"}}) == []
    errors = check(schema, {"skills": ["a", 2, "c"], "profile": {}})
    assert errors == [
        "/profile: 'voice' is a required property",
        "/skills: ['a', 2, 'c'] is too long",
        "/skills/1: int value 2 is not of bsonType string",
    ]


def test_exclusive_bounds_are_draft_4_booleans():
    assert check({"n": {"bsonType": "int", "maximum": 5, "exclusiveMaximum": True}}, {"n": 5}) != []
    assert check({"n": {"bsonType": "int", "maximum": 5, "exclusiveMaximum": False}}, {"n": 5}) == []


def test_schemas_mongodb_refuses_are_refused():
    with pytest.raises(ValueError, match="at /properties/n/type: type 'integer' is not supported"):
        DocumentValidator({"properties": {"n": {"type": "integer"}}})
    with pytest.raises(ValueError, match="does not support the keyword 'format'"):
        DocumentValidator({"properties": {"e": {"type": "string", "format": "email"}}})
    with pytest.raises(ValueError, match="at /properties/s: 'encrypt' and 'encryptMetadata' cannot both"):
        DocumentValidator({"properties": {"s": {"encrypt": {}, "encryptMetadata": {"keyId": "/k"}}}})


def test_empty_positional_items_constrain_nothing_but_additional_items():
    assert DocumentValidator({"properties": {"p": {"items": []}}}).errors({"p": [1, "a"]}) == []
    closed = DocumentValidator({"properties": {"p": {"items": [], "additionalItems": False}}})
    assert closed.errors({"p": []}) == []
    assert closed.errors({"p": [1]}) != []


def test_schemas_mongodb_accepts_are_accepted():
    DocumentValidator({"properties": {"p": {"bsonType": "array", "items": []}}})
    DocumentValidator({"additionalProperties": False, "patternProperties": {"^_": {}}})


def test_a_document_must_be_an_object():
    assert DocumentValidator({"bsonType": "object"}).errors([1]) == [
        "a document must be an object, not array"
    ]


def _sovren(collection, sovren_declared) -> DocumentValidator:
    return DocumentValidator(sovren_declared.collections[collection].validator["$jsonSchema"])


def test_sovren_communication(sovren_declared):
    validator = _sovren("communications", sovren_declared)
    assert validator.errors(json_util.loads(json.dumps(COMMUNICATION))) == []
    wrong = json_util.loads(json.dumps({**COMMUNICATION, "status": "bounced", "userId": "not-a-uuid"}))
    assert validator.errors(wrong) == [
        "/status: 'bounced' is not one of ['sent', 'delivered', 'failed']",
        "/userId: 'not-a-uuid' does not match "
        "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'",
    ]


def test_sovren_simulation_confidence_follows_numeric_5_2(sovren_declared):
    validator = _sovren("scenario_simulations", sovren_declared)
    document = {
        "_id": ObjectId(),
        "simulationId": UUID,
        "operationId": UUID,
        "userId": UUID,
        "region": "eu",
        "scenario": "Market entry",
        "parameters": {"horizon": 4},
        "status": "completed",
        "createdAt": datetime.datetime(2024, 3, 13),
        "confidence": Decimal128("87.50"),
    }
    assert validator.errors(document) == []
    assert validator.errors({**document, "confidence": 140}) != []
    assert validator.errors({**document, "region": "apac"}) != []


def test_documents_from_json_lines_keep_line_numbers_and_bson_types(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"n": {"$numberLong": "5"}}\n\n{"d": {"$date": "2024-01-01T00:00:00Z"}}\n')
    documents = list(read_documents(path))
    assert [(i, line) for i, line, _ in documents] == [(0, 1), (1, 3)]
    assert type(documents[0][2]["n"]) is Int64 and isinstance(documents[1][2]["d"], datetime.datetime)


def test_documents_from_a_json_array(tmp_path):
    path = tmp_path / "docs.json"
    path.write_text('[{"a": 1}, {"b": {"$oid": "65f1a2b3c4d5e6f708091b01"}}]')
    assert [d for _, _, d in read_documents(path)] == [{"a": 1}, {"b": ObjectId("65f1a2b3c4d5e6f708091b01")}]


def test_bad_document_files_name_the_place(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"a": 1}\n{"a": \n')
    with pytest.raises(DeclarationError, match=r"docs.jsonl at line 2: not valid Extended JSON"):
        list(read_documents(path))
    with pytest.raises(DeclarationError, match="cannot be read"):
        list(read_documents(tmp_path / "missing.json"))
