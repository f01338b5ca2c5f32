"""A revision that fails leaves no trace in any store, wherever among its steps it fails."""

from __future__ import annotations

import psycopg
import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.core.errors import SovrenError
from tests.integration.chain_moves import FAMILY, STREAM, reset_config, snapshot
from tests.integration.conftest import add_revision

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

POSTGRES_STEPS = ["    op.create_table('probe', sa.Column('id', sa.Integer, primary_key=True))",
                  "    op.mongo_create_collection(collection='probes')"]
REDIS_STEPS = [f"    op.redis_declare_family(family={FAMILY!r})",
               "    op.redis_set_config(name='maxmemory-samples', value='7')",
               f"    op.redis_create_group(key={STREAM!r}, group='readers')",
               "    op.redis_set_config(name='maxmemory-policy', value='allkeys-lru', previous='noeviction')"]
FAILING_REDIS = "    op.redis_set_config(name='no-such-parameter', value='1')"
FAILING_POSTGRES = "    op.execute('SELECT 1/0')"


def postgres_state(pg_url: str) -> tuple:
    with psycopg.connect(pg_url) as conn:
        tables = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        deferred = conn.execute("SELECT count(*) FROM sovren_db_deferred").fetchone()[0]
    return tables, version, deferred


FAILURES = [("postgres", 1), ("postgres", 2)] + [("redis", k) for k in range(len(REDIS_STEPS) + 1)]


@pytest.mark.parametrize("store,position", FAILURES, ids=[f"{s}-{k}" for s, k in FAILURES])
def test_a_failure_at_any_step_leaves_every_store_as_it_was(project, pg_url, redis_url, monkeypatch,
                                                             store, position):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    reset_config(redis_url)
    commands.migrate(settings)
    before = snapshot(redis_url), postgres_state(pg_url)

    postgres, redis = list(POSTGRES_STEPS), list(REDIS_STEPS)
    (postgres if store == "postgres" else redis).insert(position, FAILING_POSTGRES if store == "postgres"
                                                        else FAILING_REDIS)
    path = add_revision(project, "bad000000001", "\n".join(postgres + redis))
    with pytest.raises(SovrenError):
        commands.migrate(settings)
    assert (snapshot(redis_url), postgres_state(pg_url)) == before

    path.unlink()   # the revision is withdrawn: nothing of it is left to find
    assert commands.check(settings).exit_code == 0
    status = commands.status(settings)
    assert status.data["stores"]["redis"]["in_step"]


def test_a_revision_killed_half_way_is_undone_before_a_downgrade(project, pg_url, redis_url, monkeypatch):
    """A run killed after some store steps (no chance to undo): the next run undoes them first."""
    import json

    import redis as redis_py

    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    client = redis_py.Redis.from_url(redis_url)
    before = snapshot(redis_url)
    # what a kill -9 after the first step of an unrecorded revision leaves: the step and its ledger entry
    client.hset("{sovren-db}:registry", "family:probe", json.dumps(FAMILY))
    client.hset("{sovren-db}:ledger", "bad000000002:up:0", json.dumps(
        {"op": "redis_declare_family", "undo": {"op_name": "redis_retire_family", "arguments": {"family": FAMILY}}}))
    out = commands.migrate(settings)
    assert any("undid 1 step(s)" in n for n in out.notes)
    assert snapshot(redis_url) == before


def test_an_undo_that_cannot_reach_the_store_never_hides_the_revisions_own_error(project, redis_url, monkeypatch):
    import redis as redis_py

    from sovren_db.redis.backend import RedisBackend

    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    add_revision(project, "bad000000003", REDIS_STEPS[0] + "\n" + FAILING_REDIS)

    read = RedisBackend.ledger_undo_steps

    def unreachable(self, prefix):   # Redis goes away just after the revision's first step ran
        entries = read(self, prefix)
        if any(key.startswith("bad000000003:") for key in entries):
            raise redis_py.ConnectionError("Error 111 connecting to 127.0.0.1. Connection refused.")
        return entries

    monkeypatch.setattr(RedisBackend, "ledger_undo_steps", unreachable)
    with pytest.raises(SovrenError, match=r"Revision bad000000003, redis step 1 \(set server configuration "
                                          r"no-such-parameter to '1'\) failed"):
        commands.migrate(settings)
    monkeypatch.undo()
    monkeypatch.setenv("REDIS_URL", redis_url)
    out_of_step = commands.status(settings)
    assert out_of_step.data["stores"]["redis"]["unaccounted_steps"] == ["bad000000003:up:0"]
    (project / "migrations" / "versions" / "bad000000003_test.py").unlink()
    commands.migrate(settings)                    # undone first, though its revision file is gone
    assert commands.check(settings).exit_code == 0
