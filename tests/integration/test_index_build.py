"""Concurrent index builds leave the workload its cores (bounded parallel workers, configurable
memory, set on the migration's session before the build) and print their progress."""

from __future__ import annotations

import threading

import psycopg
import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from sovren_db import commands
from sovren_db.core.config import load_settings
from tests.integration.conftest import add_revision
from tests.integration.test_lock_wait import TABLES, set_keys

pg = pytest.mark.postgres

INDEX = """    with op.get_context().autocommit_block():
        op.create_index_concurrently("ix_acc_name", "acc", ["name"])"""


@pg
def test_a_build_runs_with_the_configured_workers_and_memory_and_reports_its_progress(project, pg_url, capfd):
    add_revision(project, "a1live", TABLES)
    commands.migrate(load_settings(project))
    add_revision(project, "a2index", INDEX)
    set_keys(project, index_build_memory="64MB")
    path = project / "pyproject.toml"
    path.write_text(path.read_text().replace("[tool.sovren-db]\n", "[tool.sovren-db]\nindex_build_workers = 1\n", 1))
    # A transaction holding an old snapshot for 3 s: the build waits for it in its last phase.
    reader = psycopg.connect(pg_url)
    reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    reader.execute("SELECT count(*) FROM ops").fetchone()
    timer = threading.Timer(3.0, reader.commit)
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, *rest) -> None:
        sent.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    timer.start()
    try:
        commands.migrate(load_settings(project))
    finally:
        event.remove(Engine, "before_cursor_execute", record)
        timer.join()
        reader.close()
    err = capfd.readouterr().err
    assert "building index ix_acc_name on acc: waiting for old snapshots" in err
    build = next(i for i, (sql, _) in enumerate(sent) if sql.startswith("CREATE INDEX CONCURRENTLY"))
    settings = {p["v"] for sql, p in sent[:build] if "set_config('max_parallel_maintenance_workers'" in sql}
    memory = {p["v"] for sql, p in sent[:build] if "set_config('maintenance_work_mem'" in sql}
    assert settings == {"1"} and memory == {"64MB"}
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_acc_name'::regclass"
                            ).fetchone() == (True,)


@pg
def test_by_default_a_build_uses_no_parallel_workers(project, pg_url):
    add_revision(project, "a1live", TABLES)
    add_revision(project, "a2index", INDEX)
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, *rest) -> None:
        sent.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        commands.migrate(load_settings(project))
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    workers = [p["v"] for sql, p in sent if "max_parallel_maintenance_workers" in sql]
    assert workers and set(workers) == {"0"}  # every concurrent build of the chain, this revision's included
    assert not [sql for sql, _ in sent if "maintenance_work_mem" in sql]
