"""doctor on a real Postgres: each probe crosses its threshold, is named, and the fix is said."""

from __future__ import annotations

import threading
import time

from urllib.parse import urlsplit

import psycopg
import pytest

from tests.doctor.conftest import codes, run_doctor, set_thresholds, CALM
from tests.integration.conftest import add_revision


def test_a_migrated_project_is_healthy(doctor_project):
    outcome = run_doctor(doctor_project)
    errors = [f for f in outcome.findings if f.severity == "error"]
    assert errors == [] and outcome.exit_code == 0
    assert outcome.data["stores"]["postgres"]["up"] and outcome.data["stores"]["redis"]["up"]


def test_a_slow_statement_is_named_by_its_normalised_text_only(doctor_project, pg_url):
    set_thresholds(doctor_project, **{**CALM, "statement_mean_ms": 100})
    with psycopg.connect(pg_url) as conn:
        conn.execute("SELECT pg_sleep(0.25), 'alice@example.com' AS email")
    outcome = run_doctor(doctor_project)
    slow = [f for f in outcome.findings if f.code == "slow-statement"]  # the migration's DDL may be slow too
    sleep = [f for f in slow if "pg_sleep($1)" in f.message]
    assert len(sleep) == 1 and "above 100 ms" in sleep[0].message and outcome.exit_code == 1
    assert not any("alice" in f.message or "0.25" in f.message for f in slow)


def test_invalid_index_missing_partition_unforced_rls_and_sequence(doctor_project, pg_url):
    set_thresholds(doctor_project, **{**CALM, "sequence_ratio": 0.5})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE dupes (v int)")
        conn.execute("INSERT INTO dupes VALUES (1), (1)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY dupes_v ON dupes (v)")
        coming = conn.execute("SELECT relname FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid "
                              "WHERE i.inhparent = 'operations'::regclass AND relname <> 'operations_default' "
                              "ORDER BY relname DESC LIMIT 1").fetchone()[0]
        conn.execute(f"DROP TABLE {coming}")
        conn.execute("ALTER TABLE payments NO FORCE ROW LEVEL SECURITY")
        conn.execute("CREATE SEQUENCE small_seq MAXVALUE 10")
        conn.execute("SELECT nextval('small_seq') FROM generate_series(1, 8)")
    outcome = run_doctor(doctor_project)
    by_code = {f.code: f for f in outcome.findings}
    assert "DROP INDEX CONCURRENTLY dupes_v" in by_code["invalid-index"].message
    assert coming in by_code["missing-partition"].message and "sovren-db partitions" in by_code["missing-partition"].message
    assert by_code["rls-not-forced"].object == "table payments"
    assert "80%" in by_code["sequence"].message and "public.small_seq" in by_code["sequence"].object
    assert outcome.exit_code == 1


def test_idle_in_transaction_and_blocked_sessions(doctor_project, pg_url):
    set_thresholds(doctor_project, **{**CALM, "idle_in_transaction_seconds": 0.2, "lock_wait_seconds": 0.2})
    holder = psycopg.connect(pg_url, application_name="holder")
    holder.execute("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")  # and now idle in transaction
    holder_pid = holder.info.backend_pid
    waiting = threading.Thread(target=_wait_for_users, args=(pg_url,))
    waiting.start()
    try:
        _until_blocked(pg_url)
        time.sleep(0.3)
        outcome = run_doctor(doctor_project)
    finally:
        holder.rollback()
        holder.close()
        waiting.join()
    idle = [f for f in outcome.findings if f.code == "idle-in-transaction"]
    blocked = [f for f in outcome.findings if f.code == "blocked"]
    assert any("holder" in f.object for f in idle)
    assert blocked and str(holder_pid) in blocked[0].message
    assert "SELECT" not in blocked[0].message  # sessions are never described by their query


def _wait_for_users(url: str) -> None:
    with psycopg.connect(url, application_name="waiter") as conn:
        conn.execute("SELECT count(*) FROM users")


def _until_blocked(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(200):
            if conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'waiter' "
                            "AND cardinality(pg_blocking_pids(pid)) > 0").fetchone()[0]:
                return
            time.sleep(0.02)
    raise AssertionError("the waiting session never blocked")


def test_pending_revisions_are_findings(doctor_project):
    add_revision(doctor_project, "d0c70e000001", "    op.execute('SELECT 1')")
    outcome = run_doctor(doctor_project)
    pending = [f for f in outcome.findings if f.code == "pending"]
    assert [f.object for f in pending] == ["revision d0c70e000001"] and outcome.exit_code == 1


def test_a_database_without_the_extension_is_one_sentence(doctor_project, pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP EXTENSION pg_stat_statements")
    outcome = run_doctor(doctor_project)
    gap = [f for f in outcome.findings if f.object == "pg_stat_statements"]
    assert len(gap) == 1 and "CREATE EXTENSION pg_stat_statements" in gap[0].message
    assert outcome.exit_code == 2 and outcome.data["stores"]["redis"]["up"]


def test_a_role_without_pg_read_all_stats_is_told_the_grant(doctor_project, pg_url, monkeypatch):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("SELECT pg_sleep(0.01)")
        conn.execute("DROP ROLE IF EXISTS doctor_reader")
        conn.execute("CREATE ROLE doctor_reader LOGIN PASSWORD 'pw'")
        conn.execute(f"GRANT CONNECT ON DATABASE {conn.info.dbname} TO doctor_reader")
    parts = urlsplit(pg_url)
    url = parts._replace(netloc=f"doctor_reader:pw@{parts.hostname}:{parts.port}").geturl()
    monkeypatch.setenv("POSTGRES_URL", url)
    try:
        outcome = run_doctor(doctor_project)
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"REVOKE CONNECT ON DATABASE {conn.info.dbname} FROM doctor_reader")
            conn.execute("DROP OWNED BY doctor_reader")
            conn.execute("DROP ROLE doctor_reader")
    grant = [f for f in outcome.findings if f.object == "pg_stat_statements"]
    assert grant and "GRANT pg_read_all_stats TO doctor_reader" in grant[0].message
    assert "pw" not in " ".join(f.sentence() for f in outcome.findings)
