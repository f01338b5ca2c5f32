"""sovren_db_last_migrate_timestamp_seconds: written in the revision's own transaction, read by the exporter."""

from __future__ import annotations

import time

import psycopg
import psycopg.sql
import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.core.errors import SovrenError
from sovren_db.postgres.applied_at import last_applied
from tests.doctor.conftest import login_role
from tests.doctor.test_metrics import _metrics, _series
from tests.integration.conftest import add_revision


def applied_at(pg_url: str) -> float | None:
    with psycopg.connect(pg_url) as conn:
        return last_applied(conn)


def test_migrate_records_when_and_the_exporter_serves_it(doctor_project, pg_url):
    recorded = applied_at(pg_url)
    assert recorded is not None and time.time() - 600 < recorded <= time.time()
    series = _series(_metrics())
    assert series["sovren_db_last_migrate_timestamp_seconds"] == pytest.approx(recorded, abs=0.01)


def test_nothing_pending_leaves_it_and_a_new_revision_moves_it(doctor_project, pg_url):
    before = applied_at(pg_url)
    commands.migrate(load_settings(doctor_project))
    assert applied_at(pg_url) == before
    add_revision(doctor_project, "aa01", "    op.execute('CREATE TABLE probe_applied (id int)')",
                 "op.execute('DROP TABLE probe_applied')")
    commands.migrate(load_settings(doctor_project))
    moved = applied_at(pg_url)
    assert moved > before
    commands.downgrade(load_settings(doctor_project), "-1")
    assert applied_at(pg_url) > moved


def test_a_failed_revision_leaves_the_last_successful_time(doctor_project, pg_url):
    before = applied_at(pg_url)
    add_revision(doctor_project, "aa02", "    op.execute('SELECT no_such_function()')")
    with pytest.raises(SovrenError):
        commands.migrate(load_settings(doctor_project))
    assert applied_at(pg_url) == before


def test_a_role_that_does_not_own_the_version_table_migrates_without_it(doctor_project, pg_url, monkeypatch):
    """The comment needs ownership: a runner without it still migrates (the metric stays where it was)."""
    before = applied_at(pg_url)
    runner_url = login_role(pg_url, "applied_at_runner", "runner-pw")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("GRANT CREATE, USAGE ON SCHEMA public TO applied_at_runner")
        conn.execute("GRANT ALL ON ALL TABLES IN SCHEMA public TO applied_at_runner")
        conn.execute("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO applied_at_runner")
        conn.execute(psycopg.sql.SQL("GRANT CREATE ON DATABASE {} TO applied_at_runner").format(
            psycopg.sql.Identifier(conn.info.dbname)))
        if conn.execute("SELECT to_regnamespace('sovren_db')").fetchone()[0]:
            conn.execute("GRANT ALL ON SCHEMA sovren_db TO applied_at_runner")
            conn.execute("GRANT ALL ON ALL TABLES IN SCHEMA sovren_db TO applied_at_runner")
    monkeypatch.setenv("POSTGRES_URL", runner_url)
    try:
        add_revision(doctor_project, "aa03", "    op.execute('CREATE TABLE probe_owner (id int)')")
        outcome = commands.migrate(load_settings(doctor_project))
        assert "aa03" in outcome.data["applied"] and applied_at(pg_url) == before
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("REASSIGN OWNED BY applied_at_runner TO CURRENT_USER")
            conn.execute("DROP OWNED BY applied_at_runner")
            conn.execute("DROP ROLE applied_at_runner")
