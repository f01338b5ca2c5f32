"""Live state: what the server holds, in few round trips.

Round trips for a database of N collections:

- ``hello``, once: ``msg == "isdbgrid"`` tells a mongos (sharded cluster);
- ``listCollections``, once, with every option (validator, level, action,
  capped, timeseries, collation);
- ``listIndexes``, once per collection. MongoDB 6/7 have no documented
  one-call alternative: ``$indexStats`` omits index options and
  ``$listCatalog`` is 7.0+, needs cluster-wide privileges and is not part of
  the stable API. N is small (Sovren has four collections);
- on a mongos only: ``config.collections`` and ``config.tags``, one query
  each, filtered to this database.

The pure half, :func:`state_from_replies`, turns those replies into a
:class:`DatabaseState` and is tested with replies shaped like the server's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from .extjson import document_to_pairs
from .normalise import (
    index_from_document,
    normalise_action,
    normalise_level,
    normalise_options,
    normalise_validator,
    relative_collations,
)
from .state import (
    LEDGER_COLLECTION,
    CollectionSpec,
    DatabaseState,
    ShardKey,
    ZoneRange,
    as_pairs,
    sorted_zones,
)

MANAGED_TYPES = ("collection", "timeseries")


def is_mongos(hello: Mapping) -> bool:
    return hello.get("msg") == "isdbgrid"


def managed(info: Mapping, exclude: Iterable[str] = (LEDGER_COLLECTION,)) -> bool:
    """Collections sovren-db compares: not views, not system collections, not its ledger."""
    name = str(info.get("name", ""))
    return (
        info.get("type", "collection") in MANAGED_TYPES
        and not name.startswith("system.")
        and name not in set(exclude)
    )


def introspect(db: Any, *, exclude: Iterable[str] = (LEDGER_COLLECTION,)) -> DatabaseState:
    """The live state of pymongo Database ``db``."""
    sharded = is_mongos(db.command({"hello": 1}))
    infos = [i for i in db.list_collections() if managed(i, exclude)]
    indexes = {i["name"]: list(db[i["name"]].list_indexes()) for i in infos}
    sharding, tags = ([], [])
    if sharded:
        config = db.client.get_database("config")
        prefix = {"$regex": "^" + re.escape(db.name + ".")}
        sharding = list(config["collections"].find({"_id": prefix}))
        tags = list(config["tags"].find({"ns": prefix}))
    return state_from_replies(db.name, infos, indexes, sharding, tags, sharded=sharded)


def read_collection(db: Any, name: str) -> CollectionSpec | None:
    """One collection as the server holds it now (None: there is none), in the commands pymongo's
    Database.command sends: listCollections filtered to it, its listIndexes, and on a mongos its
    config.collections and config.tags documents. The first batches hold every answer: one name
    matches at most one collection, and a collection has at most 64 indexes."""
    infos = _first_batch(db.command({"listCollections": 1, "filter": {"name": name}}))
    if not infos or not managed(infos[0]):
        return None
    indexes = _first_batch(db.command({"listIndexes": name}))
    shard_doc, tags = None, []
    if is_mongos(db.command({"hello": 1})):
        config, namespace = db.client.get_database("config"), f"{db.name}.{name}"
        found = _first_batch(config.command({"find": "collections", "filter": {"_id": namespace}}))
        shard_doc = next((d for d in found if not d.get("dropped")), None)
        tags = _first_batch(config.command({"find": "tags", "filter": {"ns": namespace}}))
    return collection_from_info(infos[0], indexes, shard_doc, tags)


def _first_batch(reply: Mapping) -> list:
    return list(reply["cursor"]["firstBatch"])


def state_from_replies(
    database: str,
    collection_infos: Iterable[Mapping],
    indexes: Mapping[str, Iterable[Mapping]],
    config_collections: Iterable[Mapping] = (),
    config_tags: Iterable[Mapping] = (),
    *,
    sharded: bool,
) -> DatabaseState:
    """A DatabaseState from listCollections entries, listIndexes entries per collection,
    config.collections documents and config.tags documents."""
    shard_docs = {_collection_of(d["_id"], database): d for d in config_collections if not d.get("dropped")}
    tags: dict[str, list[Mapping]] = {}
    for tag in config_tags:
        tags.setdefault(_collection_of(tag["ns"], database), []).append(tag)
    collections = {}
    for info in collection_infos:
        name = info["name"]
        collections[name] = collection_from_info(
            info, indexes.get(name, ()), shard_docs.get(name), tags.get(name, ())
        )
    return DatabaseState(collections=collections, sharded=sharded)


def _collection_of(namespace: str, database: str) -> str:
    return namespace[len(database) + 1 :] if namespace.startswith(database + ".") else namespace


def collection_from_info(
    info: Mapping, index_docs: Iterable[Mapping], shard_doc: Mapping | None, tag_docs: Iterable[Mapping]
) -> CollectionSpec:
    raw = info.get("options") or {}
    options = normalise_options(raw)
    indexes = [index_from_document(d) for d in index_docs if dict(d.get("key", {})) != {"_id": 1}]
    indexes = relative_collations(indexes, options.get("collation"), echoed=True)
    return CollectionSpec(
        name=info["name"],
        validator=normalise_validator(raw.get("validator")),
        validation_level=normalise_level(raw.get("validationLevel")),
        validation_action=normalise_action(raw.get("validationAction")),
        options=options,
        indexes=tuple(sorted(indexes, key=lambda i: i.name)),
        shard_key=shard_key_from_config(shard_doc),
        zones=sorted_zones(zone_from_tag(t) for t in tag_docs),
    )


def shard_key_from_config(doc: Mapping | None) -> ShardKey | None:
    """The shard key of a config.collections document; None for a collection that is not sharded.

    MongoDB 8.0 also tracks unsharded collections there (``unsplittable: true``,
    key ``{_id: 1}``, one chunk): those have no shard key.
    """
    if not doc or not doc.get("key") or doc.get("unsplittable"):
        return None
    return ShardKey(key=as_pairs(document_to_pairs(doc["key"])), unique=bool(doc.get("unique", False)))


def zone_from_tag(doc: Mapping) -> ZoneRange:
    return ZoneRange(
        zone=str(doc["tag"]),
        min=as_pairs(document_to_pairs(doc["min"])),
        max=as_pairs(document_to_pairs(doc["max"])),
    )
