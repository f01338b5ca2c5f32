"""Sovren's own database, as if it existed before sovren-db: refused by migrate, adopted by stamp."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.core.errors import Refused

from ..integration.conftest import copy_project
from .roundtrip import assert_clean, empty_project, round_trip, run_sql, scalar, settings_for

pytestmark = pytest.mark.postgres


def _sovren_database_without_history(repo_root, tmp_path, url):
    """Sovren migrated and seeded, then its revision history removed: a database sovren-db did not make."""
    sovren = copy_project(repo_root, tmp_path / "sovren")
    settings = load_settings(sovren, environ={"POSTGRES_URL": url, "SOVREN_DB_STORES": "postgres"})
    commands.migrate(settings)
    from sovren_db.seeds.engine import seed

    seed(settings, "ci")
    run_sql(url, "DROP TABLE alembic_version; DROP TABLE sovren_db_deferred; "
                 "COMMENT ON POLICY users_tenant_isolation ON users IS NULL")
    return settings


def test_migrate_refuses_then_stamp_adopts(repo_root, tmp_path, pg_url):
    settings = _sovren_database_without_history(repo_root, tmp_path, pg_url)
    with pytest.raises(Refused, match=r"already holds declared tables \(audit_\w+, audit_\w+, \w+ and \d+ more\)"
                                      r" but records no revision: adopt it with 'sovren-db stamp REVISION'"):
        commands.migrate(settings)
    assert scalar(pg_url, "SELECT to_regclass('alembic_version')") is None  # nothing half applied
    outcome = commands.stamp(settings, "head")
    assert outcome.exit_code == 0
    assert "adopted policy users_tenant_isolation on users" in outcome.lines
    assert_clean(settings)


def test_stamp_leaves_a_changed_policy_as_drift(repo_root, tmp_path, pg_url):
    settings = _sovren_database_without_history(repo_root, tmp_path, pg_url)
    run_sql(pg_url, "ALTER POLICY users_readonly_select ON users USING (false)")
    outcome = commands.stamp(settings, "head")
    assert outcome.exit_code == 1
    assert [f.sentence() for f in outcome.findings] == [
        "policy users_readonly_select on users: differs from its declaration"]
    drift = commands.check(settings)
    assert drift.exit_code == 1


def test_sovren_round_trip(repo_root, tmp_path, pg_url, second_pg_url):
    _sovren_database_without_history(repo_root, tmp_path, pg_url)
    steps = round_trip(pg_url, second_pg_url, tmp_path / "project")
    schema = (tmp_path / "project" / "postgres" / "schema.py").read_text()
    assert "PartitionRule('audit_log', 'created_at')" in schema and "Role('sovren_migrator', bypass_rls=True)" in schema
    assert not (tmp_path / "project" / "postgres" / "baseline.sql").exists()   # every partition follows the rule
    assert {f.object for f in steps["inspect"].findings} >= {"column users.email", "column users.username"}
    assert scalar(second_pg_url, "SELECT count(*) FROM pg_policy") == scalar(pg_url, "SELECT count(*) FROM pg_policy") >= 8


def test_sovren_round_trip_with_redis(repo_root, tmp_path, pg_url, second_pg_url, redis_url):
    """Postgres and Redis (migrated, seeded, then without history): inferred families, baseline, stamp,
    check clean (registry, server settings and the keyspace audit); the baseline on empty stores too."""
    import redis

    sovren = copy_project(repo_root, tmp_path / "sovren")
    settings = load_settings(sovren, environ={"POSTGRES_URL": pg_url, "REDIS_URL": redis_url,
                                              "SOVREN_DB_STORES": "postgres,redis"})
    commands.migrate(settings)
    from sovren_db.seeds.engine import seed

    seed(settings, "ci")
    run_sql(pg_url, "DROP TABLE alembic_version; DROP TABLE IF EXISTS sovren_db_deferred")
    client = redis.Redis.from_url(redis_url)
    client.delete(*client.keys("{sovren-db}:*"))
    assert client.dbsize() > 0
    empty_redis = redis_url.rsplit("/", 1)[0] + "/1"
    redis.Redis.from_url(empty_redis).flushdb()
    steps = round_trip(pg_url, second_pg_url, tmp_path / "project", redis_urls=(redis_url, empty_redis))
    status = commands.status(settings_for(tmp_path / "project", pg_url, redis_url))
    assert status.exit_code == 0 and status.data["stores"]["redis"]["in_step"], status.data
    redis_candidates = {f.object for f in steps["inspect"].findings if f.store == "redis"}
    assert {"key family session", "key family session_devices"} <= redis_candidates
    inferred = (tmp_path / "project" / "redis" / "inspected.toml").read_text()
    assert 'pattern = "session:{uuid}"' in inferred and 'maxmemory-policy = "volatile-lru"' in inferred


@pytest.mark.slow
def test_stamp_killed_at_any_point_is_all_or_nothing(repo_root, tmp_path, pg_url):
    """kill -9 of 'sovren-db stamp head' at several points: the revision and the adopted fingerprints
    are recorded together or not at all, and a stamp run again finishes the adoption."""
    import os
    import signal
    import subprocess
    import sys
    import time

    settings = _sovren_database_without_history(repo_root, tmp_path, pg_url)
    env = {**os.environ, "POSTGRES_URL": pg_url, "SOVREN_DB_STORES": "postgres"}
    command = [str(Path(sys.executable).parent / "sovren-db"), "stamp", "head"]
    for delay in (0.2, 0.4, 0.6, 0.8, 1.0, 1.5):
        run_sql(pg_url, "DROP TABLE IF EXISTS alembic_version; COMMENT ON POLICY users_tenant_isolation ON users IS NULL")
        process = subprocess.Popen(command, cwd=settings.root, env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        time.sleep(delay)
        process.send_signal(signal.SIGKILL)
        process.wait()
        stamped = scalar(pg_url, "SELECT to_regclass('alembic_version') IS NOT NULL")
        adopted = scalar(pg_url, "SELECT obj_description(oid, 'pg_policy') IS NOT NULL FROM pg_policy "
                                 "WHERE polname = 'users_tenant_isolation'")
        assert stamped == adopted, f"killed after {delay} s: revision recorded {stamped}, policy adopted {adopted}"
    assert commands.stamp(settings, "head").exit_code == 0
    assert_clean(settings)


def test_migrate_refuses_a_revision_of_another_chain(repo_root, tmp_path, pg_url):
    sovren = copy_project(repo_root, tmp_path / "sovren")
    commands.migrate(load_settings(sovren, environ={"POSTGRES_URL": pg_url, "SOVREN_DB_STORES": "postgres"}))
    project = empty_project(tmp_path / "project")
    adopted = settings_for(project, pg_url)
    commands.inspect(adopted)
    commands.baseline(adopted)
    with pytest.raises(Refused, match=r"records revision [0-9a-f]{12}, which is not in .*/project/migrations: "
                                      r"adopt it with 'sovren-db stamp REVISION' instead of migrating\."):
        commands.migrate(adopted)
    assert commands.stamp(adopted, "head").exit_code == 0
    assert_clean(adopted)
