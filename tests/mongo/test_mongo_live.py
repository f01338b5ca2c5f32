"""Live state from replies shaped like the server's: what the server echoes is never drift."""

from __future__ import annotations

import bson
import mongo_replies as R
from mongo_support import write_declarations

from sovren_db.mongo.declared import load_declared
from sovren_db.mongo.diff import diff_states
from sovren_db.mongo.live import is_mongos, managed, state_from_replies
from sovren_db.mongo.normalise import index_from_document
from sovren_db.mongo.state import DatabaseState


def _batch(reply: dict) -> list[dict]:
    return reply["cursor"]["firstBatch"]


def _echoed(validator: dict) -> dict:
    """What the server stores and returns for a validator sent by pymongo: the same BSON."""
    return bson.decode(bson.encode(validator))


def _info(name: str, validator: dict) -> dict:
    """A listCollections entry of a collection created by sovren-db (pymongo)."""
    return {
        "name": name,
        "type": "collection",
        "options": {
            "validator": _echoed(validator),
            "validationLevel": "strict",
            "validationAction": "error",
        },
        "info": {"readOnly": False, "uuid": R.COLLECTION_UUID},
        "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
    }


def sovren_live(declared: DatabaseState, *, mongos: bool) -> DatabaseState:
    infos = [c for c in _batch(R.LIST_COLLECTIONS) if c["name"] == "communications"]
    infos += [
        _info(n, declared.collections[n].validator)
        for n in ("executives", "scenario_simulations", "analytics_payloads")
    ]
    indexes = {
        "communications": _batch(R.LIST_INDEXES_COMMUNICATIONS),
        "executives": _batch(R.LIST_INDEXES_EXECUTIVES),
        "scenario_simulations": _batch(R.LIST_INDEXES_SIMULATIONS),
        "analytics_payloads": _batch(R.LIST_INDEXES_ANALYTICS),
    }
    config = (R.CONFIG_COLLECTIONS, R.CONFIG_TAGS) if mongos else ((), ())
    return state_from_replies("sovren_ai", infos, indexes, *config, sharded=mongos)


def test_hello_tells_a_mongos():
    assert is_mongos(R.HELLO_MONGOS) and not is_mongos(R.HELLO_MONGOD)


def test_views_system_collections_and_the_ledger_are_not_managed():
    names = [c["name"] for c in _batch(R.LIST_COLLECTIONS) if managed(c)]
    assert names == ["communications", "metrics", "audit_tail"]


def test_sovren_collections_echoed_by_a_standalone_server_show_no_drift(sovren_declared):
    live = sovren_live(sovren_declared, mongos=False)
    assert diff_states(sovren_declared, live) == []


def test_sovren_collections_echoed_by_a_mongos_show_no_drift_except_missing_zones(sovren_declared):
    live = sovren_live(sovren_declared, mongos=True)
    ops = diff_states(sovren_declared, live)
    # config.tags holds the scenario_simulations zones only; analytics_payloads is not sharded there
    assert [(op.op_name, op.collection) for op in ops] == [
        ("mongo_shard_collection", "analytics_payloads"),
        ("mongo_set_zones", "analytics_payloads"),
    ]


def test_mongosh_doubles_equal_declared_ints(sovren_declared):
    live = sovren_live(sovren_declared, mongos=False).collections["communications"]
    declared = sovren_declared.collections["communications"]
    recipient = live.validator["$jsonSchema"]["properties"]["recipient"]
    assert recipient["maxLength"] == 320 and isinstance(recipient["maxLength"], int)
    assert live.validation() == declared.validation()
    assert live.indexes == declared.indexes


def test_config_collections_and_tags_become_shard_keys_and_zones():
    infos = [
        {"name": n, "type": "collection", "options": {}}
        for n in ("communications", "scenario_simulations", "executives")
    ]
    live = state_from_replies("sovren_ai", infos, {}, R.CONFIG_COLLECTIONS, R.CONFIG_TAGS, sharded=True)
    assert live.collections["communications"].shard_key.key == (("userId", "hashed"),)
    assert live.collections["executives"].shard_key is None  # tracked by 8.0, not sharded
    simulations = live.collections["scenario_simulations"]
    assert simulations.shard_key.key == (("region", 1), ("userId", 1))
    assert [(z.zone, z.min[1][1], z.max[1][1]) for z in simulations.zones] == [
        ("eu", {"$minKey": 1}, {"$maxKey": 1}),
        ("us", {"$minKey": 1}, {"$maxKey": 1}),
    ]
    assert "old_events" not in live.collections


def test_collection_options_are_normalised():
    infos = [c for c in _batch(R.LIST_COLLECTIONS) if managed(c)]
    live = state_from_replies("sovren_ai", infos, {}, sharded=False)
    assert live.collections["metrics"].options == {
        "timeseries": {"timeField": "ts", "metaField": "meta", "granularity": "minutes"},
        "expireAfterSeconds": 604800,
    }
    assert live.collections["audit_tail"].options == {"capped": True, "size": 1048576, "max": 5000}
    assert live.collections["audit_tail"].validator is None
    assert live.collections["audit_tail"].validation_level == "strict"


def _special(name: str):
    return next(index_from_document(d) for d in _batch(R.LIST_INDEXES_SPECIAL) if d["name"] == name)


def _declared_index(tmp_path, toml: str):
    write_declarations(tmp_path, {"people.toml": toml})
    return load_declared(tmp_path / "mongo").collections["people"].indexes[0]


def test_collation_echoed_with_defaults_and_version_equals_the_declared_one(tmp_path):
    declared = _declared_index(
        tmp_path, '[[indexes]]\nkey = { name = 1 }\ncollation = { locale = "en", strength = 2 }\n'
    )
    assert _special("name_1") == declared
    assert declared.options == {"collation": {"locale": "en", "strength": 2}}


def test_text_index_internals_equal_the_declared_text_fields(tmp_path):
    declared = _declared_index(
        tmp_path, '[[indexes]]\nkey = { bio = "text", title = "text" }\nweights = { title = 10 }\n'
    )
    assert _special("bio_text_title_text") == declared
    assert declared.key == (("bio", "text"), ("title", "text"))
    compound = _declared_index(tmp_path, '[[indexes]]\nkey = { tenant = 1, notes = "text" }\n')
    assert _special("tenant_1_notes_text") == compound and compound.options == {}


def test_server_added_fields_are_dropped():
    assert _special("location_2dsphere").options == {}
    assert _special("email_1").options == {"unique": True}
    simulation = index_from_document(_batch(R.LIST_INDEXES_SIMULATIONS)[1])
    assert simulation.options == {} and simulation.key == (("region", 1), ("userId", 1), ("createdAt", -1))


def test_key_order_is_significant_and_numeric_types_are_not():
    a = index_from_document({"key": {"a": 1, "b": -1}})
    assert a == index_from_document({"key": {"a": 1.0, "b": bson.Int64(-1)}, "v": 2})
    assert a != index_from_document({"key": {"b": -1, "a": 1}, "name": "a_1_b_-1"})


def test_ttl_given_as_int64_equals_declared_int(sovren_declared):
    live = index_from_document(_batch(R.LIST_INDEXES_ANALYTICS)[1])
    assert live == sovren_declared.collections["analytics_payloads"].index("createdAt_1")


def test_true_is_not_one():
    assert index_from_document({"key": {"a": 1}, "unique": True}) != index_from_document(
        {"key": {"a": 1}, "unique": 1}
    )


def _options(**options) -> dict:
    info = {"name": "c", "type": "collection", "options": options}
    return state_from_replies("sovren_ai", [info], {}, sharded=False).collections["c"].options


def test_a_cap_without_a_maximum_is_echoed_as_int32_max_and_means_no_maximum():
    # collMod cappedMax: 0 is stored as 2^31 - 1
    assert _options(capped=True, size=8192, max=2147483647) == {"capped": True, "size": 8192}
    assert _options(capped=True, size=8192, max=0) == {"capped": True, "size": 8192}


def test_capped_sizes_round_to_256_without_a_floor():
    # MongoDB before 6.2 rounds up to a multiple of 256; 6.2+ keeps the size as given
    assert _options(capped=True, size=5000)["size"] == _options(capped=True, size=5120)["size"] == 5120
    assert _options(capped=True, size=1000)["size"] == 1024
    assert _options(capped=True, size=1000) != _options(capped=True, size=4000)


FR = {"locale": "fr", "strength": 1}
FR_ECHOED = {  # what the server echoes for a collection or an index made with FR
    "locale": "fr", "caseLevel": False, "caseFirst": "off", "strength": 1, "numericOrdering": False,
    "alternate": "non-ignorable", "maxVariable": "punct", "normalization": False, "backwards": False,
    "version": "57.1",
}


def _people_live():
    info = {"name": "people", "type": "collection", "options": {"collation": FR_ECHOED}}
    indexes = [
        {"v": 2, "key": {"_id": 1}, "name": "_id_", "collation": FR_ECHOED},
        {"v": 2, "key": {"name": 1}, "name": "name_1", "collation": FR_ECHOED},  # inherited
        {"v": 2, "key": {"code": 1}, "name": "code_1"},  # made simple: echoed with no collation
        {"v": 2, "key": {"_fts": "text", "_ftsx": 1}, "name": "bio_text", "weights": {"bio": 1},
         "default_language": "english", "language_override": "language", "textIndexVersion": 3},
        {"v": 2, "key": {"nick": 1}, "name": "nick_1",
         "collation": {**FR_ECHOED, "locale": "en", "strength": 2}},
    ]
    live = state_from_replies("sovren_ai", [info], {"people": indexes}, sharded=False)
    return {i.name: i.options.get("collation") for i in live.collections["people"].indexes}


def test_index_collations_are_stated_relative_to_the_collection_default():
    assert _people_live() == {
        "name_1": None,  # the collection's default
        "code_1": {"locale": "simple"},
        "bio_text": None,  # text indexes take no collation
        "nick_1": {"locale": "en", "strength": 2},
    }


def test_declared_index_collations_relative_to_the_collection_default_equal_the_echo(tmp_path):
    write_declarations(
        tmp_path,
        {
            "people.toml": (
                'collation = { locale = "fr", strength = 1 }\n'
                "[[indexes]]\nkey = { name = 1 }\n"
                '[[indexes]]\nkey = { code = 1 }\ncollation = { locale = "simple" }\n'
                '[[indexes]]\nkey = { bio = "text" }\nname = "bio_text"\n'
                '[[indexes]]\nkey = { nick = 1 }\ncollation = { locale = "en", strength = 2 }\n'
            )
        },
    )
    declared = load_declared(tmp_path / "mongo").collections["people"]
    assert {i.name: i.options.get("collation") for i in declared.indexes} == _people_live()


def test_locale_tailored_defaults_echoed_by_the_server_are_no_drift():
    # ICU resolves {locale: "da"} with caseFirst "upper", "th" with alternate "shifted"
    from sovren_db.mongo.normalise import normalise_collation

    echoed = {**FR_ECHOED, "locale": "da", "strength": 3, "caseFirst": "upper"}
    assert normalise_collation(echoed) == normalise_collation({"locale": "da"}) == {"locale": "da"}
    assert normalise_collation({**echoed, "locale": "da_DK"}) == {"locale": "da_DK"}
    thai = {**FR_ECHOED, "locale": "th", "strength": 3, "alternate": "shifted", "normalization": True}
    assert normalise_collation(thai) == {"locale": "th"}
    # a default changed by hand is still drift
    assert normalise_collation({**echoed, "caseFirst": "lower"}) == {"locale": "da", "caseFirst": "lower"}


def test_a_declared_index_collation_equal_to_the_collection_s_or_simple_where_there_is_none(tmp_path):
    write_declarations(
        tmp_path,
        {
            "a.toml": 'collation = { locale = "fr", strength = 1 }\n'
                      '[[indexes]]\nkey = { x = 1 }\ncollation = { locale = "fr", strength = 1 }\n',
            "b.toml": '[[indexes]]\nkey = { x = 1 }\ncollation = { locale = "simple" }\n',
        },
    )
    declared = load_declared(tmp_path / "mongo").collections
    # both are "the collection's default": what the server echoes for them normalises the same way
    assert declared["a"].indexes[0].options == {} and declared["b"].indexes[0].options == {}
