"""Checksums of what a seed wrote, per store, and small helpers shared by the seed tests."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import psycopg
import redis
from click.testing import CliRunner

from sovren_db.cli.main import cli
from sovren_db.core.config import Settings, load_settings

ALL_STORES = "postgres,mongo,redis"
TABLE_KEYS = {"users": "user_id", "subscriptions": "subscription_id", "transactions": "transaction_id",
              "payments": "payment_id", "operations": "operation_id, executed_at"}
CI_KEY = "sovren-ci-seed-key"
# provider_token is encrypted (OpenPGP: fresh ciphertext every load): compare what it decrypts to.
ROWS = {"payments": "row(payment_id, user_id, transaction_id, amount, currency, provider, "
                    "pgp_sym_decrypt(dearmor(provider_token), %(key)s), card_last4, raw_card_number, created_at)"}
G2 = """SELECT event_id FROM audit_log
        WHERE hash != encode(digest(event_payload || event_id::text, 'sha256'),'hex')"""
FRAMEWORK_KEYS = b"{sovren-db}"


def settings_for(root: Path, postgres_url: str, redis_url: str | None, **env: str) -> Settings:
    """Settings of ``root`` pointed at these servers, without touching the process environment."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CI", "MONGO_URL", "REDIS_URL", "SOVREN_ENV")}
    environ.update(POSTGRES_URL=postgres_url, SOVREN_DB_STORES=ALL_STORES, **env)
    if redis_url:
        environ["REDIS_URL"] = redis_url
    return load_settings(root, environ=environ)


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def postgres_checksums(url: str, key: str = CI_KEY) -> dict[str, str]:
    """Per seeded table: row count and md5 of every row's text, in key order."""
    with psycopg.connect(url) as conn:
        return {table: conn.execute(
            f"SELECT count(*) || ':' || md5(COALESCE(string_agg({ROWS.get(table, 't')}::text, E'\\n' "
            f"ORDER BY {order}), '')) FROM {table} t", {"key": key}).fetchone()[0]
            for table, order in TABLE_KEYS.items()}


def redis_snapshot(url: str) -> dict[bytes, tuple]:
    """Every key but the framework's: (type, value); stream entries without their server-given ids."""
    client = redis.Redis.from_url(url)
    found = {}
    try:
        for key in client.scan_iter(count=1000):
            if key.startswith(FRAMEWORK_KEYS):
                continue
            kind = client.type(key).decode()
            if kind == "string":
                value = client.get(key)
            elif kind == "hash":
                value = tuple(sorted(client.hgetall(key).items()))
            elif kind == "set":
                value = tuple(sorted(client.smembers(key)))
            elif kind == "stream":
                value = tuple(tuple(sorted(fields.items())) for _, fields in client.xrange(key))
            else:
                value = kind
            found[key] = (kind, value)
    finally:
        client.close()
    return found


def redis_checksum(url: str) -> str:
    snapshot = redis_snapshot(url)
    digest = hashlib.sha256(repr(sorted(snapshot.items())).encode()).hexdigest()
    return f"{len(snapshot)}:{digest}"


def mongo_checksums(url: str, database: str) -> dict[str, str]:
    import bson
    import pymongo

    client = pymongo.MongoClient(url, serverSelectionTimeoutMS=5000)
    try:
        db = client[database]
        out = {}
        for name in sorted(db.list_collection_names()):
            if name.startswith(("system.", "sovren_db_")):
                continue
            digest = hashlib.sha256()
            count = 0
            for document in db[name].find().sort("_id", 1):
                digest.update(bson.encode(document))
                count += 1
            out[name] = f"{count}:{digest.hexdigest()}"
        return out
    finally:
        client.close()


def count(url: str, query: str, *params) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchone()[0]
