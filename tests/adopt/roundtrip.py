"""Round trips: a live database -> inspect into an empty project -> baseline -> stamp -> check clean,
autogenerate empty -> the baseline applied to an empty database -> check clean."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.core.urls import with_database
from sovren_db.env import sqlalchemy_url

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = """[tool.alembic]
script_location = "%(here)s/migrations"
file_template = "%%(rev)s_%%(slug)s"

[tool.sovren-db]
stores = ["postgres"]
"""


def empty_project(root: Path) -> Path:
    """A project with a revision directory and nothing declared yet."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        (root / "migrations" / name).write_text((REPO / "migrations" / name).read_text())
    (root / "pyproject.toml").write_text(PYPROJECT)
    return root


def settings_for(root: Path, url: str):
    return load_settings(root, environ={"POSTGRES_URL": url})


def run_sql(url: str, sql: str) -> None:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def scalar(url: str, sql: str):
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def assert_clean(settings) -> None:
    outcome = commands.check(settings)
    errors = [f.sentence() for f in outcome.findings if f.severity == "error"]
    assert outcome.exit_code == 0 and not errors, errors
    empty = commands.revision(settings, "nothing", autogenerate=True)
    assert empty.exit_code == 1 and empty.lines == ["no differences found: no revision written"], empty.lines


def round_trip(live_url: str, empty_url: str, root: Path) -> dict:
    """The issue's acceptance test; returns what each step said, for further assertions."""
    project = empty_project(root)
    live = settings_for(project, live_url)
    inspected = commands.inspect(live)
    written = commands.baseline(live)
    stamped = commands.stamp(live, "head")
    assert stamped.exit_code == 0, [f.sentence() for f in stamped.findings]
    assert_clean(live)
    fresh = settings_for(project, empty_url)
    migrated = commands.migrate(fresh)
    assert migrated.data["applied"], migrated.lines
    assert_clean(fresh)
    return {"inspect": inspected, "baseline": written, "stamp": stamped, "migrate": migrated}
