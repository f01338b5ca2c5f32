"""One chain, three stores: deferred steps, replay, skew in status, unreachable and strict stores."""

from __future__ import annotations

from alembic.script import ScriptDirectory
import psycopg
import pytest
import redis as redis_py

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.core.errors import ConfigError, StoreUnavailable
from sovren_db.services import free_port

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
REGISTRY = "{sovren-db}:registry"


def deferred_count(pg_url: str, store: str) -> int:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT count(*) FROM sovren_db_deferred WHERE store = %s", (store,)).fetchone()[0]


def test_redis_steps_deferred_then_replayed_without_rerunning_postgres(project, pg_url, redis_url, monkeypatch):
    out = commands.migrate(load_settings(project))
    assert any("redis" in n and "deferred" in n for n in out.notes)
    waiting = deferred_count(pg_url, "redis")
    assert waiting > 0

    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    status = commands.status(settings)
    assert status.exit_code == 1 and len(status.data["stores"]["redis"]["deferred_steps"]) == waiting

    with psycopg.connect(pg_url) as conn:
        audit_before = conn.execute("SELECT count(*) FROM pg_policy").fetchone()[0]
    again = commands.migrate(settings)
    assert again.data["applied"] == []  # no Postgres revision ran again
    assert deferred_count(pg_url, "redis") == 0
    client = redis_py.Redis.from_url(redis_url)
    assert client.hexists(REGISTRY, "family:session") or client.hlen(REGISTRY) > 0
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_policy").fetchone()[0] == audit_before

    in_step = commands.status(settings)
    head = in_step.data["head"]
    assert in_step.data["stores"]["redis"] == {"configured": True, "revision": head, "deferred_steps": [],
                                               "in_step": True, "unaccounted_steps": []}
    checked = commands.check(settings)
    assert [f for f in checked.findings if f.store == "redis"] == []


def test_migrate_with_every_reachable_store_applies_in_lockstep(project, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    out = commands.migrate(settings)
    head = commands.status(settings).data["stores"]["redis"]["revision"]
    assert out.data["applied"] and head == out.data["applied"][-1]  # every revision of the chain, in order
    commands.downgrade(settings, "base")
    assert redis_py.Redis.from_url(redis_url).hlen(REGISTRY) == 0
    assert commands.status(settings).data["stores"]["redis"]["revision"] is None


def test_registry_drift_is_reported(project, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    redis_py.Redis.from_url(redis_url).hdel(REGISTRY, *[k for k in redis_py.Redis.from_url(redis_url)
                                                         .hkeys(REGISTRY) if k.startswith(b"family:session")][:1])
    checked = commands.check(settings)
    assert checked.exit_code == 1
    assert any(f.store == "redis" for f in checked.findings), [f.sentence() for f in checked.findings]


def test_a_configured_but_unreachable_store_is_an_error_and_nothing_is_applied(project, pg_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", f"redis://:topsecret@127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable) as err:
        commands.migrate(load_settings(project))
    assert "topsecret" not in str(err.value) and "redis server at redis://:***@127.0.0.1" in str(err.value)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('users')").fetchone()[0] is None


def test_strict_requires_every_declared_store(project, monkeypatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(ConfigError, match="mongo is declared but not configured and --strict is in force"):
        commands.migrate(load_settings(project))


def test_an_emptied_store_is_brought_back_by_the_next_migrate(project, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    client = redis_py.Redis.from_url(redis_url)
    published = client.hgetall(REGISTRY)
    assert published
    client.flushdb()  # a development Redis restarted without persistence
    out = commands.migrate(settings)
    assert out.data["applied"] == []
    assert any("replayed the chain's redis steps" in n for n in out.notes)
    assert client.hgetall(REGISTRY) == published
    status = commands.status(settings)
    assert status.data["stores"]["redis"]["revision"] == status.data["head"]
    assert commands.check(settings).exit_code == 0


def test_a_store_configured_after_postgres_reached_head_catches_up(project, pg_url, redis_url, monkeypatch):
    commands.migrate(load_settings(project))  # Redis not configured: its steps are deferred
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM sovren_db_deferred WHERE store = 'redis'")  # as if they never existed
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    assert redis_py.Redis.from_url(redis_url).hlen(REGISTRY) > 0
    assert commands.status(settings).data["stores"]["redis"]["revision"] == commands.status(settings).data["head"]


def test_a_store_that_lost_part_of_its_data_is_put_back_by_migrate_resync(project, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    client = redis_py.Redis.from_url(redis_url)
    published = client.hgetall(REGISTRY)
    lost = next(field for field in published if field.startswith(b"family:"))
    client.hdel(REGISTRY, lost)  # deleted by hand: the store still records its position
    assert commands.check(settings).exit_code == 1
    out = commands.migrate(settings, resync=("redis",))
    assert out.data["applied"] == []  # no Postgres revision ran again
    assert any("asked for (--resync); replayed the chain's redis steps" in n for n in out.notes)
    assert client.hgetall(REGISTRY) == published
    assert commands.check(settings).exit_code == 0


def test_resync_of_a_store_that_is_not_configured_is_one_clear_error(project, redis_url, monkeypatch):
    from sovren_db.core.errors import SovrenError

    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    with pytest.raises(SovrenError, match=r"Cannot resync mongo: it is not configured \(MONGO_URL is not set\)"):
        commands.migrate(settings, resync=("mongo",))


@pytest.mark.mongo
def test_a_collection_dropped_by_hand_is_put_back_by_migrate_resync_mongo(project, pg_url, mongo_url, monkeypatch):
    import pymongo

    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,mongo")
    monkeypatch.setenv("MONGO_URL", mongo_url)
    settings = load_settings(project)
    commands.migrate(settings)
    with pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000) as client:
        db = client[settings.mongo_database]
        before = {i["name"] for i in db["communications"].list_indexes()}
        db.drop_collection("communications")
        db["executives"].drop_index("userId_1_role_1")
        assert commands.check(settings).exit_code == 1
        commands.migrate(settings, resync=("mongo",))
        assert {i["name"] for i in db["communications"].list_indexes()} == before
        assert "userId_1_role_1" in db["executives"].index_information()
    assert commands.check(settings).exit_code == 0
