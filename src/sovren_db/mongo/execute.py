"""Running operations against a server: one small function per operation kind.

``db`` is a pymongo ``Database`` (or anything with ``name``, ``command(doc)``
and ``client.get_database(name)``). Every function converges: run twice, it
leaves the same state and does not fail the second time. Sharding steps are
skipped, with a log line, on a server that is not a mongos: development and
test servers are standalone or replica sets.
"""

from __future__ import annotations

import logging
from typing import Any

from pymongo.errors import OperationFailure

from ..core.errors import Refused
from . import commands
from .extjson import show_id
from .live import is_mongos, shard_key_from_config, zone_from_tag
from .state import CollectionSpec, IndexSpec, ShardKey, ZoneRange, show_pairs

log = logging.getLogger("sovren_db.mongo")

NAMESPACE_NOT_FOUND = 26
INDEX_NOT_FOUND = 27
NAMESPACE_EXISTS = 48
INDEX_OPTIONS_CONFLICT = 85
INDEX_KEY_SPECS_CONFLICT = 86
UNSHARD_WIRE_VERSION = 25  # unshardCollection is new in MongoDB 8.0 (wire version 25)


def run(db: Any, command: dict, *, ignore: tuple[int, ...] = ()) -> dict | None:
    """Send ``command``; None when the server answers with one of the ``ignore`` codes."""
    try:
        return db.command(command)
    except OperationFailure as exc:
        if exc.code in ignore:
            return None
        raise


def _admin(db: Any) -> Any:
    return db.client.get_database("admin")


def _config_find(db: Any, collection: str, filter: dict) -> list[dict]:
    reply = run(db.client.get_database("config"), commands.find_command(collection, filter)) or {}
    return list(reply.get("cursor", {}).get("firstBatch", ()))


def _namespace(db: Any, collection: str) -> str:
    return f"{db.name}.{collection}"


def create_collection(db: Any, spec: CollectionSpec) -> None:
    """Create ``spec`` whole: collection, indexes, zone ranges, then the shard key.

    A zone that no shard serves is refused before anything is created. Zone
    ranges go in before ``shardCollection`` so that the initial chunks of an
    empty collection are made per zone and placed on the zone's shards at once:
    no document of one region ever lands on another region's shard. Off a
    mongos, the sharding half is skipped with a log line.
    """
    sharding = bool(spec.shard_key or spec.zones) and _mongos_hello(db, f"sharding {spec.name}") is not None
    if sharding and spec.zones:
        _require_zone_shards(db, spec.name, {z.zone for z in spec.zones})
    created = run(db, commands.create_command(spec), ignore=(NAMESPACE_EXISTS,)) is not None
    if not created and "timeseries" not in spec.options:
        # converge the validation of the collection that was already there (a time series
        # collection has none: the server refuses collMod validator options on it)
        set_validation(db, spec.name, spec.validator, spec.validation_level, spec.validation_action)
    if spec.indexes:
        create_indexes(db, spec.name, spec.indexes)
    if sharding and spec.zones:
        _set_zones(db, spec.name, spec.zones)
    if sharding and spec.shard_key:
        _shard(db, spec.name, spec.shard_key)


def drop_collection(db: Any, collection: str) -> None:
    run(db, commands.drop_collection_command(collection), ignore=(NAMESPACE_NOT_FOUND,))


def create_indexes(db: Any, collection: str, indexes: tuple[IndexSpec, ...] | list[IndexSpec]) -> None:
    """createIndexes; an identical index already there is fine, a conflicting one is refused."""
    try:
        run(db, commands.create_indexes_command(collection, indexes))
    except OperationFailure as exc:
        if exc.code not in (INDEX_OPTIONS_CONFLICT, INDEX_KEY_SPECS_CONFLICT):
            raise
        reason = (exc.details or {}).get("errmsg") or str(exc)
        raise Refused(
            f"An index of {collection} already exists with another name or other options ({reason}); "
            "'sovren-db check' names it, and a revision made by 'sovren-db revision --autogenerate' "
            "drops it before building the declared one"
        ) from None


def drop_index(db: Any, collection: str, name: str) -> None:
    run(db, commands.drop_index_command(collection, name), ignore=(INDEX_NOT_FOUND, NAMESPACE_NOT_FOUND))


def count_violations(db: Any, collection: str, validator: dict) -> tuple[int, list]:
    """Documents of ``collection`` that ``validator`` rejects: (count, a few _ids). One round trip."""
    return commands.violations_from_reply(run(db, commands.violations_command(collection, validator)) or {})


def set_validation(
    db: Any,
    collection: str,
    validator: dict | None,
    level: str,
    action: str,
    *,
    allow_violations: bool = False,
) -> None:
    """collMod to an exact validator, refused when documents already violate a strict one."""
    if not allow_violations and commands.checks_violations(validator, level, action):
        count, sample = count_violations(db, collection, validator or {})
        if count:
            raise Refused(
                f"Refusing to set the validator of {collection}: {count} existing document(s) violate it "
                f"(e.g. _id {', '.join(show_id(i) for i in sample)}); fix them, or make the revision say "
                "how to proceed with validation_level='moderate', validation_action='warn' "
                "or allow_violations=True"
            )
    run(db, commands.validator_command(collection, validator, level, action))


def modify_collection(db: Any, collection: str, options: dict, prior: dict) -> None:
    for command in commands.options_commands(collection, options, prior):
        run(db, command)


def _mongos_hello(db: Any, what: str) -> dict | None:
    """The server's hello reply when it is a mongos; None, with a log line saying ``what`` is
    skipped, on a standalone or replica set (development and test servers)."""
    hello = db.command({"hello": 1})
    if is_mongos(hello):
        return hello
    log.warning("mongo: %s skipped: the server is not a mongos (no sharded cluster)", what)
    return None


def current_shard_key(db: Any, collection: str) -> ShardKey | None:
    docs = _config_find(db, "collections", {"_id": _namespace(db, collection)})
    return shard_key_from_config(next((d for d in docs if not d.get("dropped")), None))


def shard_collection(db: Any, collection: str, key: ShardKey) -> None:
    if _mongos_hello(db, f"sharding {collection}") is not None:
        _shard(db, collection, key)


def _shard(db: Any, collection: str, key: ShardKey) -> None:
    current = current_shard_key(db, collection)
    if current is not None and current.key == key.key:
        if current.unique != key.unique:
            raise Refused(
                f"The shard key {show_pairs(key.key)} of {collection} is "
                f"{'' if current.unique else 'not '}unique on the server, and MongoDB cannot change that "
                "in place; reshard or recreate the collection, or declare unique as the server has it"
            )
        return
    run(_admin(db), commands.shard_key_command(_namespace(db, collection), key, current))


def unshard_collection(db: Any, collection: str) -> None:
    hello = _mongos_hello(db, f"unsharding {collection}")
    if hello is None or current_shard_key(db, collection) is None:
        return
    if hello.get("maxWireVersion", 0) < UNSHARD_WIRE_VERSION:
        raise Refused(
            f"Unsharding {collection} needs MongoDB 8.0 or later (unshardCollection); on this cluster, "
            "keep the shard key declared, or copy the documents into a new unsharded collection"
        )
    run(_admin(db), commands.unshard_command(_namespace(db, collection)))


def set_zones(db: Any, collection: str, zones: tuple[ZoneRange, ...] | list[ZoneRange]) -> None:
    """Make the zone ranges of ``collection`` exactly ``zones``."""
    if _mongos_hello(db, f"zones of {collection}") is not None:
        _require_zone_shards(db, collection, {z.zone for z in zones})
        _set_zones(db, collection, zones)


def _set_zones(db: Any, collection: str, zones: tuple[ZoneRange, ...] | list[ZoneRange]) -> None:
    """Remove the stale ranges, then add the missing ones (the shards of each zone checked by the caller)."""
    namespace = _namespace(db, collection)
    live = [zone_from_tag(d) for d in _config_find(db, "tags", {"ns": namespace})]
    adding = [z for z in zones if z not in live]
    for stale in (z for z in live if z not in zones):
        run(_admin(db), commands.zone_range_command(namespace, stale, None))
    for zone_range in adding:
        run(_admin(db), commands.zone_range_command(namespace, zone_range, zone_range.zone))


def _require_zone_shards(db: Any, collection: str, zones: set[str]) -> None:
    if not zones:
        return
    served = {tag for shard in _config_find(db, "shards", {}) for tag in shard.get("tags", ())}
    missing = sorted(zones - served)
    if missing:
        raise Refused(
            f"Zone(s) {', '.join(missing)} of {collection} have no shard; assign the shards of each region "
            "first (sh.addShardToZone(<shard>, <zone>)), then run migrate again"
        )
