"""What the pytest plugin keeps of MongoDB and the commands that put it back (seeds/snapshots.py).

The pure tests use ``Recorder``: it is not a server and knows nothing of MongoDB. It answers
listCollections/listIndexes/find with the canned entries it is given (shaped as the server's
replies) and records the command documents and inserts sovren-db sends, so they check
what is sent, never what MongoDB does with it. The last test does that against a real mongod
(skipped, saying why, where there is none).
"""

from __future__ import annotations

import bson
import pytest
from bson.raw_bson import RawBSONDocument
from bson.son import SON
from pymongo.errors import OperationFailure

from sovren_db.seeds.snapshots import dump_database, restore_database

VALIDATOR = {"$jsonSchema": {"bsonType": "object", "required": ["userId"]}}


class Recorder:
    """Stands in for a pymongo Database: canned listings in, command documents and inserts out."""

    def __init__(self, collections=(), indexes=None, documents=None, live=None, drop_errors=None):
        self.collections = list(collections)        # listCollections entries
        self.indexes = indexes or {}                # name -> listIndexes entries
        self.documents = documents or {}            # name -> documents (dicts)
        self.live = live if live is not None else [c["name"] for c in self.collections]
        self.drop_errors = drop_errors or {}        # name -> (code, message)
        self.sent: list[tuple[str, object]] = []

    # reads
    def list_collections(self):
        self.sent.append(("listCollections", None))
        return iter(self.collections)

    def list_collection_names(self):
        self.sent.append(("listCollections", {"nameOnly": True}))
        return list(self.live)

    def __getitem__(self, name):
        return _Collection(self, name)

    def get_collection(self, name, codec_options=None):
        return _Collection(self, name, codec_options)

    # writes
    def command(self, document):
        document = dict(document)
        self.sent.append((next(iter(document)), document))
        if "drop" in document and document["drop"] in self.drop_errors:
            code, message = self.drop_errors[document["drop"]]
            raise OperationFailure(message, code)
        return {"ok": 1.0}

    def verbs(self) -> list[str]:
        return [verb for verb, _ in self.sent]

    def commands(self, verb: str) -> list[dict]:
        return [document for v, document in self.sent if v == verb]


class _Collection:
    def __init__(self, owner: Recorder, name: str, codec_options=None):
        self.owner, self.name, self.codec_options = owner, name, codec_options

    def list_indexes(self):
        self.owner.sent.append(("listIndexes", {"listIndexes": self.name}))
        return iter(self.owner.indexes.get(self.name, []))

    def find(self):
        self.owner.sent.append(("find", {"find": self.name}))
        raw = self.codec_options is not None and self.codec_options.document_class is RawBSONDocument
        return iter([RawBSONDocument(bson.encode(d)) if raw else d for d in self.owner.documents.get(self.name, [])])

    def insert_many(self, documents, ordered=True, bypass_document_validation=False):
        self.owner.sent.append(("insert", {"insert": self.name, "documents": list(documents), "ordered": ordered,
                                           "bypassDocumentValidation": bypass_document_validation}))


def listed(name, options=None, kind="collection"):
    return {"name": name, "type": kind, "options": options or {}, "info": {"readOnly": kind == "view"},
            **({"idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}} if kind != "view" else {})}


def index(name, key, **options):
    return SON([("v", 2), ("key", SON(key)), ("name", name), *options.items()])


ID_INDEX = index("_id_", [("_id", 1)])
COMMUNICATIONS = [{"_id": 1, "userId": "u1", "message": "hi"}, {"_id": 2, "userId": "u2", "message": "yo"}]


def sovren_like() -> Recorder:
    return Recorder(
        collections=[
            listed("communications", {"validator": VALIDATOR, "validationLevel": "strict",
                                      "validationAction": "error"}),
            listed("recent", {"viewOn": "communications", "pipeline": [{"$match": {"userId": "u1"}}]}, "view"),
            listed("system.views"),
            listed("metrics", {"timeseries": {"timeField": "at", "metaField": "m", "granularity": "minutes",
                                              "bucketMaxSpanSeconds": 86400}, "expireAfterSeconds": 60}, "timeseries"),
        ],
        indexes={"communications": [ID_INDEX, index("userId_1_timestamp_-1", [("userId", 1), ("timestamp", -1)]),
                                    index("messageId_1", [("messageId", 1)], unique=True, ns="db.communications")],
                 "metrics": []},
        documents={"communications": COMMUNICATIONS, "metrics": [{"_id": 9, "at": 1}]},
    )


# -- pure: the dump ---------------------------------------------------------------------

def test_the_dump_keeps_definitions_indexes_and_raw_documents_of_every_non_system_collection():
    db = sovren_like()
    saved = dump_database(db)
    assert [(c["name"], c["type"]) for c in saved["collections"]] == [
        ("communications", "collection"), ("recent", "view"), ("metrics", "timeseries")]
    assert saved["collections"][0]["options"]["validator"] == VALIDATOR
    assert saved["collections"][1]["options"]["viewOn"] == "communications"
    assert set(saved["indexes"]) == set(saved["documents"]) == {"communications", "metrics"}   # no view contents
    assert [i["name"] for i in saved["indexes"]["communications"]] == ["_id_", "userId_1_timestamp_-1", "messageId_1"]
    assert [bson.decode(d.raw) for d in saved["documents"]["communications"]] == COMMUNICATIONS
    # one listCollections, then listIndexes and find per collection (not per view)
    assert db.verbs() == ["listCollections", "listIndexes", "find", "listIndexes", "find"]


# -- pure: the restore --------------------------------------------------------------------

def test_restore_drops_everything_then_recreates_collections_indexes_documents_and_views_last():
    saved = dump_database(sovren_like())
    db = Recorder(live=["communications", "scratch", "recent", "system.views", "system.buckets.metrics"])
    restore_database(db, saved)
    assert [d["drop"] for d in db.commands("drop")] == ["communications", "scratch", "recent"]  # system.* kept
    creates = db.commands("create")
    assert [c["create"] for c in creates] == ["communications", "metrics", "recent"]
    assert creates[0] == {"create": "communications", "validator": VALIDATOR, "validationLevel": "strict",
                          "validationAction": "error"}
    # bucketing derived from granularity is not sent back (see snapshots.DERIVED_BUCKETING)
    assert creates[1] == {"create": "metrics", "timeseries": {"timeField": "at", "metaField": "m",
                                                              "granularity": "minutes"}, "expireAfterSeconds": 60}
    assert creates[2] == {"create": "recent", "viewOn": "communications", "pipeline": [{"$match": {"userId": "u1"}}]}
    (indexes,) = db.commands("createIndexes")   # metrics had none beyond what create makes
    assert indexes["createIndexes"] == "communications"
    assert [dict(i) for i in indexes["indexes"]] == [
        {"key": {"userId": 1, "timestamp": -1}, "name": "userId_1_timestamp_-1"},
        {"key": {"messageId": 1}, "name": "messageId_1", "unique": True}]       # no _id_, v or ns
    assert list(indexes["indexes"][0]["key"]) == ["userId", "timestamp"]          # key order kept
    inserts = db.commands("insert")
    assert [(i["insert"], i["ordered"], i["bypassDocumentValidation"]) for i in inserts] == [
        ("communications", False, True), ("metrics", False, True)]
    assert [bson.decode(d.raw) for d in inserts[0]["documents"]] == COMMUNICATIONS
    verbs = [v for v in db.verbs() if v != "listCollections"]
    assert verbs == ["drop"] * 3 + ["create", "createIndexes", "insert", "create", "insert", "create"]


def test_an_empty_collection_is_recreated_without_an_insert():
    saved = {"collections": [listed("empty")], "indexes": {"empty": [ID_INDEX]}, "documents": {"empty": []}}
    db = Recorder(live=[])
    restore_database(db, saved)
    assert db.verbs() == ["listCollections", "create"]


def test_views_on_views_come_after_their_source():
    saved = {"collections": [listed("top", {"viewOn": "middle", "pipeline": []}, "view"),
                             listed("middle", {"viewOn": "base", "pipeline": []}, "view"),
                             listed("base")],
             "indexes": {"base": [ID_INDEX]}, "documents": {"base": []}}
    db = Recorder(live=[])
    restore_database(db, saved)
    assert [c["create"] for c in db.commands("create")] == ["base", "middle", "top"]


def test_indexes_made_simple_on_a_collection_with_a_default_collation_stay_simple():
    french = {"locale": "fr", "strength": 2}
    saved = {"collections": [listed("people", {"collation": french})],
             # canned as listIndexes echoes them (see mongo.normalise.relative_collations):
             # the inherited collation in full, a simple one not at all
             "indexes": {"people": [index("_id_", [("_id", 1)], collation=french),
                                    index("name_1", [("name", 1)], collation=french),
                                    index("code_1", [("code", 1)])]},
             "documents": {"people": []}}
    db = Recorder(live=[])
    restore_database(db, saved)
    assert db.commands("create") == [{"create": "people", "collation": french}]
    (command,) = db.commands("createIndexes")
    assert [(i["name"], i["collation"]) for i in command["indexes"]] == [
        ("name_1", french), ("code_1", {"locale": "simple"})]


def test_a_collection_gone_before_its_drop_is_no_error_but_other_refusals_are():
    saved = {"collections": [], "indexes": {}, "documents": {}}
    restore_database(Recorder(live=["gone"], drop_errors={"gone": (26, "ns not found")}), saved)
    with pytest.raises(OperationFailure):
        restore_database(Recorder(live=["locked"], drop_errors={"locked": (13, "not authorized")}), saved)


def test_nothing_happens_without_mongodb(tmp_path):
    from sovren_db.core.config import Settings
    from sovren_db.seeds.snapshots import dump_mongo, restore_mongo

    settings = Settings(root=tmp_path, urls={"postgres": None, "mongo": None, "redis": None},
                        postgres_dir=tmp_path, mongo_dir=tmp_path, redis_dir=tmp_path, seeds_dir=tmp_path,
                        migrations_dir=tmp_path, mongo_database="x")
    assert dump_mongo(settings) == {}
    restore_mongo(settings, {})


# -- a real mongod ---------------------------------------------------------------------------

@pytest.mark.mongo
def test_a_dropped_collection_a_changed_validator_and_an_added_index_are_all_undone(mongo_url):
    import pymongo

    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    try:
        db = client.get_default_database()
        db.create_collection("communications", validator=VALIDATOR, validationLevel="strict",
                             validationAction="error")
        db.communications.create_index([("userId", 1), ("timestamp", -1)])
        db.communications.insert_many([dict(d) for d in COMMUNICATIONS])
        db.create_collection("executives")
        db.executives.insert_one({"_id": 7, "userId": "u7"})
        db.create_collection("recent", viewOn="communications", pipeline=[{"$match": {"userId": "u1"}}])
        saved = dump_database(db)
        before = {name: (db[name].options(), sorted(db[name].index_information()))
                  for name in ("communications", "executives")}

        db.drop_collection("executives")
        db.command({"collMod": "communications", "validator": {"$jsonSchema": {"bsonType": "object"}},
                    "validationLevel": "moderate", "validationAction": "warn"})
        db.communications.create_index("message")
        db.communications.insert_one({"_id": 3, "userId": "u3"})
        db.create_collection("scratch")

        restore_database(db, saved)
        assert sorted(n for n in db.list_collection_names() if not n.startswith("system.")) == [
            "communications", "executives", "recent"]
        for name, (options, indexes) in before.items():
            assert db[name].options() == options
            assert sorted(db[name].index_information()) == indexes
        assert db.communications.options()["validator"] == VALIDATOR
        assert "message_1" not in db.communications.index_information()
        assert list(db.communications.find().sort("_id", 1)) == COMMUNICATIONS
        assert list(db.executives.find()) == [{"_id": 7, "userId": "u7"}]
        assert [d["_id"] for d in db.recent.find()] == [1]
        with pytest.raises(pymongo.errors.WriteError):          # the saved validator is enforced again
            db.communications.insert_one({"_id": 4})
    finally:
        client.close()
