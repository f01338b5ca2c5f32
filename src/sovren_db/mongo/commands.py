"""The command documents sovren-db sends, built from states without touching a server.

Kept pure so that tests can check command construction exactly; sending
them is :mod:`.execute`'s job.
"""

from __future__ import annotations

from typing import Any

from ..core.errors import Refused
from bson import Int64

from .extjson import from_extjson, pairs_to_document, same
from .normalise import SIMPLE, TIMESERIES_BUCKETING, takes_collation
from .state import CollectionSpec, IndexSpec, ShardKey, ZoneRange

VIOLATION_SAMPLE = 5
STRICT_LEVELS = ("strict",)
ERROR_ACTIONS = ("error", "errorAndLog")


def create_command(spec: CollectionSpec) -> dict:
    command: dict[str, Any] = {"create": spec.name, **from_extjson(spec.options)}
    if spec.validator is not None:
        command.update(
            validator=from_extjson(spec.validator),
            validationLevel=spec.validation_level,
            validationAction=spec.validation_action,
        )
    return command


def index_document(index: IndexSpec) -> dict:
    """The createIndexes entry; an index type that takes no collation (text, 2d) is sent the
    simple one, so that it builds on a collection with a default collation too."""
    document = {"key": pairs_to_document(index.key), "name": index.name, **from_extjson(index.options)}
    if not takes_collation(index):
        document["collation"] = dict(SIMPLE)
    return document


def create_indexes_command(collection: str, indexes: list[IndexSpec] | tuple[IndexSpec, ...]) -> dict:
    return {"createIndexes": collection, "indexes": [index_document(i) for i in indexes]}


def drop_index_command(collection: str, name: str) -> dict:
    return {"dropIndexes": collection, "index": name}


def drop_collection_command(collection: str) -> dict:
    return {"drop": collection}


def validator_command(collection: str, validator: dict | None, level: str, action: str) -> dict:
    """collMod to an exact validator; ``{}`` removes it."""
    return {
        "collMod": collection,
        "validator": from_extjson(validator) if validator else {},
        "validationLevel": level,
        "validationAction": action,
    }


def checks_violations(validator: dict | None, level: str, action: str) -> bool:
    """Whether setting this validation would reject updates of documents that violate it."""
    return bool(validator) and level in STRICT_LEVELS and action in ERROR_ACTIONS


def violations_command(collection: str, validator: dict) -> dict:
    """One aggregate: how many documents ``validator`` rejects, and a few of their _ids."""
    sample = [{"$limit": VIOLATION_SAMPLE}, {"$project": {"_id": 1}}]
    pipeline = [
        {"$match": {"$nor": [from_extjson(validator)]}},
        {"$facet": {"count": [{"$count": "n"}], "sample": sample}},
    ]
    return {"aggregate": collection, "pipeline": pipeline, "cursor": {}}


def violations_from_reply(reply: dict) -> tuple[int, list]:
    batch = reply.get("cursor", {}).get("firstBatch") or [{}]
    facet = batch[0]
    count = (facet.get("count") or [{"n": 0}])[0]["n"]
    return int(count), [d["_id"] for d in facet.get("sample") or ()]


def find_command(collection: str, filter: dict, limit: int = 0) -> dict:
    command: dict[str, Any] = {"find": collection, "filter": filter, "batchSize": 10000}
    if limit:
        command["limit"] = limit
    return command


def shard_key_command(namespace: str, key: ShardKey, current: ShardKey | None) -> dict:
    """shardCollection, refineCollectionShardKey (the new key extends the old) or reshardCollection."""
    document = pairs_to_document(key.key)
    # A shard key is always compared binary: on a collection with a default collation the
    # server requires collation {locale: "simple"}, and it accepts it on every collection.
    if current is None:
        return {"shardCollection": namespace, "key": document, "unique": key.unique, "collation": dict(SIMPLE)}
    if key.key[: len(current.key)] == current.key:
        return {"refineCollectionShardKey": namespace, "key": document}
    return {"reshardCollection": namespace, "key": document, "collation": dict(SIMPLE)}


def unshard_command(namespace: str) -> dict:
    return {"unshardCollection": namespace}


def zone_range_command(namespace: str, zone_range: ZoneRange, zone: str | None) -> dict:
    """updateZoneKeyRange: assign ``[min, max)`` to ``zone``, or remove the range when None."""
    return {
        "updateZoneKeyRange": namespace,
        "min": _long_bounds(pairs_to_document(zone_range.min)),
        "max": _long_bounds(pairs_to_document(zone_range.max)),
        "zone": zone,
    }


def _long_bounds(bound: dict) -> dict:
    """Integer bounds as NumberLong: a hashed field's bounds must be (MongoDB 4.7+), and a
    ranged field's bound means the same value either way (numbers compare by value)."""
    return {f: Int64(v) if isinstance(v, int) and not isinstance(v, bool) else v for f, v in bound.items()}


def options_commands(collection: str, options: dict, prior: dict) -> list[dict]:
    """Commands changing creation options in place; Refused where MongoDB cannot."""
    if not same(options.get("collation"), prior.get("collation")):
        raise _cannot(collection, "its default collation")
    commands = _capped_commands(collection, options, prior) + _timeseries_commands(collection, options, prior)
    ttl, prior_ttl = options.get("expireAfterSeconds"), prior.get("expireAfterSeconds")
    if ttl != prior_ttl:
        commands.append({"collMod": collection, "expireAfterSeconds": "off" if ttl is None else ttl})
    return commands


def _capped_commands(collection: str, options: dict, prior: dict) -> list[dict]:
    if not options.get("capped"):
        if prior.get("capped"):
            raise _cannot(collection, "capped into uncapped")
        return []
    commands = []
    if not prior.get("capped"):
        commands.append({"convertToCapped": collection, "size": options["size"]})
    elif options["size"] != prior.get("size"):
        commands.append({"collMod": collection, "cappedSize": options["size"]})
    if options.get("max", 0) != prior.get("max", 0):
        commands.append({"collMod": collection, "cappedMax": options.get("max", 0)})
    return commands


def _timeseries_commands(collection: str, options: dict, prior: dict) -> list[dict]:
    new, old = options.get("timeseries"), prior.get("timeseries")
    if not new and not old:
        return []
    if not new or not old or any(new.get(f) != old.get(f) for f in ("timeField", "metaField")):
        raise _cannot(collection, "its time series fields")
    changed = {k: v for k, v in new.items() if k not in ("timeField", "metaField") and old.get(k) != v}
    if changed and _bucket_span(new) < _bucket_span(old):
        raise Refused(
            f"MongoDB can only make the time series buckets of collection {collection} coarser "
            f"(granularity seconds -> minutes -> hours, bucket spans only up), not finer; write a revision "
            "that drops and recreates it (op.mongo_drop_collection + op.mongo_create_collection)"
        )
    return [{"collMod": collection, "timeseries": changed}] if changed else []


def _bucket_span(timeseries: dict) -> tuple[int, int]:
    """(bucketMaxSpanSeconds, bucketRoundingSeconds): a granularity's, or the custom ones."""
    granularity = timeseries.get("granularity")
    if granularity in TIMESERIES_BUCKETING:
        return TIMESERIES_BUCKETING[granularity]
    return (int(timeseries.get("bucketMaxSpanSeconds", 0)), int(timeseries.get("bucketRoundingSeconds", 0)))


def _cannot(collection: str, what: str) -> Refused:
    return Refused(
        f"MongoDB cannot change {what} of collection {collection} in place; write a revision "
        "that drops and recreates it (op.mongo_drop_collection + op.mongo_create_collection)"
    )
