"""Replies doctor reads from MongoDB, shaped as a 7.0 server sends them (fields and BSON types as in
its source: serverStatus from src/mongo/db/commands/server_status*.cpp and processinfo_linux.cpp,
currentOp from src/mongo/db/pipeline/document_source_current_op.cpp, $indexStats from
document_source_index_stats.cpp, balancerStatus from s/commands/cluster_balancer_status_cmd.cpp)."""

import datetime

from bson import Int64, ObjectId, Timestamp
from bson.binary import Binary

COMMUNICATIONS_UUID = Binary(b"\x9c\x1f\x8e\x04\x11\x8aJ\x9e\xa5\x0b\xd6\x1a\x1c\x9d\x0e\x7f", 4)
EXECUTIVES_UUID = Binary(b"\x11\x1f\x8e\x04\x11\x8aJ\x9e\xa5\x0b\xd6\x1a\x1c\x9d\x0e\x01", 4)


def server_status(uptime_ms: int, page_faults: int) -> dict:
    """db.adminCommand({serverStatus: 1}) on Linux, the fields doctor reads and their neighbours."""
    return {
        "host": "mongo-0:27017", "version": "7.0.12", "process": "mongod", "pid": Int64(1),
        "uptime": float(uptime_ms // 1000), "uptimeMillis": Int64(uptime_ms), "uptimeEstimate": Int64(uptime_ms // 1000),
        "localTime": datetime.datetime(2024, 3, 13, 10, 0, 0),
        "extra_info": {"note": "fields vary by platform", "user_time_us": Int64(81250000),
                       "system_time_us": Int64(23170000), "maximum_resident_set_kb": Int64(412344),
                       "input_blocks": Int64(1024), "output_blocks": Int64(88120), "page_reclaims": Int64(190233),
                       "page_faults": Int64(page_faults), "voluntary_context_switches": Int64(512330),
                       "involuntary_context_switches": Int64(8812)},
        "ok": 1.0,
    }


def current_op(secs_running: int, plan: str, filter_: dict, ns: str = "sovren_ai.communications",
               opid: int = 48213) -> dict:
    """One entry of db.adminCommand({currentOp: 1, active: true}).inprog."""
    return {
        "type": "op", "host": "mongo-0:27017", "desc": "conn41", "connectionId": 41, "client": "10.0.0.7:53422",
        "appName": "sovren-api", "clientMetadata": {"application": {"name": "sovren-api"},
                                                    "driver": {"name": "PyMongo", "version": "4.6.1"}},
        "active": True, "currentOpTime": "2024-03-13T10:00:00.000+00:00", "threaded": True, "opid": opid,
        "lsid": {"id": Binary(b"\x01" * 16, 4), "uid": Binary(b"\x02" * 32, 0)},
        "secs_running": Int64(secs_running), "microsecs_running": Int64(secs_running * 1_000_000 + 1234),
        "op": "query", "ns": ns, "redacted": False,
        "command": {"find": ns.split(".", 1)[1], "filter": filter_, "lsid": {"id": Binary(b"\x01" * 16, 4)},
                    "$db": ns.split(".", 1)[0]},
        "planSummary": plan, "numYields": 120, "locks": {"FeatureCompatibilityVersion": "r", "Global": "r"},
        "waitingForLock": False, "lockStats": {}, "waitingForFlowControl": False, "flowControlStats": {},
    }


def current_op_reply(*ops: dict) -> dict:
    return {"inprog": list(ops), "ok": 1.0}


def index_stats(name: str, key: dict, ops: int) -> dict:
    """One document of db.communications.aggregate([{$indexStats: {}}])."""
    return {"name": name, "key": key, "host": "mongo-0:27017",
            "accesses": {"ops": Int64(ops), "since": datetime.datetime(2024, 3, 1, 8, 0, 0)},
            "spec": {"v": 2, "key": key, "name": name}}


# db.adminCommand({balancerStatus: 1}) on a mongos 7.0, after sh.stopBalancer()
BALANCER_OFF = {
    "mode": "off", "inBalancerRound": False, "numBalancerRounds": Int64(0), "ok": 1.0,
    "$clusterTime": {"clusterTime": Timestamp(1710324000, 1),
                     "signature": {"hash": Binary(b"\x00" * 20, 0), "keyId": Int64(0)}},
    "operationTime": Timestamp(1710324000, 1),
}
BALANCER_ON = {**BALANCER_OFF, "mode": "full", "numBalancerRounds": Int64(311)}

# config.shards documents: shard_eu and shard_us in their zones, shard_eu2 added by H.3's expansion
SHARDS = [
    {"_id": "shard_eu", "host": "shard_eu/mongo-eu-0:27018", "state": 1, "tags": ["eu"], "topologyTime": Timestamp(1, 1)},
    {"_id": "shard_eu2", "host": "shard_eu2/mongo-eu-1:27018", "state": 1, "tags": ["eu"], "topologyTime": Timestamp(2, 1)},
    {"_id": "shard_us", "host": "shard_us/mongo-us-0:27018", "state": 1, "tags": ["us"], "topologyTime": Timestamp(1, 1)},
]

# config.collections documents (5.0+: chunks refer to their collection by uuid)
COLLECTIONS = [
    {"_id": "sovren_ai.communications", "uuid": COMMUNICATIONS_UUID},
    {"_id": "sovren_ai.executives", "uuid": EXECUTIVES_UUID},
]


def chunk_counts(uuid: Binary, **per_shard: int) -> list[dict]:
    """config.chunks.aggregate([{$group: {_id: {uuid: '$uuid', shard: '$shard'}, n: {$sum: 1}}}])."""
    return [{"_id": {"uuid": uuid, "shard": shard}, "n": n} for shard, n in per_shard.items()]


OBJECT_ID = ObjectId("65f1a2b3c4d5e6f708091a2b")
