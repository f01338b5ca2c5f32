"""Server replies, shaped exactly as MongoDB 6/7 sends them, for the pure tests.

Each constant names the command that produced it. Numbers keep the BSON
types the server returns: a collection created from mongosh echoes doubles
(``1.0``, ``150.0``), one created from pymongo echoes int32, and values
stored as NumberLong come back as ``Int64``.

(The file is named mongo_replies.py, not replies.py: pytest puts every test
folder on sys.path, and a plain ``replies`` module would collide with
another store's.)
"""

import datetime

from bson import Int64, MaxKey, MinKey, ObjectId, Timestamp
from bson.binary import Binary

UUID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
COLLECTION_UUID = Binary(b"\x9c\x1f\x8e\x04\x11\x8aJ\x9e\xa5\x0b\xd6\x1a\x1c\x9d\x0e\x7f", 4)

# db.runCommand({hello: 1}) against a standalone mongod 7.0
HELLO_MONGOD = {
    "isWritablePrimary": True,
    "topologyVersion": {"processId": ObjectId("65f1a2b3c4d5e6f708091a2b"), "counter": Int64(0)},
    "maxBsonObjectSize": 16777216,
    "maxMessageSizeBytes": 48000000,
    "maxWriteBatchSize": 100000,
    "localTime": datetime.datetime(2024, 3, 13, 10, 0, 0),
    "logicalSessionTimeoutMinutes": 30,
    "connectionId": 12,
    "minWireVersion": 0,
    "maxWireVersion": 21,
    "readOnly": False,
    "ok": 1.0,
}

# db.runCommand({hello: 1}) against a mongos 7.0
HELLO_MONGOS = {
    "isWritablePrimary": True,
    "msg": "isdbgrid",
    "topologyVersion": {"processId": ObjectId("65f1a2b3c4d5e6f708091a2c"), "counter": Int64(0)},
    "maxBsonObjectSize": 16777216,
    "maxMessageSizeBytes": 48000000,
    "maxWriteBatchSize": 100000,
    "localTime": datetime.datetime(2024, 3, 13, 10, 0, 0),
    "logicalSessionTimeoutMinutes": 30,
    "connectionId": 3,
    "maxWireVersion": 21,
    "minWireVersion": 0,
    "ok": 1.0,
    "$clusterTime": {
        "clusterTime": Timestamp(1710324000, 1),
        "signature": {"hash": Binary(b"\x00" * 20, 0), "keyId": Int64(0)},
    },
    "operationTime": Timestamp(1710324000, 1),
}

# the same from a mongos 8.0 (wire version 25: unshardCollection exists)
HELLO_MONGOS_8 = {**HELLO_MONGOS, "maxWireVersion": 25}

# The validator of communications as created from mongosh: every number a double.
COMMUNICATIONS_VALIDATOR_MONGOSH = {
    "$jsonSchema": {
        "bsonType": "object",
        "title": "communications",
        "description": "A message sent on behalf of a user, persisted after the Redis queue "
        "(architecture §3, §4).",
        "required": ["_id", "messageId", "userId", "recipient", "message", "status", "timestamp"],
        "additionalProperties": False,
        "properties": {
            "_id": {"bsonType": "objectId"},
            "messageId": {"bsonType": "string", "pattern": UUID_PATTERN},
            "userId": {
                "bsonType": "string",
                "description": "users.user_id in Postgres; the shard key.",
                "pattern": UUID_PATTERN,
            },
            "recipient": {"bsonType": "string", "minLength": 1.0, "maxLength": 320.0},
            "message": {"bsonType": "string", "maxLength": 65536.0},
            "status": {"enum": ["sent", "delivered", "failed"]},
            "timestamp": {"bsonType": "date"},
        },
    }
}

# db.runCommand({listCollections: 1}) on sovren_ai (mongod 7.0): Sovren's collections as
# sovren-db creates them, plus what a real database also holds and sovren-db must ignore.
LIST_COLLECTIONS = {
    "cursor": {
        "id": Int64(0),
        "ns": "sovren_ai.$cmd.listCollections",
        "firstBatch": [
            {
                "name": "communications",
                "type": "collection",
                "options": {
                    "validator": COMMUNICATIONS_VALIDATOR_MONGOSH,
                    "validationLevel": "strict",
                    "validationAction": "error",
                },
                "info": {"readOnly": False, "uuid": COLLECTION_UUID},
                "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            },
            {
                "name": "sovren_db_ledger",
                "type": "collection",
                "options": {},
                "info": {"readOnly": False, "uuid": COLLECTION_UUID},
                "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            },
            {
                "name": "system.views",
                "type": "collection",
                "options": {},
                "info": {"readOnly": False, "uuid": COLLECTION_UUID},
                "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            },
            {
                "name": "recent_failures",
                "type": "view",
                "options": {"viewOn": "communications", "pipeline": [{"$match": {"status": "failed"}}]},
                "info": {"readOnly": True},
            },
            {
                "name": "system.buckets.metrics",
                "type": "collection",
                "options": {
                    "validator": {
                        "$jsonSchema": {"bsonType": "object", "required": ["_id", "control", "data"]}
                    },
                    "clusteredIndex": True,
                    "timeseries": {
                        "timeField": "ts",
                        "metaField": "meta",
                        "granularity": "minutes",
                        "bucketMaxSpanSeconds": 86400,
                        "bucketRoundingSeconds": 3600,
                    },
                },
                "info": {"readOnly": False, "uuid": COLLECTION_UUID},
            },
            {
                "name": "metrics",
                "type": "timeseries",
                "options": {
                    "timeseries": {
                        "timeField": "ts",
                        "metaField": "meta",
                        "granularity": "minutes",
                        "bucketMaxSpanSeconds": 86400,
                        "bucketRoundingSeconds": 3600,
                    },
                    "expireAfterSeconds": Int64(604800),
                },
                "info": {"readOnly": False},
            },
            {
                "name": "audit_tail",
                "type": "collection",
                "options": {"capped": True, "size": 1048576, "max": 5000},
                "info": {"readOnly": False, "uuid": COLLECTION_UUID},
                "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            },
        ],
    },
    "ok": 1.0,
}

# db.runCommand({listIndexes: "communications"}) after mongosh created Sovren's indexes:
# key values and options come back as doubles.
LIST_INDEXES_COMMUNICATIONS = {
    "cursor": {
        "id": Int64(0),
        "ns": "sovren_ai.communications",
        "firstBatch": [
            {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            {"v": 2, "key": {"userId": "hashed"}, "name": "userId_hashed"},
            {"v": 2, "key": {"userId": 1.0, "timestamp": -1.0}, "name": "userId_1_timestamp_-1"},
            {
                "v": 2,
                "key": {"userId": 1.0, "messageId": 1.0},
                "name": "userId_1_messageId_1",
                "unique": True,
            },
            {
                "v": 2,
                "key": {"timestamp": 1.0},
                "name": "failed_by_timestamp",
                "partialFilterExpression": {"status": "failed"},
            },
        ],
    },
    "ok": 1.0,
}

# db.runCommand({listIndexes: "executives"}) (pymongo-created: int32 keys)
LIST_INDEXES_EXECUTIVES = {
    "cursor": {
        "id": Int64(0),
        "ns": "sovren_ai.executives",
        "firstBatch": [
            {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            {"v": 2, "key": {"executiveId": 1}, "name": "executiveId_1", "unique": True},
            {"v": 2, "key": {"userId": 1, "role": 1}, "name": "userId_1_role_1"},
            {
                "v": 2,
                "key": {"userId": 1, "active": 1},
                "name": "userId_active_only",
                "partialFilterExpression": {"active": True},
            },
        ],
    },
    "ok": 1.0,
}

# db.runCommand({listIndexes: "analytics_payloads"}): the TTL set with NumberLong.
LIST_INDEXES_ANALYTICS = {
    "cursor": {
        "id": Int64(0),
        "ns": "sovren_ai.analytics_payloads",
        "firstBatch": [
            {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            {"v": 2, "key": {"createdAt": 1}, "name": "createdAt_1", "expireAfterSeconds": Int64(2592000)},
            {
                "v": 2,
                "key": {"region": 1, "userId": 1, "kind": 1, "createdAt": -1},
                "name": "region_1_userId_1_kind_1_createdAt_-1",
            },
            {"v": 2, "key": {"operationId": 1}, "name": "operationId_1"},
        ],
    },
    "ok": 1.0,
}

# db.runCommand({listIndexes: "scenario_simulations"}) on MongoDB 4.2: ns still echoed.
LIST_INDEXES_SIMULATIONS = {
    "cursor": {
        "id": Int64(0),
        "ns": "sovren_ai.scenario_simulations",
        "firstBatch": [
            {"v": 2, "key": {"_id": 1}, "name": "_id_", "ns": "sovren_ai.scenario_simulations"},
            {
                "v": 2,
                "key": {"region": 1, "userId": 1, "createdAt": -1},
                "name": "region_1_userId_1_createdAt_-1",
                "ns": "sovren_ai.scenario_simulations",
                "background": True,
            },
            {
                "v": 2,
                "key": {"region": 1, "userId": 1, "simulationId": 1},
                "name": "region_1_userId_1_simulationId_1",
                "unique": True,
                "ns": "sovren_ai.scenario_simulations",
            },
            {
                "v": 2,
                "key": {"operationId": 1},
                "name": "operationId_1",
                "ns": "sovren_ai.scenario_simulations",
            },
        ],
    },
    "ok": 1.0,
}

# db.runCommand({listIndexes: "people"}): special index kinds and what the server adds to them.
LIST_INDEXES_SPECIAL = {
    "cursor": {
        "id": Int64(0),
        "ns": "sovren_ai.people",
        "firstBatch": [
            {"v": 2, "key": {"_id": 1}, "name": "_id_"},
            # created as {name: 1} with collation {locale: "en", strength: 2}
            {
                "v": 2,
                "key": {"name": 1},
                "name": "name_1",
                "collation": {
                    "locale": "en",
                    "caseLevel": False,
                    "caseFirst": "off",
                    "strength": 2,
                    "numericOrdering": False,
                    "alternate": "non-ignorable",
                    "maxVariable": "punct",
                    "normalization": False,
                    "backwards": False,
                    "version": "57.1",
                },
            },
            # created as {bio: "text", title: "text"} with weights {title: 10}
            {
                "v": 2,
                "key": {"_fts": "text", "_ftsx": 1},
                "name": "bio_text_title_text",
                "weights": {"bio": 1, "title": 10},
                "default_language": "english",
                "language_override": "language",
                "textIndexVersion": 3,
            },
            # created as {tenant: 1, notes: "text"}
            {
                "v": 2,
                "key": {"tenant": 1, "_fts": "text", "_ftsx": 1},
                "name": "tenant_1_notes_text",
                "weights": {"notes": 1},
                "default_language": "english",
                "language_override": "language",
                "textIndexVersion": 3,
            },
            # created as {location: "2dsphere"}
            {"v": 2, "key": {"location": "2dsphere"}, "name": "location_2dsphere", "2dsphereIndexVersion": 3},
            # created as {email: 1} with unique: true, sparse: false from an old driver
            {"v": 2, "key": {"email": 1}, "name": "email_1", "unique": True, "sparse": False},
        ],
    },
    "ok": 1.0,
}

# db.getSiblingDB("config").collections.find({_id: /^sovren_ai\./}) on MongoDB 7.0 and 8.0
CONFIG_COLLECTIONS = [
    {
        "_id": "sovren_ai.communications",
        "lastmodEpoch": ObjectId("65f1a2b3c4d5e6f708091a30"),
        "lastmod": datetime.datetime(2024, 3, 13, 10, 0, 0),
        "timestamp": Timestamp(1710324000, 12),
        "uuid": COLLECTION_UUID,
        "key": {"userId": "hashed"},
        "unique": False,
        "noBalance": False,
    },
    {
        "_id": "sovren_ai.scenario_simulations",
        "lastmodEpoch": ObjectId("65f1a2b3c4d5e6f708091a31"),
        "lastmod": datetime.datetime(2024, 3, 13, 10, 0, 1),
        "timestamp": Timestamp(1710324001, 3),
        "uuid": COLLECTION_UUID,
        "key": {"region": 1.0, "userId": 1.0},
        "unique": False,
        "noBalance": False,
    },
    # MongoDB 8.0 tracks an unsharded collection moved by moveCollection (or unsharded by
    # unshardCollection): one chunk, key {_id: 1}, unsplittable
    {
        "_id": "sovren_ai.executives",
        "lastmodEpoch": ObjectId("65f1a2b3c4d5e6f708091a32"),
        "lastmod": datetime.datetime(2024, 3, 13, 10, 0, 2),
        "timestamp": Timestamp(1710324002, 1),
        "uuid": COLLECTION_UUID,
        "key": {"_id": 1},
        "unique": False,
        "noBalance": False,
        "unsplittable": True,
    },
    # a collection dropped on MongoDB 4.2 leaves this behind
    {
        "_id": "sovren_ai.old_events",
        "lastmodEpoch": ObjectId("000000000000000000000000"),
        "lastmod": datetime.datetime(2021, 1, 1),
        "dropped": True,
    },
]

# db.getSiblingDB("config").tags.find({ns: /^sovren_ai\./})
CONFIG_TAGS = [
    {
        "_id": ObjectId("65f1a2b3c4d5e6f708091a40"),
        "ns": "sovren_ai.scenario_simulations",
        "min": {"region": "eu", "userId": MinKey()},
        "max": {"region": "eu", "userId": MaxKey()},
        "tag": "eu",
    },
    {
        "_id": ObjectId("65f1a2b3c4d5e6f708091a41"),
        "ns": "sovren_ai.scenario_simulations",
        "min": {"region": "us", "userId": MinKey()},
        "max": {"region": "us", "userId": MaxKey()},
        "tag": "us",
    },
]

# db.getSiblingDB("config").shards.find({})
CONFIG_SHARDS = [
    {
        "_id": "shard-eu-1",
        "host": "shard-eu-1/10.0.1.10:27018,10.0.1.11:27018",
        "state": 1,
        "topologyTime": Timestamp(1710320000, 1),
        "tags": ["eu"],
    },
    {
        "_id": "shard-us-1",
        "host": "shard-us-1/10.0.2.10:27018,10.0.2.11:27018",
        "state": 1,
        "topologyTime": Timestamp(1710320000, 2),
        "tags": ["us"],
    },
]

# db.runCommand({collMod: "communications", validator: ..., validationLevel: ..., validationAction: ...})
COLLMOD_OK = {"ok": 1.0}

# db.runCommand({createIndexes: ..., indexes: [...]}) when the index is new / already there
CREATE_INDEXES_OK = {
    "numIndexesBefore": 1,
    "numIndexesAfter": 2,
    "createdCollectionAutomatically": False,
    "commitQuorum": "votingMembers",
    "ok": 1.0,
}
CREATE_INDEXES_EXISTING = {
    "numIndexesBefore": 2,
    "numIndexesAfter": 2,
    "note": "all indexes already exist",
    "ok": 1.0,
}

# db.runCommand({aggregate: ..., pipeline: [{$match: {$nor: [validator]}}, {$facet: ...}], cursor: {}})
VIOLATIONS_THREE = {
    "cursor": {
        "id": Int64(0),
        "ns": "sovren_ai.communications",
        "firstBatch": [
            {
                "count": [{"n": 3}],
                "sample": [
                    {"_id": ObjectId("65f1a2b3c4d5e6f708091b01")},
                    {"_id": ObjectId("65f1a2b3c4d5e6f708091b02")},
                    {"_id": "legacy-7"},
                ],
            }
        ],
    },
    "ok": 1.0,
}
VIOLATIONS_NONE = {
    "cursor": {"id": Int64(0), "ns": "sovren_ai.communications", "firstBatch": [{"count": [], "sample": []}]},
    "ok": 1.0,
}


# find on config.collections / config.tags through the find command
def find_reply(namespace, documents):
    return {"cursor": {"id": Int64(0), "ns": namespace, "firstBatch": list(documents)}, "ok": 1.0}


# error replies: {ok: 0, errmsg, code, codeName}
NAMESPACE_EXISTS = {
    "ok": 0.0,
    "errmsg": "Collection sovren_ai.communications already exists.",
    "code": 48,
    "codeName": "NamespaceExists",
}
INDEX_NOT_FOUND = {
    "ok": 0.0,
    "errmsg": "index not found with name [userId_1_timestamp_-1]",
    "code": 27,
    "codeName": "IndexNotFound",
}
NAMESPACE_NOT_FOUND = {"ok": 0.0, "errmsg": "ns not found", "code": 26, "codeName": "NamespaceNotFound"}


# db.runCommand({<name>: 1}) for a name the server does not have (6.0-8.0, service_entry_point_common.cpp)
def no_such_command(name):
    return {"ok": 0.0, "errmsg": f"no such command: '{name}'", "code": 59, "codeName": "CommandNotFound"}


# aggregate / find whose cursor is exhausted in its first batch; ns is "<db>.$cmd.aggregate" for {aggregate: 1}
def cursor_reply(namespace, documents=()):
    return {"cursor": {"firstBatch": list(documents), "id": Int64(0), "ns": namespace}, "ok": 1.0}
