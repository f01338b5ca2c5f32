"""A PgBouncer in transaction pooling mode in front of the session's Postgres; a Redis master, its
replica and a Sentinel per test, with the project pointed at them."""

from __future__ import annotations

import os
import signal
import time
from urllib.parse import urlsplit

import pytest
import redis as redis_py

from sovren_db import services
from sovren_db.core.urls import with_database
from tests.integration.conftest import use_project


@pytest.fixture(scope="session")
def pgbouncer_server(sovren_servers_dir, postgres_server_url):
    server = services.start_pgbouncer(sovren_servers_dir / "pgbouncer", postgres_server_url)
    yield server
    services.stop(server)


@pytest.fixture
def bouncer_url(pgbouncer_server, pg_url) -> str:
    """The test's own database, reached through PgBouncer."""
    return with_database(pgbouncer_server.url, urlsplit(pg_url).path.lstrip("/"))


@pytest.fixture
def sentinel_group(tmp_path):
    group = services.start_sentinel_group(tmp_path / "sentinel")
    yield group
    for server in (group.sentinel, group.replica, group.master):
        services.stop(server)


@pytest.fixture
def sentinel_project(tmp_path, repo_root, pg_url, sentinel_group, monkeypatch):
    """The project copied, Postgres direct, Redis through the group's Sentinel (MongoDB left out)."""
    return use_project(repo_root, tmp_path / "project", monkeypatch, POSTGRES_URL=pg_url,
                       REDIS_URL=sentinel_group.url, SOVREN_DB_STORES="postgres,redis")


def isolate_replica(group) -> None:
    """Cut the replica off its master (a wrong masterauth, its link killed): what the master
    acknowledges from now on, a failover loses."""
    replica = redis_py.Redis(port=group.replica.port, password=group.password)
    replica.config_set("masterauth", "not-the-password")
    redis_py.Redis(port=group.master.port, password=group.password).client_kill_filter(_type="replica")
    deadline = time.monotonic() + 10
    while replica.info("replication")["master_link_status"] != "down":
        assert time.monotonic() < deadline, "the replica's link to its master stayed up"
        time.sleep(0.05)


def promoted(group) -> None:
    """Kill the master with kill -9 and wait until Sentinel names the replica as the master (and
    knows the old one, now listed as its replica, is down). The master dies before the replica
    gets its password back: the other way round, the replica could reconnect in between and
    receive what isolate_replica meant it to lose (a flaky test_sentinel_failover)."""
    os.kill(group.master.pid, signal.SIGKILL)
    redis_py.Redis(port=group.replica.port, password=group.password).config_set("masterauth", group.password)
    deadline = time.monotonic() + 60
    sentinel = redis_py.Redis(port=group.sentinel.port)
    while not (_serving(sentinel.sentinel_master(group.name), group.replica.port)
               and all(r["is_sdown"] for r in sentinel.sentinel_slaves(group.name) if r["port"] == group.master.port)):
        assert time.monotonic() < deadline, "Sentinel did not promote the replica"
        time.sleep(0.2)


def _serving(state: dict, port: int) -> bool:
    """Sentinel names ``port`` as a master it sees up (what redis-py's Sentinel asks before connecting)."""
    return state["port"] == port and state["is_master"] and not (state["is_sdown"] or state["is_odown"])


ARMED: list = []   # a group whose master fire_failover kills, once


def fire_failover() -> None:
    """Called from a test revision's upgrade(): the failover happens while migrate runs."""
    if ARMED:
        promoted(ARMED.pop())
