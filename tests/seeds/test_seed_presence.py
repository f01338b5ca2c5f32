"""The seed manifest describes what is there: a store whose seeded data is gone is loaded again."""

from __future__ import annotations

import psycopg
import pytest
import redis

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.seeds.engine import seed
from sovren_db.seeds.presence import missing_tables
from sovren_db.seeds.profiles import load_profile
from sovren_db.seeds.targets import Targets

from .helpers import count, redis_snapshot

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_a_downgrade_that_dropped_the_tables_does_not_leave_an_already_loaded_seed(triad, pg_url, redis_url):
    settings = load_settings(triad)
    first = seed(settings, "ci")
    users = first.stores["postgres"].counts["users"]
    keys = len(redis_snapshot(redis_url))
    commands.downgrade(settings, "base")
    commands.migrate(settings)
    assert count(pg_url, "SELECT count(*) FROM users") == 0

    again = seed(settings, "ci")
    assert again.status == "seeded"
    assert any("postgres: the seed the manifest records is no longer there" in n for n in again.notes)
    assert count(pg_url, "SELECT count(*) FROM users") == users
    assert len(redis_snapshot(redis_url)) == keys      # Redis loaded again beside it, not doubled
    assert seed(settings, "ci").status == "already seeded"


def test_redis_emptied_is_loaded_again_and_postgres_is_left_alone(triad, pg_url, redis_url):
    settings = load_settings(triad)
    seed(settings, "ci")
    keys = redis_snapshot(redis_url)
    with psycopg.connect(pg_url) as conn:
        audit_rows = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    redis.Redis.from_url(redis_url).flushall()
    commands.migrate(settings)                         # the registry and position come back first

    again = seed(settings, "ci")
    assert again.stores["redis"].state == "seeded" and again.stores["postgres"].state == "already seeded"
    assert any("redis: the seed the manifest records is no longer there" in n for n in again.notes)
    assert set(redis_snapshot(redis_url)) == set(keys)
    assert count(pg_url, "SELECT count(*) FROM audit_log") == audit_rows


def test_a_table_with_some_seeded_rows_left_is_still_seeded(triad, pg_url):
    settings = load_settings(triad)
    report = seed(settings, "ci")
    graph = Targets.of(settings, load_profile(settings.seeds_dir, "ci")).graph
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET ROLE sovren_migrator")
        assert missing_tables(conn, report.stores["postgres"].counts, graph) == []
        conn.execute("DELETE FROM payments")
        assert missing_tables(conn, report.stores["postgres"].counts, graph) == ["payments"]
        conn.rollback()
