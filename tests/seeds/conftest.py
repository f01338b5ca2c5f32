"""A migrated triad per test: the project copied, Postgres and Redis from the harness, MongoDB where a
mongod exists (declared either way, so its documents are always generated and validated)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from tests.integration.conftest import project  # noqa: F401  (the same per-test project)

from .helpers import ALL_STORES


def mongo_available() -> bool:
    return bool(os.environ.get("MONGO_URL") or shutil.which("mongod"))


def use_mongo_database(root: Path, name: str) -> None:
    """Point the copied project's default Mongo database at the test's own as well."""
    path = root / "pyproject.toml"
    path.write_text(re.sub(r'(?m)^mongo_database = ".*"$', f'mongo_database = "{name}"', path.read_text()))


@pytest.fixture
def triad(project: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """The project at head in every configured store; returns its root (the current folder)."""
    monkeypatch.setenv("SOVREN_DB_STORES", ALL_STORES)
    monkeypatch.setenv("REDIS_URL", redis_url)
    if mongo_available():
        mongo_url = request.getfixturevalue("mongo_url")
        use_mongo_database(project, mongo_url.rsplit("/", 1)[1].split("?")[0])
        monkeypatch.setenv("MONGO_URL", mongo_url)
    commands.migrate(load_settings(project))
    return project
