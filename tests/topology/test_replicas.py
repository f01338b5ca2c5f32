"""A hot standby made with pg_basebackup: check reads it, migrate refuses it, --wait-replicas waits for it."""

from __future__ import annotations

import time
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest
from click.testing import CliRunner

from sovren_db import commands, services
from sovren_db.cli.main import cli
from sovren_db.core.config import load_settings
from sovren_db.core.urls import with_database
from sovren_db.seeds.snapshots import create_database
from tests.integration.conftest import copy_project

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def primary_and_replica(tmp_path_factory):
    base = tmp_path_factory.mktemp("replication")
    primary = services.start_postgres(base / "primary")
    try:
        replica = services.start_replica(base / "replica", primary)
    except Exception:
        services.stop(primary)
        raise
    yield primary, replica
    services.stop(replica)
    services.stop(primary)


@pytest.fixture
def urls(primary_and_replica) -> tuple[str, str]:
    primary, replica = primary_and_replica
    name = f"t_{uuid.uuid4().hex[:12]}"
    create_database(with_database(primary.url, "postgres"), name)
    replica_url = with_database(replica.url, name)
    deadline = time.monotonic() + 30
    while True:  # the new database reaches the standby by replay
        try:
            psycopg.connect(replica_url).close()
            break
        except psycopg.OperationalError:
            assert time.monotonic() < deadline, "the replica never saw the new database"
            time.sleep(0.1)
    return with_database(primary.url, name), replica_url


@pytest.fixture
def project(tmp_path, repo_root, monkeypatch):
    root = copy_project(repo_root, tmp_path / "project")
    for var in ("CI", "MONGO_URL", "REDIS_URL", "SOVREN_ENV", "POSTGRES_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres")
    monkeypatch.chdir(root)
    return root


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def head_on(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    return row[0] if row else None


def test_wait_replicas_returns_only_once_the_replica_replayed_each_revision(project, urls, monkeypatch):
    primary_url, replica_url = urls
    monkeypatch.setenv("POSTGRES_URL", primary_url)
    result = run("migrate", "--wait-replicas", "30")
    assert result.exit_code == 0, result.output
    assert "replayed by every replica after" in result.output and "bytes behind" in result.output
    assert head_on(replica_url) == head_on(primary_url) is not None  # read at once: no sleep in between


def test_check_runs_read_only_against_the_hot_standby(project, urls, monkeypatch):
    primary_url, replica_url = urls
    commands.migrate(load_settings(project.resolve(), environ={"POSTGRES_URL": primary_url,
                                                              "SOVREN_DB_STORES": "postgres"}),
                     wait_replicas=30)
    monkeypatch.setenv("POSTGRES_URL", replica_url)
    result = run("check")
    assert result.exit_code == 0, result.output
    with psycopg.connect(primary_url) as conn:  # the standby check took no lease (it could not write one)
        assert conn.execute("SELECT count(*) FROM sovren_db.migration_lease").fetchone()[0] == 0


def test_migrate_on_a_standby_is_refused_in_one_sentence(project, urls, monkeypatch):
    _, replica_url = urls
    monkeypatch.setenv("POSTGRES_URL", replica_url)
    result = run("migrate")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "is a hot standby (read-only replica): migrate refused" in lines[0]
    assert urlsplit(replica_url).password not in result.output


def test_a_replica_that_does_not_replay_fails_the_wait_naming_it(project, urls, monkeypatch, primary_and_replica):
    primary_url, replica_url = urls
    monkeypatch.setenv("POSTGRES_URL", primary_url)
    with psycopg.connect(replica_url, autocommit=True) as standby:
        standby.execute("SELECT pg_wal_replay_pause()")
        try:
            result = run("migrate", "--wait-replicas", "1")
        finally:
            standby.execute("SELECT pg_wal_replay_resume()")
    assert result.exit_code == 2
    assert "had not replayed it after 1 s (--wait-replicas)" in result.output
    assert f"replica{primary_and_replica[1].port}" in result.output
