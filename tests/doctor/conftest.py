"""A migrated project on the session's Postgres and Redis, with pg_stat_statements and quiet Redis logs."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import redis

from sovren_db import commands
from sovren_db.core.config import load_settings
from tests.integration.conftest import copy_project

# The machine is shared: the tool's own round-trip sample must not decide these tests (one test lowers it).
CALM = {"redis_latency_ms": 1000, "statement_mean_ms": 200}


def set_thresholds(root: Path, **values: object) -> None:
    """Write [tool.sovren-db.doctor] into the project's pyproject.toml."""
    path = root / "pyproject.toml"
    text = path.read_text().split("\n[tool.sovren-db.doctor]\n")[0]
    body = "".join(f"{key} = {value!r}\n".replace("'", '"') for key, value in values.items())
    path.write_text(f"{text}\n[tool.sovren-db.doctor]\n{body}")


def quiet_redis(url: str) -> None:
    """The session's Redis is shared by every test: forget other tests' latency events and slow commands."""
    client = redis.Redis.from_url(url)
    client.execute_command("LATENCY", "RESET")
    client.slowlog_reset()
    client.config_set("maxmemory-policy", "volatile-lru")
    client.close()


@pytest.fixture
def doctor_project(tmp_path: Path, repo_root: Path, pg_url: str, redis_url: str,
                   monkeypatch: pytest.MonkeyPatch) -> Path:
    root = copy_project(repo_root, tmp_path / "project")
    for var in ("CI", "MONGO_URL", "SOVREN_ENV", "SOVREN_DB_STORES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,redis")
    monkeypatch.chdir(root)
    set_thresholds(root, **CALM)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    commands.migrate(load_settings(root))
    quiet_redis(redis_url)
    return root


def run_doctor(root: Path):
    return commands.doctor(load_settings(root))


def codes(outcome) -> set[str]:
    return {f.code for f in outcome.findings}


def login_role(pg_url: str, name: str, password: str) -> str:
    """Create a plain login role (dropped first if left over) and return ``pg_url`` logged in as it."""
    from urllib.parse import urlsplit

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {name}")
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
    parts = urlsplit(pg_url)
    return parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port}").geturl()
