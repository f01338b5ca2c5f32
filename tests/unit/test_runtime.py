"""Runtime bookkeeping that needs no server: what it asks Postgres, and how often."""

from __future__ import annotations

from pathlib import Path

from sovren_db.core import runtime as runtime_module
from sovren_db.core.config import load_settings
from sovren_db.core.runtime import FRAMEWORK_TABLES, Runtime

REPO = Path(__file__).resolve().parents[2]


class NoQueries:
    def execute(self, *args, **kwargs):
        raise AssertionError("no query expected")


def test_sovren_dbs_own_tables_are_left_out_without_reading_the_partitions():
    include = Runtime(load_settings(REPO, environ={})).include_object(NoQueries())
    for name in FRAMEWORK_TABLES:
        assert include(None, name, "table", True, None) is False
    assert include(None, "users", "table", False, None) is True  # declared, not reflected


def test_waiting_steps_are_asked_of_postgres_once_a_run(monkeypatch):
    asked: list[object] = []
    monkeypatch.setattr(runtime_module, "waiting_moves", lambda connection: asked.append(connection) or {})
    runtime = Runtime(load_settings(REPO, environ={}))
    for _ in range(5):
        assert not runtime.waiting(NoQueries()).get("redis")
        assert not runtime.waiting(NoQueries()).get("mongo")
    assert len(asked) == 1
