"""Seeding a real MongoDB (skipped, saying why, where neither MONGO_URL nor a mongod binary exists)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import psycopg
import pymongo
import pytest
import redis

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.core.urls import with_database
from sovren_db.seeds.engine import seed
from sovren_db.seeds.manifest import TABLE as MANIFEST

from .helpers import mongo_checksums, run

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.mongo]
COLLECTIONS = ("executives", "communications", "scenario_simulations", "analytics_payloads")


@pytest.fixture
def mongo_triad(mongo_url, triad):
    """The triad with MongoDB configured (mongo_url first: it skips without a mongod)."""
    settings = load_settings(triad)
    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    yield triad, client[settings.mongo_database], mongo_url, settings.mongo_database
    client.close()


def seeded(*extra: str) -> None:
    result = run("seed", "--profile", "ci", *extra)
    assert result.exit_code == 0, result.output


def test_documents_are_loaded_and_reference_the_postgres_rows(mongo_triad, pg_url):
    _, db, _, _ = mongo_triad
    seeded()
    with psycopg.connect(pg_url) as conn:
        stores = conn.execute(f"SELECT stores FROM {MANIFEST}").fetchone()[0]
        users = {str(r[0]) for r in conn.execute("SELECT user_id FROM users")}
        operations = {str(r[0]) for r in conn.execute("SELECT operation_id FROM operations")}
    for name in COLLECTIONS:
        assert db[name].count_documents({}) == stores["mongo"][name] > 0
        assert set(db[name].distinct("userId")) <= users
    assert set(db.scenario_simulations.distinct("operationId")) <= operations
    assert db.communications.count_documents({"status": "failed"}) > 0


def test_a_second_run_and_a_resumed_run_insert_nothing_twice(mongo_triad, pg_url):
    _, db, url, name = mongo_triad
    seeded()
    complete = mongo_checksums(url, name)
    seeded()
    assert mongo_checksums(url, name) == complete
    half = [d["_id"] for d in db.communications.find({}, {"_id": 1}).sort("_id", 1)][::2]
    db.communications.delete_many({"_id": {"$in": half}})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"UPDATE {MANIFEST} SET stores = stores - 'mongo'")
    seeded()
    assert mongo_checksums(url, name) == complete


def test_reset_removes_seeded_documents_and_keeps_the_others(mongo_triad):
    _, db, _, _ = mongo_triad
    app_user = str(uuid.uuid4())
    db.communications.insert_one({"messageId": str(uuid.uuid4()), "userId": app_user, "recipient": "a@example.com",
                                  "message": "hi", "status": "sent", "timestamp": dt.datetime(2026, 1, 1)})
    seeded()
    first = set(db.executives.distinct("executiveId"))
    seeded("--seed", "9", "--reset")
    assert db.communications.count_documents({"userId": app_user}) == 1
    assert first.isdisjoint(db.executives.distinct("executiveId"))
    assert db.executives.count_documents({}) > 0


def test_two_fresh_mongo_databases_get_identical_documents(mongo_triad, postgres_server_url):
    root, _, url, name = mongo_triad
    seeded()
    settings = load_settings(root)
    other = f"t_{uuid.uuid4().hex[:12]}"
    other_redis = settings.redis_url.rsplit("/", 1)[0] + "/8"
    admin = with_database(postgres_server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{other}"')
    try:
        other_settings = dataclasses.replace(
            settings.with_urls(postgres=with_database(postgres_server_url, other), redis=other_redis),
            mongo_database=other)
        commands.migrate(other_settings)
        seed(other_settings, "ci")
        assert mongo_checksums(url, other) == mongo_checksums(url, name)
    finally:
        pymongo.MongoClient(url).drop_database(other)
        redis.Redis.from_url(other_redis).flushdb()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
