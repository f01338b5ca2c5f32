"""Targets: [tool.sovren-db.targets.eu] / .us, env overrides, --target NAME, --target all as a matrix."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from click.testing import CliRunner

from sovren_db.cli.main import cli
from sovren_db.core.urls import with_database
from sovren_db.seeds.snapshots import create_database
from sovren_db.services import free_port
from tests.integration.conftest import copy_project

pytestmark = pytest.mark.postgres


@pytest.fixture
def regions(tmp_path, repo_root, postgres_server_url, monkeypatch):
    urls = {}
    for region in ("eu", "us"):
        name = f"t_{region}_{uuid.uuid4().hex[:10]}"
        create_database(with_database(postgres_server_url, "postgres"), name)
        urls[region] = with_database(postgres_server_url, name)
    root = copy_project(repo_root, tmp_path / "project")
    with (root / "pyproject.toml").open("a") as toml:
        # the project file names hosts only; the passwords come from the environment, as in production
        for region in urls:
            toml.write(f'\n[tool.sovren-db.targets.{region}]\npostgres_url = "postgresql://nobody@127.0.0.1:1/x"\n'
                       f'environment = "{region}-staging"\n')
    for var in ("CI", "MONGO_URL", "REDIS_URL", "POSTGRES_URL", "SOVREN_ENV"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres")
    for region, url in urls.items():
        monkeypatch.setenv(f"SOVREN_TARGET_{region.upper()}_POSTGRES_URL", url)
    monkeypatch.chdir(root)
    return urls


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def head(url: str):
    with psycopg.connect(url) as conn:
        exists = conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0]
        return conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] if exists else None


def test_one_target_migrates_alone_and_the_matrix_shows_the_other_behind(regions):
    assert run("--target", "eu", "migrate").exit_code == 0
    assert head(regions["eu"]) is not None and head(regions["us"]) is None
    status = run("--target", "all", "status")
    assert status.exit_code == 1, status.output
    rows = [line for line in status.output.splitlines() if line.strip()]
    assert any(r.startswith("eu") and "postgres" in r and "exit 0" in r for r in rows), rows
    assert any(r.startswith("us") and "postgres" in r and "pending" in r for r in rows), rows


def test_all_targets_migrate_and_check_clean(regions):
    migrated = run("--target", "all", "migrate")
    assert migrated.exit_code == 0, migrated.output
    assert head(regions["eu"]) == head(regions["us"]) is not None
    checked = run("--target", "all", "check")
    assert checked.exit_code == 0, checked.output
    assert checked.output.count("clean") >= 2


def test_one_unreachable_target_does_not_hide_the_other_and_the_exit_is_the_worst(regions, monkeypatch):
    monkeypatch.setenv("SOVREN_TARGET_US_POSTGRES_URL", f"postgresql://sovren:secret@127.0.0.1:{free_port()}/x")
    result = run("--target", "all", "migrate")
    assert result.exit_code == 2
    eu = [line for line in result.output.splitlines() if line.startswith("eu")]
    us = [line for line in result.output.splitlines() if line.startswith("us")]
    assert eu and "exit 0" in eu[0] and head(regions["eu"]) is not None
    assert us and "exit 2" in us[0] and "postgres server at" in us[0] and "secret" not in result.output


def test_an_unknown_target_is_one_sentence(regions):
    result = run("--target", "apac", "status")
    assert result.exit_code == 2
    assert "no target 'apac' in [tool.sovren-db.targets] (known: eu, us)" in result.output


def test_doctor_examines_every_target_a_row_a_store(regions, monkeypatch):
    assert run("--target", "eu", "migrate").exit_code == 0
    with psycopg.connect(regions["eu"], autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    with open("pyproject.toml", "a") as toml:  # the machine is shared: no statement of the migration is "slow"
        toml.write("\n[tool.sovren-db.doctor]\nstatement_mean_ms = 100000\n")
    monkeypatch.setenv("SOVREN_TARGET_US_POSTGRES_URL", f"postgresql://sovren:secret@127.0.0.1:{free_port()}/x")
    result = run("--target", "all", "doctor")
    rows = [line for line in result.output.splitlines() if line.strip()]
    eu = [r for r in rows if r.startswith("eu")]
    us = [r for r in rows if r.startswith("us")]
    assert any("postgres" in r and "exit 0" in r and "healthy" in r for r in eu), rows  # not the other's exit
    assert any("schema" in r and "healthy" in r for r in eu), rows
    assert any("postgres" in r and "exit 2" in r and "down" in r for r in us), rows
    assert result.exit_code == 2 and "secret" not in result.output
