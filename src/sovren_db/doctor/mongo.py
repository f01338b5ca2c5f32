"""MongoDB examined: page faults, long operations, index use, collection scans, the balancer and chunks.

The reading is a few commands (two ``serverStatus`` samples, ``currentOp``,
``$indexStats`` per declared collection, on a mongos ``balancerStatus`` and
the ``config`` database); each reply is judged by a pure function below, so
the judging is tested on replies shaped as the server sends them. Operations
are described by opid, namespace, kind and age, and their filters by field
names only: no value of a query reaches a report.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import TYPE_CHECKING, Any, Iterable

from pymongo.errors import OperationFailure, PyMongoError

from ..mongo.state import CollectionSpec
from .model import Examination
from .thresholds import Thresholds

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..mongo.backend import MongoBackend

UNAUTHORIZED = 13
GRANTS = {"serverStatus": "clusterMonitor", "currentOp": "clusterMonitor", "$indexStats": "clusterMonitor",
          "balancerStatus": "clusterMonitor", "config": "clusterMonitor"}


def connect(settings: "Settings") -> "MongoBackend":
    from ..mongo.backend import MongoBackend

    backend = MongoBackend(settings)
    backend.connect()
    return backend


# -- pure judgements of server replies ----------------------------------------

def page_fault_rate(before: dict, after: dict) -> float:
    """Page faults per second between two serverStatus replies (extra_info.page_faults over uptimeMillis)."""
    faults = int(after["extra_info"]["page_faults"]) - int(before["extra_info"]["page_faults"])
    seconds = (int(after["uptimeMillis"]) - int(before["uptimeMillis"])) / 1000
    return faults / seconds if seconds > 0 else 0.0


def judge_page_faults(rate: float, exam: Examination, limits: Thresholds) -> None:
    exam.sample("mongo_page_faults_per_second", rate)
    if rate > limits.mongo_page_faults_per_second:
        exam.finding("page faults", f"{rate:,.0f}/s, above {limits.mongo_page_faults_per_second:g}/s: the working "
                                    "set does not fit in memory; add memory or a shard (runbook H.3, H.4)",
                     code="mongo-page-faults")


def judge_operations(reply: dict, declared: dict[str, CollectionSpec], database: str, exam: Examination,
                     limits: Thresholds) -> None:
    """currentOp: operations running too long, and collection scans where a declared index would serve."""
    long_ops = scans = 0
    for op in reply.get("inprog", []):
        seconds = int(op.get("secs_running", 0))
        where = f"operation {op.get('opid')} ({op.get('op', '?')} on {op.get('ns', '?')})"
        if seconds > limits.mongo_operation_seconds:
            long_ops += 1
            exam.finding(where, f"running for {seconds:,} s, above {limits.mongo_operation_seconds:g} s: look at it "
                                f"with db.currentOp(), or db.killOp({op.get('opid')!r})", code="mongo-long-operation")
        index = _index_for_scan(op, declared, database)
        if index is not None:
            scans += 1
            exam.finding(where, f"scans the whole collection although declared index {index} serves its filter "
                                "(fields " + ", ".join(_filter_fields(op)) + "): check the query shape with "
                                "explain('executionStats') and that the index exists", code="mongo-collection-scan")
    exam.sample("mongo_long_operations", long_ops)
    exam.sample("mongo_collection_scans", scans)


def _filter_fields(op: dict) -> list[str]:
    command = op.get("command") or {}
    query = command.get("filter") or command.get("q") or command.get("query") or {}
    return [name for name in query if not name.startswith("$")] if isinstance(query, dict) else []


def _index_for_scan(op: dict, declared: dict[str, CollectionSpec], database: str) -> str | None:
    """The declared index whose first field the scanning operation filters on, if any."""
    if op.get("planSummary") != "COLLSCAN":
        return None
    db, _, collection = str(op.get("ns", "")).partition(".")
    spec = declared.get(collection) if db == database else None
    fields = set(_filter_fields(op))
    for index in (spec.indexes if spec else ()):
        if index.key and index.key[0][0] in fields and index.name != "_id_":
            return index.name
    return None


def judge_index_stats(collection: str, stats: Iterable[dict], spec: CollectionSpec, exam: Examination) -> int:
    """$indexStats: declared indexes never used since the server started (an unused index costs every write)."""
    ops = {doc["name"]: int(doc.get("accesses", {}).get("ops", 0)) for doc in stats}
    unused = [index.name for index in spec.indexes if index.name != "_id_" and ops.get(index.name) == 0
              and index.ttl is None]  # a TTL index works without being queried
    for name in unused:
        exam.finding(f"index {name} on {collection}", "has not served one operation since the server started "
                                                      "($indexStats): confirm its query still exists, else drop "
                                                      "it from the declarations", code="mongo-unused-index",
                     severity="warning")
    return len(unused)


def judge_balancer(reply: dict, exam: Examination) -> None:
    enabled = reply.get("mode", "full") != "off"
    exam.sample("mongo_balancer_enabled", 1 if enabled else 0)
    if not enabled:
        exam.finding("balancer", "is off, so chunks stay where they are as data grows: sh.startBalancer() "
                                 "(runbook H.3)", code="mongo-balancer")


def judge_chunks(chunks: Iterable[dict], collections: Iterable[dict], shards: Iterable[dict], exam: Examination,
                 limits: Thresholds) -> None:
    """Chunk counts per shard, compared within each zone (shards serving the same zones), per collection.

    ``chunks``: ``config.chunks`` grouped by ``{uuid, shard}`` with a count ``n``; ``collections`` and
    ``shards``: documents of ``config.collections`` and ``config.shards``."""
    names = {doc.get("uuid"): doc["_id"] for doc in collections}
    zone_of = {doc["_id"]: ",".join(sorted(doc.get("tags", []))) or "no zone" for doc in shards}
    counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: {s: 0 for s in zone_of})
    for row in chunks:
        ns = names.get(row["_id"]["uuid"], str(row["_id"]["uuid"]))
        shard = row["_id"]["shard"]
        counts[(ns, zone_of.get(shard, "no zone"))][shard] = int(row["n"])
    worst = 0
    for (ns, zone), per_shard in sorted(counts.items()):
        in_zone = {s: n for s, n in per_shard.items() if zone_of.get(s) == zone}
        spread = max(in_zone.values()) - min(in_zone.values()) if len(in_zone) > 1 else 0
        worst = max(worst, spread)
        if spread > limits.mongo_chunk_imbalance:
            listed = ", ".join(f"{s} {n}" for s, n in sorted(in_zone.items()))
            exam.finding(f"collection {ns} in zone {zone}", f"chunks spread {listed}: {spread} apart, above "
                                                           f"{limits.mongo_chunk_imbalance}; check the balancer "
                                                           "and the shard key's cardinality (runbook H.3)",
                         code="mongo-chunk-spread")
    exam.sample("mongo_chunk_imbalance", worst)


# -- reading the server -----------------------------------------------------------

def examine(backend: "MongoBackend", settings: "Settings", limits: Thresholds, exam: Examination) -> None:
    from ..mongo.declared import has_declarations, load_declared

    declared = load_declared(settings.mongo_dir).collections if has_declarations(settings.mongo_dir) else {}
    admin = backend.client.admin
    with _reading("serverStatus", exam):
        before = admin.command("serverStatus")
        time.sleep(limits.mongo_sample_seconds)
        judge_page_faults(page_fault_rate(before, admin.command("serverStatus")), exam, limits)
    with _reading("currentOp", exam):
        judge_operations(admin.command({"currentOp": 1, "active": True}), declared, settings.mongo_database,
                         exam, limits)
    unused = 0
    for name, spec in declared.items():
        with _reading("$indexStats", exam):
            unused += judge_index_stats(name, backend.db[name].aggregate([{"$indexStats": {}}]), spec, exam)
    exam.sample("mongo_unused_indexes", unused)
    if backend.mongos:
        _sharding(backend, exam, limits)


def _sharding(backend: "MongoBackend", exam: Examination, limits: Thresholds) -> None:
    with _reading("balancerStatus", exam):
        judge_balancer(backend.client.admin.command("balancerStatus"), exam)
    config = backend.client.config
    with _reading("config", exam):
        chunks = config.chunks.aggregate([{"$group": {"_id": {"uuid": "$uuid", "shard": "$shard"},
                                                      "n": {"$sum": 1}}}])
        judge_chunks(list(chunks), config.collections.find({}, {"_id": 1, "uuid": 1}),
                     config.shards.find({}, {"_id": 1, "tags": 1}), exam, limits)


class _reading:
    """One read; a missing privilege is one sentence naming the role that grants it."""

    def __init__(self, what: str, exam: Examination):
        self.what, self.exam = what, exam

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if exc is None:
            return False
        if isinstance(exc, OperationFailure) and exc.code == UNAUTHORIZED:
            self.exam.unexamined(self.what, f"the user may not run it: grant it the {GRANTS[self.what]} role "
                                            "(db.grantRolesToUser(user, ['clusterMonitor'])).")
            return True
        if isinstance(exc, PyMongoError):
            self.exam.unexamined(self.what, f"could not be read: {str(exc).splitlines()[0].rstrip('.')}.")
            return True
        return False
