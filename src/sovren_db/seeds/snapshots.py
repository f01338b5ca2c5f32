"""Snapshots of a seeded triad for the pytest plugin (:mod:`sovren_db.testing.plugin`): what it keeps and puts back.

Postgres is cloned (``CREATE DATABASE ... TEMPLATE``), so only Redis and
MongoDB are snapshotted: every Redis key as ``DUMP`` + remaining TTL, every
MongoDB document of the session's database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def dump_mongo(settings: "Settings") -> dict[str, list[dict]]:
    if not settings.mongo_url:
        return {}
    client = _mongo(settings)
    try:
        db = client[settings.mongo_database]
        return {name: list(db[name].find()) for name in db.list_collection_names() if not name.startswith("system.")}
    finally:
        client.close()


def restore_mongo(settings: "Settings", saved: dict[str, list[dict]]) -> None:
    """Every saved collection back to its saved documents; collections created since are dropped."""
    if not settings.mongo_url:
        return
    client = _mongo(settings)
    try:
        db = client[settings.mongo_database]
        for name in db.list_collection_names():
            if name.startswith("system."):
                continue
            if name not in saved:
                db.drop_collection(name)
                continue
            db[name].delete_many({})
            if saved[name]:
                db[name].insert_many(saved[name], ordered=False, bypass_document_validation=True)
    finally:
        client.close()


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
