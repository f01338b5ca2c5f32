"""Snapshots of a seeded triad for the pytest plugin (:mod:`sovren_db.testing.plugin`): what it keeps and puts back.

Postgres is cloned (``CREATE DATABASE ... TEMPLATE``), so only Redis and
MongoDB are snapshotted: every Redis key as ``DUMP`` + remaining TTL, every
MongoDB collection of the session's database with its options, indexes and
documents (views as their definition), put back by dropping and recreating.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..core.config import Settings

BATCH = 1000


def create_database(admin_url: str, name: str, *, template: str | None = None) -> None:
    import psycopg
    from psycopg import sql

    statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(statement)


def drop_database(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _redis(settings: "Settings"):
    from ..redis.backend import RedisBackend

    backend = RedisBackend(settings)
    backend.connect()
    return backend


def dump_redis(settings: "Settings") -> list[tuple[bytes, int, bytes]]:
    """(key, remaining TTL in ms or 0, DUMP payload) of every key."""
    if not settings.redis_url:
        return []
    backend = _redis(settings)
    try:
        saved = []
        for _, client in backend.masters():
            keys = list(client.scan_iter(count=BATCH))
            for start in range(0, len(keys), BATCH):
                chunk = keys[start:start + BATCH]
                pipe = client.pipeline(transaction=False)
                for key in chunk:
                    pipe.pttl(key)
                    pipe.dump(key)
                replies = pipe.execute()
                saved += [(k, max(ttl, 0), payload) for k, ttl, payload in zip(chunk, replies[::2], replies[1::2])
                          if payload is not None]
        return saved
    finally:
        backend.close()


def restore_redis(settings: "Settings", saved: list[tuple[bytes, int, bytes]]) -> None:
    """Flush the database (every master) and put the saved keys back."""
    if not settings.redis_url:
        return
    backend = _redis(settings)
    try:
        for _, client in backend.masters():
            client.flushdb()
        for start in range(0, len(saved), BATCH):
            pipe = backend.client.pipeline(transaction=False)
            for key, ttl, payload in saved[start:start + BATCH]:
                pipe.restore(key, ttl, payload, replace=True)
            pipe.execute()
    finally:
        backend.close()


def _mongo(settings: "Settings"):
    import pymongo

    return pymongo.MongoClient(settings.mongo_url, serverSelectionTimeoutMS=5000)


# Index fields listIndexes echoes that createIndexes does not take back.
ECHOED_ONLY = ("v", "ns")


def dump_mongo(settings: "Settings") -> dict:
    """What :func:`restore_mongo` puts back: see :func:`dump_database`; ``{}`` without MongoDB."""
    if not settings.mongo_url:
        return {}
    client = _mongo(settings)
    try:
        return dump_database(client[settings.mongo_database])
    finally:
        client.close()


def dump_database(db: Any) -> dict:
    """Every non-system collection of ``db``: definitions, indexes and documents.

    ``{"collections": [{"name", "type", "options"}, ...]`` (listCollections, in its order),
    ``"indexes": {name: [listIndexes entries]}`` and ``"documents": {name: [documents]}``
    (neither for views, whose contents are their source's), documents as raw BSON so that
    they go back byte for byte.
    """
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    raw = CodecOptions(document_class=RawBSONDocument)
    collections = [{"name": info["name"], "type": info.get("type", "collection"),
                    "options": dict(info.get("options") or {})}
                   for info in db.list_collections() if not info["name"].startswith("system.")]
    indexes: dict[str, list[dict]] = {}
    documents: dict[str, list[dict]] = {}
    for entry in collections:
        if entry["type"] == "view":
            continue
        indexes[entry["name"]] = [dict(index) for index in db[entry["name"]].list_indexes()]
        documents[entry["name"]] = list(db.get_collection(entry["name"], codec_options=raw).find())
    return {"collections": collections, "indexes": indexes, "documents": documents}


def restore_mongo(settings: "Settings", saved: dict) -> None:
    """The session's database back to ``saved`` (:func:`dump_mongo`): see :func:`restore_database`."""
    if not settings.mongo_url:
        return
    client = _mongo(settings)
    try:
        restore_database(client[settings.mongo_database], saved)
    finally:
        client.close()


def restore_database(db: Any, saved: dict) -> None:
    """Drop every non-system collection and view, then recreate the saved ones as they were.

    Each collection is created with its saved options (validator, level, action,
    capped, time series, collation...), given its saved indexes (one
    ``createIndexes``) and its documents (unordered, validation bypassed: they
    were valid when dumped); views are created last from their ``viewOn`` and
    ``pipeline``, a view on another view after that one. Collections and views a
    test dropped, changed (collMod) or created, and indexes it added or dropped,
    are thereby all undone.
    """
    from ..mongo.execute import drop_collection

    for name in db.list_collection_names():
        if not name.startswith("system."):
            drop_collection(db, name)
    entries = saved.get("collections", [])
    for entry in entries:
        if entry["type"] == "view":
            continue
        name = entry["name"]
        db.command(create_command(entry))
        indexes = index_documents(saved.get("indexes", {}).get(name, []), entry["options"])
        if indexes:
            db.command({"createIndexes": name, "indexes": indexes})
        documents = saved.get("documents", {}).get(name)
        if documents:   # pymongo splits them into as few messages as the server's limits allow
            db[name].insert_many(documents, ordered=False, bypass_document_validation=True)
    for entry in views_in_order([e for e in entries if e["type"] == "view"]):
        db.command(create_command(entry))


def create_command(entry: dict) -> dict:
    """The ``create`` command of a listCollections entry (``{name, type, options}``); a time
    series' echoed bucketing that its granularity derives is left out (the normaliser's rule)."""
    from ..mongo.normalise import normalise_timeseries

    options = dict(entry["options"])
    if options.get("timeseries"):
        options["timeseries"] = normalise_timeseries(options["timeseries"])
    return {"create": entry["name"], **options}


def index_documents(indexes: list[dict], options: dict) -> list[dict]:
    """The ``indexes`` of a ``createIndexes`` giving back what listIndexes listed.

    ``_id_`` (and a clustered collection's clustered index) come with the
    collection; ``v`` and ``ns`` are not taken back. On a collection with a default
    collation, listIndexes lists an index made with the simple collation without
    one: it is sent ``{"locale": "simple"}``, or it would get the default.
    """
    from ..mongo.normalise import SIMPLE

    out = []
    for index in indexes:
        if index.get("name") == "_id_" or index.get("clustered"):
            continue
        document = {k: v for k, v in index.items() if k not in ECHOED_ONLY}
        if options.get("collation") and "collation" not in document:
            document["collation"] = dict(SIMPLE)
        out.append(document)
    return out


def views_in_order(views: list[dict]) -> list[dict]:
    """Views so that one defined on another view comes after it."""
    by_name = {v["name"]: v for v in views}
    ordered: list[dict] = []
    placed: set[str] = set()

    def place(view: dict, path: tuple[str, ...] = ()) -> None:
        name = view["name"]
        if name in placed or name in path:
            return
        source = by_name.get(view["options"].get("viewOn"))
        if source is not None:
            place(source, (*path, name))
        placed.add(name)
        ordered.append(view)

    for view in views:
        place(view)
    return ordered


def forget_session(settings: "Settings") -> None:
    """Drop the session's MongoDB database; leave Redis flushed."""
    if settings.mongo_url:
        client = _mongo(settings)
        try:
            client.drop_database(settings.mongo_database)
        finally:
            client.close()
    if settings.redis_url:
        backend = _redis(settings)
        try:
            for _, client in backend.masters():
                client.flushdb()
        finally:
            backend.close()
