"""Loading ``mongo/``: Sovren's declarations, and every load error naming file and JSON pointer."""

from __future__ import annotations

import json

import pytest
from mongo_support import write_declarations

from sovren_db.core.errors import DeclarationError
from sovren_db.mongo.declared import has_declarations, load_declared
from sovren_db.mongo.validate import DocumentValidator

OK_SCHEMA = json.dumps({"bsonType": "object", "properties": {"a": {"bsonType": "string"}}})


def test_sovren_declares_its_four_collections(sovren_declared):
    assert sovren_declared.names() == [
        "analytics_payloads",
        "communications",
        "executives",
        "scenario_simulations",
    ]


def test_communications_is_sharded_on_hashed_user_id_with_a_supporting_index(sovren_declared):
    communications = sovren_declared.collections["communications"]
    assert communications.shard_key.key == (("userId", "hashed"),)
    assert communications.index("userId_hashed").key == (("userId", "hashed"),)
    status = communications.validator["$jsonSchema"]["properties"]["status"]
    assert status["enum"] == ["sent", "delivered", "failed"]


def test_communications_indexes_serve_its_reads(sovren_declared):
    communications = sovren_declared.collections["communications"]
    assert communications.index("userId_1_timestamp_-1").key == (("userId", 1), ("timestamp", -1))
    assert communications.index("userId_1_messageId_1").options == {"unique": True}


def test_transient_payloads_expire_through_a_ttl_index(sovren_declared):
    analytics = sovren_declared.collections["analytics_payloads"]
    assert analytics.index("createdAt_1").ttl == 30 * 24 * 3600


@pytest.mark.parametrize("name", ["scenario_simulations", "analytics_payloads"])
def test_residency_zones_cover_each_region_within_the_shard_key(sovren_declared, name):
    collection = sovren_declared.collections[name]
    assert collection.shard_key.fields == ("region", "userId")
    assert [z.zone for z in collection.zones] == ["eu", "us"]
    for zone in collection.zones:
        assert zone.min == (("region", zone.zone), ("userId", {"$minKey": 1}))
        assert zone.max == (("region", zone.zone), ("userId", {"$maxKey": 1}))


def test_executives_have_the_fields_of_the_architecture_plus_user_id(sovren_declared):
    schema = sovren_declared.collections["executives"].validator["$jsonSchema"]
    for field in ("executiveId", "userId", "role", "name", "skills", "voiceProfile", "active"):
        assert field in schema["required"]
    assert schema["properties"]["skills"]["items"]["bsonType"] == "string"


def test_simulations_and_payloads_link_to_postgres_by_operation_and_user(sovren_declared):
    for name in ("scenario_simulations", "analytics_payloads"):
        required = sovren_declared.collections[name].validator["$jsonSchema"]["required"]
        assert {"operationId", "userId"} <= set(required)
        assert sovren_declared.collections[name].index("operationId_1") is not None


def _load(tmp_path, files):
    return load_declared(write_declarations(tmp_path, files))


def _error(tmp_path, files) -> str:
    with pytest.raises(DeclarationError) as caught:
        _load(tmp_path, files)
    return str(caught.value)


def assert_load_error(tmp_path, name: str, text: str, where: str | None, problem: str) -> None:
    """Loading a folder holding only ``name`` fails at ``mongo/<name> at <where>`` with ``problem``."""
    message = _error(tmp_path, {name: text})
    assert message.startswith(f"mongo/{name} at {where}: " if where else f"mongo/{name}: ")
    assert problem in message


UUID_KEY = {"$binary": {"base64": "AAAAAAAAAAAAAAAAAAAAAA==", "subType": "04"}}
ALGORITHM = "AEAD_AES_256_CBC_HMAC_SHA_512-Random"


def _schema(properties: dict, **extra) -> str:
    return json.dumps({"bsonType": "object", "properties": properties, **extra})


SCHEMA_ERRORS = [
    ({"a": {"bsonType": "strng"}}, {}, "/properties/a/bsonType", "unknown bsonType 'strng'"),
    ({"a": {"bsonType": ["int", "dt"]}}, {}, "/properties/a/bsonType/1", "unknown bsonType 'dt'"),
    ({"n": {"type": "integer"}}, {}, "/properties/n/type", "use bsonType 'int' or 'long'"),
    ({"d": {"type": "date"}}, {}, "/properties/d/type", "unknown type 'date'"),
    ({"a": {"$ref": "#/definitions/x"}}, {}, "/properties/a/$ref", "does not support the keyword '$ref'"),
    ({"a": {"bsonType": "string", "format": "email"}}, {}, "/properties/a/format", "does not support"),
    ({"a": {"type": "string", "bsonType": "string"}}, {}, "/properties/a", "cannot both be given"),
    (
        {"a": {"bsonType": "int", "exclusiveMaximum": True}},
        {},
        "/properties/a/exclusiveMaximum",
        "needs 'maximum'",
    ),
    ({"a": {"enum": ["x", "x"]}}, {}, "/properties/a/enum", "duplicate values"),
    (
        {"a": {"bsonType": "array", "items": {"bsonType": "nope"}}},
        {},
        "/properties/a/items/bsonType",
        "unknown bsonType",
    ),
    (
        {"a": {"bsonType": "string", "pattern": "(unclosed"}},
        {},
        "/properties/a/pattern",
        "regular expression",
    ),
    ({"a": {"bsonType": "string", "minLength": -1}}, {}, "/properties/a/minLength", "non-negative"),
    ({"a": {"anyOf": []}}, {}, "/properties/a/anyOf", "non-empty"),
    (
        {"a": {"bsonType": "string", "unknownKeyword": 1}},
        {},
        "/properties/a/unknownKeyword",
        "not a $jsonSchema keyword",
    ),
    ({"a": {"bsonType": "string"}}, {"required": []}, "/required", "non-empty"),
    (
        {"a": {"bsonType": "string"}},
        {"additionalProperties": False},
        "/additionalProperties",
        "'_id' is not in properties",
    ),
    (
        {"a": {"bsonType": "string"}},
        {"additionalProperties": False, "patternProperties": {"^x_": {"bsonType": "int"}}},
        "/additionalProperties",
        "nor matched by patternProperties",
    ),
    (
        {"ssn": {"encrypt": {"keyId": [UUID_KEY]}, "encryptMetadata": {"algorithm": ALGORITHM}}},
        {},
        "/properties/ssn",
        "'encrypt' and 'encryptMetadata' cannot both be given",
    ),
    ({"a": {"bsonType": "object"}}, {"encryptMetadata": {}}, "/encryptMetadata", "non-empty object"),
]


@pytest.mark.parametrize("properties, extra, where, problem", SCHEMA_ERRORS)
def test_malformed_schema_names_file_and_pointer(tmp_path, properties, extra, where, problem):
    assert_load_error(tmp_path, "c.schema.json", _schema(properties, **extra), where, problem)


def test_schemas_the_server_accepts_load(tmp_path):
    schemas = {
        "positional.schema.json": _schema({"pair": {"bsonType": "array", "items": []}}),
        "patterned.schema.json": _schema(
            {"a": {"bsonType": "string"}},
            additionalProperties=False,
            patternProperties={"^_": {}},
        ),
        "secret.schema.json": _schema(
            {"ssn": {"encrypt": {"keyId": [UUID_KEY]}}}, encryptMetadata={"algorithm": ALGORITHM}
        ),
    }
    state = _load(tmp_path, schemas)
    positional = state.collections["positional"].validator["$jsonSchema"]
    assert positional["properties"]["pair"]["items"] == []
    patterned = DocumentValidator(state.collections["patterned"].validator["$jsonSchema"])
    assert patterned.errors({"_id": 1, "a": "x"}) == []
    assert patterned.errors({"_id": 1, "b": "x"}) != []


def test_schema_that_is_not_json_names_the_line(tmp_path):
    assert_load_error(tmp_path, "c.schema.json", '{\n  "bsonType": "object",\n}', "line 3", "not valid JSON")


def test_schema_with_a_key_twice_is_malformed(tmp_path):
    message = _error(tmp_path, {"c.schema.json": '{"bsonType": "object", "bsonType": "array"}'})
    assert "the key 'bsonType' appears twice" in message


def test_top_level_schema_must_allow_documents(tmp_path):
    assert_load_error(
        tmp_path,
        "c.schema.json",
        '{"bsonType": "string"}',
        "/bsonType",
        "the top-level schema must allow 'object'",
    )


TOML_ERRORS = [
    (
        '[[indexes]]\nkey = { a = 1 }\n[[indexes]]\nkey = { b = 1 }\nname = "a_1"\n',
        "/indexes/1",
        "index 'a_1' is declared twice (also at /indexes/0)",
    ),
    (
        '[[indexes]]\nkey = { a = 1, b = -1 }\n[[indexes]]\nkey = { a = 1, b = -1 }\nname = "other"\n',
        "/indexes/1/key",
        "an index declared twice",
    ),
    (
        "[[indexes]]\nkey = { a = 1, b = 1 }\nexpireAfterSeconds = 60\n",
        "/indexes/0/expireAfterSeconds",
        "a TTL index must have a single key field",
    ),
    ("[[indexes]]\nkey = { a = 2 }\n", "/indexes/0/key/a", "2 is not one of"),
    ("[[indexes]]\nkey = {}\n", "/indexes/0/key", "non-empty table"),
    ("[[indexes]]\nkey = { a = 1 }\nuniq = true\n", "/indexes/0/uniq", "unknown index option"),
    ('[[indexes]]\nkey = { a = 1 }\nunique = "yes"\n', "/indexes/0/unique", "must be true or false"),
    (
        '[[indexes]]\nkey = { a = "hashed" }\nunique = true\n',
        "/indexes/0/unique",
        "hashed index cannot be unique",
    ),
    ("[[indexes]]\nkey = { _id = 1 }\n", "/indexes/0/key", "the _id index always exists"),
    (
        "[[indexes]]\nkey = { a = 1 }\n[shard]\nkey = { b = 1 }\n",
        "/shard/key",
        "no declared index supports the shard key {b: 1}",
    ),
    (
        '[[indexes]]\nkey = { u = 1 }\n[shard]\nkey = { u = "hashed" }\n',
        "/shard/key",
        "declare a hashed index on that field",
    ),
    (
        '[[indexes]]\nkey = { u = 1, t = 1 }\npartialFilterExpression = { t = { "$gt" = 0 } }\n'
        "[shard]\nkey = { u = 1 }\n",
        "/shard/key",
        "not sparse, partial",
    ),
    (  # on a collection with a default collation the shard key index must say simple
        'collation = { locale = "fr" }\n[[indexes]]\nkey = { u = 1 }\n[shard]\nkey = { u = 1 }\n',
        "/shard/key",
        'with collation {locale: "simple"}',
    ),
    (
        "[[indexes]]\nkey = { u = 1 }\n[[indexes]]\nkey = { email = 1 }\nunique = true\n"
        "[shard]\nkey = { u = 1 }\n",
        "/indexes/1/unique",
        "must start with the shard key fields (u)",
    ),
    ("[[indexes]]\nkey = { u = 1 }\n[shard]\nkey = { u = -1 }\n", "/shard/key/u", "-1 is not one of"),
    (
        '[[zones]]\nzone = "eu"\nmin = { r = "eu" }\nmax = { r = "ev" }\n',
        "/zones",
        "zones need a [shard] key",
    ),
    (
        "[[indexes]]\nkey = { r = 1, u = 1 }\n[shard]\nkey = { r = 1, u = 1 }\n"
        '[[zones]]\nzone = "eu"\nmin = { region = "eu" }\nmax = { region = "ev" }\n',
        "/zones/0/min",
        "must name the shard key fields r, u in that order",
    ),
    (
        "[[indexes]]\nkey = { r = 1, u = 1 }\n[shard]\nkey = { r = 1, u = 1 }\n"
        '[[zones]]\nzone = "eu"\nmin = { u = 1, r = "eu" }\nmax = { r = "ev", u = 1 }\n',
        "/zones/0/min",
        "in that order",
    ),
    (
        "[[indexes]]\nkey = { r = 1 }\n[shard]\nkey = { r = 1 }\n"
        '[[zones]]\nzone = "eu"\nmin = { r = "eu" }\nmax = { r = "f" }\n'
        '[[zones]]\nzone = "us"\nmin = { r = "ea" }\nmax = { r = "us" }\n',
        "/zones/0",
        "overlaps the range of zone 'us' at /zones/1",
    ),
    (
        "[[indexes]]\nkey = { r = 1 }\n[shard]\nkey = { r = 1 }\n"
        '[[zones]]\nzone = "eu"\nmin = { r = "f" }\nmax = { r = "eu" }\n',
        "/zones/0",
        "min must be below max",
    ),
    (
        '[[indexes]]\nkey = { u = "hashed" }\n[shard]\nkey = { u = "hashed" }\n'
        '[[zones]]\nzone = "eu"\nmin = { u = "a" }\nmax = { u = { "$maxKey" = 1 } }\n',
        "/zones/0/min/u",
        "hashed shard key field takes hashed values",
    ),
    ('validationLevel = "lenient"\n', "/validationLevel", "must be one of 'off', 'strict', 'moderate'"),
    ("indexez = []\n", "/indexez", "unknown key 'indexez'"),
    (
        '[capped]\nsize = 4096\n[timeseries]\ntimeField = "t"\n',
        "/timeseries",
        "both capped and a time series",
    ),
    ('[timeseries]\nmetaField = "m"\n', "/timeseries/timeField", "is required"),
    (
        '[timeseries]\ntimeField = "t"\nmetaField = "m"\n[[indexes]]\nkey = { note = "text" }\n',
        "/indexes/0/key",
        "no text index on a time-series collection",
    ),
    (
        '[timeseries]\ntimeField = "t"\n[[indexes]]\nkey = { x = 1 }\nunique = true\n',
        "/indexes/0/unique",
        "no unique index on a time-series collection",
    ),
    (
        '[timeseries]\ntimeField = "t"\nmetaField = "m"\n[[indexes]]\nkey = { "m.site" = 1 }\nsparse = true\n',
        "/indexes/0/sparse",
        "no sparse index on the metaField 'm'",
    ),
    ("expireAfterSeconds = 60\n", "/expireAfterSeconds", "needs [timeseries]"),
    (
        "[capped]\nsize = 4096\n[[indexes]]\nkey = { a = 1 }\n[shard]\nkey = { a = 1 }\n",
        "/shard",
        "a capped collection cannot be sharded",
    ),
    # time-series bucketing (validateAndSetBucketingParameters)
    (
        '[timeseries]\ntimeField = "t"\ngranularity = "minutes"\nbucketMaxSpanSeconds = 600\n'
        "bucketRoundingSeconds = 600\n",
        "/timeseries/bucketMaxSpanSeconds",
        "cannot be combined with granularity: keep granularity = 'minutes' (buckets of 86400 s",
    ),
    (
        '[timeseries]\ntimeField = "t"\ngranularity = "seconds"\nbucketRoundingSeconds = 60\n',
        "/timeseries/bucketRoundingSeconds",
        "custom bucketing needs MongoDB 6.3+",
    ),
    (
        '[timeseries]\ntimeField = "t"\nbucketMaxSpanSeconds = 600\n',
        "/timeseries/bucketMaxSpanSeconds",
        "needs bucketRoundingSeconds too",
    ),
    (
        '[timeseries]\ntimeField = "t"\nbucketRoundingSeconds = 600\n',
        "/timeseries/bucketRoundingSeconds",
        "needs bucketMaxSpanSeconds too",
    ),
    (
        '[timeseries]\ntimeField = "t"\nbucketMaxSpanSeconds = 3600\nbucketRoundingSeconds = 60\n',
        "/timeseries/bucketRoundingSeconds",
        "must equal bucketMaxSpanSeconds (3600), not 60 (custom bucketing needs MongoDB 6.3+)",
    ),
    (
        '[timeseries]\ntimeField = "t"\nbucketMaxSpanSeconds = 0\nbucketRoundingSeconds = 0\n',
        "/timeseries/bucketMaxSpanSeconds",
        "must be a positive whole number of seconds",
    ),
    (
        '[timeseries]\ntimeField = "t"\nbucketMaxSpanSeconds = 60.5\nbucketRoundingSeconds = 60.5\n',
        "/timeseries/bucketMaxSpanSeconds",
        "must be a positive whole number of seconds",
    ),
    ('[timeseries]\ntimeField = "t"\ngranularity = "days"\n', "/timeseries/granularity", "must be one of"),
    # a time series has no validator
    (
        'validationLevel = "strict"\n[timeseries]\ntimeField = "t"\n',
        "/validationLevel",
        "option not supported on a time-series collection",
    ),
    (
        'validationAction = "warn"\n[timeseries]\ntimeField = "t"\n',
        "/validationAction",
        "a time-series collection has no validator to configure",
    ),
    # TTL indexes the collection's kind refuses
    (
        "[capped]\nsize = 4096\n[[indexes]]\nkey = { at = 1 }\nexpireAfterSeconds = 60\n",
        "/indexes/0/expireAfterSeconds",
        "TTL indexes are not supported for capped collections",
    ),
    (
        '[timeseries]\ntimeField = "t"\nmetaField = "m"\n[[indexes]]\nkey = { t = 1 }\nexpireAfterSeconds = 60\n',
        "/indexes/0/expireAfterSeconds",
        "needs a partialFilterExpression on the metaField 'm' only (MongoDB 6.3+); "
        "to expire every measurement, set the collection-level expireAfterSeconds instead",
    ),
    (
        '[timeseries]\ntimeField = "t"\nmetaField = "m"\n[[indexes]]\nkey = { t = 1 }\nexpireAfterSeconds = 60\n'
        'partialFilterExpression = { "m.kind" = "probe", level = { "$gt" = 2 } }\n',
        "/indexes/0/partialFilterExpression/level",
        "needs a partialFilterExpression on the metaField 'm' only",
    ),
    (
        '[timeseries]\ntimeField = "t"\nmetaField = "m"\n[[indexes]]\nkey = { t = 1 }\nexpireAfterSeconds = 60\n'
        'partialFilterExpression = { "$and" = [{ m = "a" }, { mx = 1 }] }\n',
        "/indexes/0/partialFilterExpression/$and/1/mx",
        "on the metaField 'm' only",
    ),
    (
        '[timeseries]\ntimeField = "t"\n[[indexes]]\nkey = { t = 1 }\nexpireAfterSeconds = 60\n'
        'partialFilterExpression = { m = "a" }\n',
        "/indexes/0/expireAfterSeconds",
        "[timeseries] declares no metaField; to expire every measurement, set the collection-level",
    ),
    (
        '[timeseries]\ntimeField = "t"\nmetaField = "m"\n[[indexes]]\nkey = { seen = 1 }\n'
        'expireAfterSeconds = 60\npartialFilterExpression = { m = "a" }\n',
        "/indexes/0/key",
        "a TTL index on a time series must be on the timeField 't', not 'seen'",
    ),
]


@pytest.mark.parametrize("toml, where, problem", TOML_ERRORS)
def test_inconsistent_options_name_file_and_pointer(tmp_path, toml, where, problem):
    assert_load_error(tmp_path, "c.toml", toml, where, problem)


def test_a_time_series_with_a_schema_file_is_refused(tmp_path):
    message = _error(tmp_path, {"c.schema.json": OK_SCHEMA, "c.toml": '[timeseries]\ntimeField = "t"\n'})
    assert message.startswith("mongo/c.toml at /timeseries: ")
    assert "a time-series collection cannot have a validator, but mongo/c.schema.json declares one" in message
    assert "option not supported on a time-series collection" in message


def test_time_series_bucketing_and_ttl_the_server_accepts_load(tmp_path):
    state = _load(
        tmp_path,
        {
            "custom.toml": '[timeseries]\ntimeField = "t"\nbucketMaxSpanSeconds = 600\n'
            "bucketRoundingSeconds = 600\n",
            "expiring.toml": '[timeseries]\ntimeField = "t"\nmetaField = "m"\n[[indexes]]\nkey = { t = 1 }\n'
            'expireAfterSeconds = 60\npartialFilterExpression = { "$and" = [{ "m.kind" = "probe" }, { m = '
            '{ "$exists" = true } }] }\n',
            "wide.toml": 'expireAfterSeconds = 86400\n[timeseries]\ntimeField = "t"\ngranularity = "hours"\n',
            "action.toml": 'validationAction = "errorAndLog"\n',
        },
    )
    assert state.collections["custom"].options["timeseries"] == {
        "timeField": "t",
        "bucketMaxSpanSeconds": 600,
        "bucketRoundingSeconds": 600,
    }
    assert state.collections["expiring"].index("t_1").ttl == 60
    assert state.collections["wide"].options["expireAfterSeconds"] == 86400
    assert state.collections["action"].validation_action == "errorAndLog"


def test_toml_syntax_error_names_the_file(tmp_path):
    assert_load_error(tmp_path, "c.toml", "[[indexes]\nkey = 1\n", None, "not valid TOML")


def test_a_json_file_not_named_as_a_schema_is_refused(tmp_path):
    assert "name $jsonSchema files <collection>.schema.json" in _error(tmp_path, {"c.json": "{}"})


def test_the_ledger_name_cannot_be_declared(tmp_path):
    assert "not a collection name" in _error(tmp_path, {"sovren_db_ledger.toml": ""})


def test_defaults_and_normalised_options(tmp_path):
    state = _load(
        tmp_path,
        {
            "plain.schema.json": OK_SCHEMA,
            "tail.toml": "[capped]\nsize = 5000\nmax = 10\n",
            "metrics.toml": '[timeseries]\ntimeField = "ts"\nmetaField = "meta"\n',
        },
    )
    plain = state.collections["plain"]
    assert (plain.validation_level, plain.validation_action, plain.indexes) == ("strict", "error", ())
    assert state.collections["tail"].options == {"capped": True, "size": 5120, "max": 10}
    metrics = state.collections["metrics"]
    assert metrics.options == {
        "timeseries": {"timeField": "ts", "metaField": "meta", "granularity": "seconds"}
    }
    assert metrics.index("meta_1_ts_1").key == (("meta", 1), ("ts", 1))


def test_index_key_order_is_kept_and_options_are_normalised(tmp_path):
    state = _load(
        tmp_path,
        {
            "c.toml": "[[indexes]]\nkey = { z = 1, a = -1.0 }\nunique = false\n"
            'collation = { locale = "en", strength = 3 }\n'
        },
    )
    index = state.collections["c"].indexes[0]
    assert (index.name, index.key, index.options) == (
        "z_1_a_-1",
        (("z", 1), ("a", -1)),
        {"collation": {"locale": "en"}},
    )


def test_has_declarations(tmp_path):
    assert not has_declarations(tmp_path / "mongo")
    write_declarations(tmp_path, {"c.schema.json": OK_SCHEMA})
    assert has_declarations(tmp_path / "mongo")


def test_every_sovren_validator_compiles_offline(sovren_declared):
    for spec in sovren_declared.collections.values():
        assert DocumentValidator(spec.validator["$jsonSchema"]).errors({}) != []


def test_a_simple_shard_key_index_on_a_collection_with_a_default_collation_loads(tmp_path):
    state = _load(tmp_path, {"c.toml": 'collation = { locale = "fr" }\n[[indexes]]\nkey = { u = 1 }\n'
                                       'collation = { locale = "simple" }\n[shard]\nkey = { u = 1 }\n'})
    assert state.collections["c"].indexes[0].options == {"collation": {"locale": "simple"}}
