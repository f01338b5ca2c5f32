"""Fixtures of the compliance tests: a migrated, seeded triad (Postgres + Redis; Mongo where a mongod exists)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from sovren_db import commands
from sovren_db.core.config import Settings, load_settings
from tests.integration.conftest import copy_project, project  # noqa: F401  (same per-test project)


@dataclass
class Triad:
    root: Path
    pg_url: str
    redis_url: str | None

    @property
    def settings(self) -> Settings:
        return load_settings(self.root)


def seed_ci(settings: Settings) -> None:
    from sovren_db.seeds.engine import seed

    seed(settings, "ci")


@pytest.fixture
def triad(project, pg_url, redis_url, monkeypatch) -> Triad:
    """Postgres and Redis (the stores declared) at head, seeded with the ci profile."""
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,redis")
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(project)
    commands.migrate(settings)
    seed_ci(settings)
    return Triad(project, pg_url, redis_url)


@pytest.fixture
def migrated(project, pg_url, monkeypatch) -> Triad:
    """Postgres only (the only store declared), at head, seeded."""
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres")
    settings = load_settings(project)
    commands.migrate(settings)
    seed_ci(settings)
    return Triad(project, pg_url, None)
