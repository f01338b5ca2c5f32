"""The exporter's drift stands on its last answer only while nothing check reads has changed (real servers)."""

from __future__ import annotations

import os

import psycopg
import pytest
import redis

from sovren_db.core.config import load_settings
from sovren_db.doctor.fingerprint import CACHE, fingerprint
from sovren_db.doctor.model import Examination
from sovren_db.doctor.schema import drift


def collect_drift(root):
    exam = Examination("schema")
    drift(load_settings(root), exam, set())
    cached = [s.value for s in exam.samples if s.name == "drift_from_cache"]
    return cached[0], {(f.code, f.object) for f in exam.findings if f.severity == "error"}


@pytest.fixture
def settled(doctor_project):
    CACHE.forget()
    assert collect_drift(doctor_project) == (0, set())  # a full compare, kept
    assert collect_drift(doctor_project) == (1, set())  # nothing changed: the kept answer
    return doctor_project


@pytest.mark.parametrize("ddl", [
    "ALTER TABLE users ADD COLUMN nickname text",
    "ALTER TABLE users ALTER COLUMN email DROP NOT NULL",
    "CREATE INDEX users_created_manual ON users (created_at)",
    "DROP POLICY payments_tenant_isolation ON payments",
    "ALTER TABLE payments NO FORCE ROW LEVEL SECURITY",
    "COMMENT ON TABLE users IS 'changed by hand'",
    "CREATE ROLE fingerprint_probe_role",
])
def test_any_ddl_leads_to_a_full_compare(settled, pg_url, ddl):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(ddl)
    try:
        cached, _ = collect_drift(settled)
        assert cached == 0
        assert collect_drift(settled)[0] == 1  # and that answer is kept in turn
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS fingerprint_probe_role")


def test_a_column_added_by_hand_is_reported_at_the_next_interval(settled, pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE users ADD COLUMN nickname text")
    cached, errors = collect_drift(settled)
    assert cached == 0 and any("users" in obj for _, obj in errors)


def test_rows_written_vacuum_and_analyze_keep_the_answer(settled, pg_url):
    """Workload and maintenance are not schema: they must not force the full compare every interval."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TEMP TABLE t AS SELECT 1")  # temp objects live in another session's namespace
        conn.execute("DROP TABLE t")
    key = fingerprint(load_settings(settled))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE users")
        conn.execute("ANALYZE")
    assert fingerprint(load_settings(settled)) == key


def test_a_declaration_edited_leads_to_a_full_compare(settled):
    models = next((settled / "postgres").rglob("*.py"))
    stat = models.stat()
    os.utime(models, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert collect_drift(settled)[0] == 0


def test_a_redis_change_leads_to_a_full_compare(settled, redis_url):
    client = redis.Redis.from_url(redis_url)
    before = client.config_get("notify-keyspace-events")["notify-keyspace-events"]
    client.config_set("notify-keyspace-events", "KEA" if before != "KEA" else "")
    try:
        assert collect_drift(settled)[0] == 0
    finally:
        client.config_set("notify-keyspace-events", before)
        client.close()


def test_a_revision_row_changed_leads_to_a_full_compare(settled, pg_url):
    key = fingerprint(load_settings(settled))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE alembic_version SET version_num = version_num")  # same revision: same answer
    assert fingerprint(load_settings(settled)) == key
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM alembic_version")  # as a downgrade to base records it
    assert fingerprint(load_settings(settled)) != key
    assert collect_drift(settled)[0] == 0


def test_an_unreachable_store_gives_no_fingerprint(settled, monkeypatch):
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert fingerprint(load_settings(settled)) is None
