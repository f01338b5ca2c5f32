"""Round trips: a live database -> inspect into an empty project -> baseline -> stamp -> check clean,
autogenerate empty -> the baseline applied to an empty database -> check clean."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import create_engine, text

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.env import sqlalchemy_url

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = """[tool.alembic]
script_location = "%(here)s/migrations"
file_template = "%%(rev)s_%%(slug)s"

[tool.sovren-db]
stores = {stores}
"""


def empty_project(root: Path, stores: tuple[str, ...] = ("postgres",)) -> Path:
    """A project with a revision directory and nothing declared yet."""
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        (root / "migrations" / name).write_text((REPO / "migrations" / name).read_text())
    (root / "pyproject.toml").write_text(PYPROJECT.replace("{stores}", json.dumps(list(stores))))
    return root


def settings_for(root: Path, url: str, redis_url: str | None = None):
    return load_settings(root, environ={"POSTGRES_URL": url, **({"REDIS_URL": redis_url} if redis_url else {})})


def run_sql(url: str, sql: str) -> None:
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(sql.replace("%", "%%"), ())   # with parameters, so %% is one % (a % in the SQL)
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
    outcome = commands.check(settings, data=True)  # with the keyspace audit where Redis is declared
    # fk-unindexed judges the adopted design (pgbench's own keys have no index), not drift: adoption must
    # neither add nor hide it, so it is left out here and nothing else may be found
    errors = [f.sentence() for f in outcome.findings if f.severity == "error" and f.code != "fk-unindexed"]
    assert not errors, errors
    assert outcome.exit_code == (1 if any(f.code == "fk-unindexed" for f in outcome.findings) else 0)
    empty = commands.revision(settings, "nothing", autogenerate=True)
    assert empty.exit_code == 1 and empty.lines == ["no differences found: no revision written"], empty.lines


def round_trip(live_url: str, empty_url: str, root: Path, *, redis_urls: tuple[str, str] | None = None) -> dict:
    """The issue's acceptance test; returns what each step said, for further assertions.
    ``redis_urls``: the live and the empty Redis, for a project declaring Redis too."""
    project = empty_project(root, ("postgres", "redis") if redis_urls else ("postgres",))
    live = settings_for(project, live_url, redis_urls[0] if redis_urls else None)
    inspected = commands.inspect(live)
    written = commands.baseline(live)
    stamped = commands.stamp(live, "head")
    assert stamped.exit_code == 0, [f.sentence() for f in stamped.findings]
    assert_clean(live)
    fresh = settings_for(project, empty_url, redis_urls[1] if redis_urls else None)
    migrated = commands.migrate(fresh)
    assert migrated.data["applied"], migrated.lines
    assert_clean(fresh)
    return {"inspect": inspected, "baseline": written, "stamp": stamped, "migrate": migrated}
