"""Round trips of a migrate: what a revision without store steps costs the stores."""

from __future__ import annotations

from alembic.script import ScriptDirectory
import pytest
import redis as redis_py

from sovren_db import commands
from sovren_db.core.config import load_settings
from tests.integration.conftest import add_revision
from tests.integration.recording import recorded

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
REGISTRY = "{sovren-db}:registry"
LEDGER = "{sovren-db}:ledger"


def redis_calls(client: redis_py.Redis) -> dict[str, int]:
    """Commands the Redis server ran since the last CONFIG RESETSTAT, by name."""
    return {name.removeprefix("cmdstat_"): stats["calls"] for name, stats in client.info("commandstats").items()}


def migrate_postgres_only_revisions(project, settings, client, count: int, first: int = 0):
    for n in range(first, first + count):
        add_revision(project, f"c0ffee{n:06d}",
                     f"    op.create_table('t{n}', sa.Column('id', sa.Integer, primary_key=True))")
    client.config_resetstat()
    with recorded() as statements:
        out = commands.migrate(settings)
    assert len(out.data["applied"]) == count
    deferred = [s for s in statements if "sovren_db_deferred" in s or "to_regclass" in s]
    return redis_calls(client), deferred


def test_a_revision_without_store_steps_costs_one_ledger_read_and_no_deferred_lookup(project, redis_url,
                                                                                      monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)  # Mongo is not configured: its steps wait in sovren_db_deferred
    client = redis_py.Redis.from_url(redis_url)

    few, few_deferred = migrate_postgres_only_revisions(project, settings, client, 3)
    many, many_deferred = migrate_postgres_only_revisions(project, settings, client, 9, first=3)

    # Redis: one ledger read (HKEYS) a revision, where there were two (steps done, steps to forget).
    assert (few.get("hkeys"), many.get("hkeys")) == (3, 9)
    assert "hdel" not in many
    # Postgres: the deferred table is read by the replay at the start, never once a revision.
    assert len(few_deferred) == len(many_deferred) <= 3, many_deferred  # to_regclass, then a SELECT a store


def test_steps_undone_by_a_downgrade_run_again_on_the_next_migrate(project, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    first = commands.migrate(settings).data["applied"]
    client = redis_py.Redis.from_url(redis_url)
    published = client.hgetall(REGISTRY)
    assert published

    commands.downgrade(settings, "base")
    assert client.hlen(REGISTRY) == 0
    assert not [k for k in client.hkeys(LEDGER) if b":up:" in k]  # the upgrade's steps were forgotten

    out = commands.migrate(settings)
    assert out.data["applied"] == first
    assert client.hgetall(REGISTRY) == published
    assert not [k for k in client.hkeys(LEDGER) if b":down:" in k]  # and the downgrade's, in turn
    status = commands.status(settings)
    assert status.data["stores"]["redis"]["revision"] == status.data["head"]
