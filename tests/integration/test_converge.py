"""A store that comes back ends where Postgres stands, whatever moves happened while it was away;
what the chain set and a server loses on its own, migrate gives back."""

from __future__ import annotations

import random

import psycopg
import pytest
import redis as redis_py
from alembic.script import ScriptDirectory

from sovren_db import commands
from sovren_db.core.config import load_settings
from tests.integration.chain_moves import (
    CONFIG_DEFAULTS,
    REGISTRY,
    STREAM,
    add_probe_revisions,
    apply_move,
    random_moves,
    reset_config,
    snapshot,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(autouse=True)
def postgres_and_redis(project, monkeypatch):
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,redis")


def other_db(url: str) -> str:
    return url.rsplit("/", 1)[0] + "/1"


def straight_to_head(project, url: str, monkeypatch) -> dict:
    """The Redis state of a store migrated straight to head (database 1 of the same server)."""
    client = redis_py.Redis.from_url(other_db(url))
    client.flushdb()
    reset_config(url)
    monkeypatch.setenv("REDIS_URL", other_db(url))
    commands.migrate(load_settings(project))
    state = snapshot(other_db(url))
    client.flushdb()
    return state


def test_a_store_away_through_migrate_downgrade_migrate_ends_at_head(project, pg_url, redis_url, monkeypatch):
    reset_config(redis_url)
    commands.migrate(load_settings(project))
    commands.downgrade(load_settings(project), "-1")
    commands.migrate(load_settings(project))   # the second upgrade is no longer lost
    with psycopg.connect(pg_url) as conn:  # the table holds the net path: each revision's steps, once, up
        rows = conn.execute("SELECT DISTINCT revision, direction FROM sovren_db_deferred "
                            "WHERE store = 'redis'").fetchall()
    from sovren_db.resync import chain_steps

    with_redis = [rev for rev, ops in chain_steps(load_settings(project), "head")
                  if any(op.store == "redis" for op in ops)]   # a revision without Redis steps defers nothing
    assert with_redis and sorted(rows) == sorted((revision, "up") for revision in with_redis)

    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    status = commands.status(settings)
    assert status.data["stores"]["redis"]["in_step"] and status.exit_code == 0
    assert commands.check(settings).exit_code == 0
    assert snapshot(redis_url) == straight_to_head(project, redis_url, monkeypatch)


@pytest.mark.parametrize("seed", range(1, 9))
def test_random_moves_while_redis_is_away_converge_to_a_straight_migrate(project, redis_url, monkeypatch, seed):
    chain = add_probe_revisions(project)
    rng = random.Random(seed)
    reset_config(redis_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    for move in random_moves(rng, chain, rng.randint(0, 3)):   # the store has some position first
        apply_move(project, move)
    monkeypatch.delenv("REDIS_URL")
    for move in random_moves(rng, chain, rng.randint(1, 6)):
        apply_move(project, move)
    monkeypatch.setenv("REDIS_URL", redis_url)
    commands.migrate(load_settings(project))
    assert commands.status(load_settings(project)).data["stores"]["redis"]["in_step"]
    assert snapshot(redis_url) == straight_to_head(project, redis_url, monkeypatch)


def test_a_downgrade_first_brings_a_store_that_was_away_to_postgres(project, redis_url, monkeypatch):
    chain = add_probe_revisions(project)
    commands.migrate(load_settings(project))     # Redis away: Postgres at head, Redis at nothing
    monkeypatch.setenv("REDIS_URL", redis_url)
    reset_config(redis_url)
    commands.downgrade(load_settings(project), "-1")
    state = snapshot(redis_url)
    assert state["position"] == chain[-2]
    assert state["registry"]["family:probe"] and state["groups"][STREAM] == []
    assert state["config"]["maxmemory-samples"] == "7"


def test_migrate_gives_back_configuration_and_groups_a_restart_lost(project, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    client = redis_py.Redis.from_url(redis_url)
    reset_config(redis_url)                       # CONFIG SET is not persisted across a restart
    client.delete("{comms}:outbox")               # the stream went, with its consumer group
    entry = next(k for k in client.hkeys(REGISTRY) if k.startswith(b"channel:"))
    client.hdel(REGISTRY, entry)
    assert commands.check(settings).exit_code == 1
    out = commands.migrate(settings)              # at head already: no flag needed
    assert out.data["applied"] == []
    assert any("server had lost" in n for n in out.notes)
    assert commands.check(settings).exit_code == 0
    assert client.config_get("maxmemory-policy")["maxmemory-policy"] != CONFIG_DEFAULTS["maxmemory-policy"]


def test_status_does_not_say_in_step_while_the_ledger_holds_an_interrupted_revision(project, redis_url,
                                                                                      monkeypatch):
    import json

    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    client = redis_py.Redis.from_url(redis_url)
    client.hset("{sovren-db}:ledger", "c0ffee0000ff:up:0", json.dumps({"op": "redis_declare_family",
                                                                        "undo": None}))
    status = commands.status(settings)
    assert status.exit_code == 1 and not status.data["stores"]["redis"]["in_step"]
    assert status.data["stores"]["redis"]["unaccounted_steps"] == ["c0ffee0000ff:up:0"]
    checked = commands.check(settings)
    assert checked.exit_code == 1
    assert [f.sentence() for f in checked.findings if f.code == "lockstep"] == [
        "revision position: its ledger holds 1 step(s) of an interrupted revision; run 'sovren-db migrate'"]
    commands.migrate(settings)
    assert commands.status(settings).exit_code == 0 and commands.check(settings).exit_code == 0


def test_a_store_at_a_revision_the_chain_does_not_know_is_one_clear_error_and_resync_rebuilds_it(
        project, redis_url, monkeypatch):
    from sovren_db.core.errors import RevisionError

    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    redis_py.Redis.from_url(redis_url).set("{sovren-db}:position", "feedfacecafe")
    with pytest.raises(RevisionError, match=r"^redis records revision feedfacecafe, which is not in the revision "
                                            r"chain; run 'sovren-db migrate --resync redis' to rebuild it"):
        commands.migrate(settings)
    assert not commands.status(settings).data["stores"]["redis"]["in_step"]
    commands.migrate(settings, resync=("redis",))
    assert commands.status(settings).data["stores"]["redis"]["in_step"]


def test_a_destructive_step_on_the_way_back_is_refused_in_a_protected_environment(project, redis_url,
                                                                                     monkeypatch):
    from sovren_db.core.errors import Refused

    chain = add_probe_revisions(project)
    monkeypatch.setenv("REDIS_URL", redis_url)
    commands.migrate(load_settings(project))                  # the group on {probe}:events exists
    monkeypatch.delenv("REDIS_URL")
    commands.downgrade(load_settings(project), "-1")          # Redis away: it stays at head
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SOVREN_ENV", "production")
    with pytest.raises(Refused, match=r"drop consumer group readers of stream \{probe\}:events, to bring redis "
                                      rf"from {chain[-1]} to {chain[-2]} where Postgres stands' refused"):
        commands.migrate(load_settings(project))
    assert snapshot(redis_url)["groups"][STREAM] == ["readers"] and snapshot(redis_url)["position"] == chain[-1]
    commands.migrate(load_settings(project), allow_destructive=True)
    assert commands.status(load_settings(project)).data["stores"]["redis"]["in_step"]
