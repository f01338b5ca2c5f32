"""Issue 17's round trip on real Postgres: features, pgbench, Sovren's own schema."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sovren_db.services.local import find_pg_bin

from .roundtrip import round_trip, run_sql, scalar

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.postgres


def test_feature_schema_round_trip(pg_url, second_pg_url, tmp_path):
    run_sql(pg_url, (HERE / "feature_schema.sql").read_text())
    steps = round_trip(pg_url, second_pg_url, tmp_path / "project")
    tables = (tmp_path / "project" / "postgres" / "tables.py").read_text()
    for feature in ("postgresql.ENUM('happy', 'sad', 'ok', name='mood')", "postgresql.DOMAIN('positive_amount'",
                    "sa.Computed(", "sa.Identity(always=True", "postgresql.ExcludeConstraint(",
                    "schema='billing'", "'Customer', metadata", "['employee.id']", "postgresql_include=['first_name']",
                    "ondelete='SET NULL'", "onupdate='CASCADE'"):
        assert feature in tables, feature
    # what Alembic does not compare still reaches the new database, exactly
    for sql in ("SELECT pg_get_viewdef('active_managers'::regclass, true)",
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE contype = 'x'",
                "SELECT format_type(typbasetype, typtypmod) FROM pg_type WHERE typname = 'positive_amount'",
                "SELECT pg_get_indexdef('employee_lower_last'::regclass)",
                "SELECT pg_get_serial_sequence('room', 'inventory_no')",
                # a % in a CHECK or a default reaches the new database as one % (not doubled by the renderer)
                "SELECT array_agg(pg_get_expr(adbin, adrelid) ORDER BY adnum) FROM pg_attrdef "
                "WHERE adrelid = 'room'::regclass",
                "SELECT array_agg(pg_get_constraintdef(oid) ORDER BY pg_get_constraintdef(oid)) FROM pg_constraint "
                "WHERE conrelid = 'room'::regclass"):
        assert scalar(pg_url, sql) == scalar(second_pg_url, sql), sql
    candidates = {f.object for f in steps["inspect"].findings if f.code == "personal-data-candidate"}
    assert {"column Customer.FullName", "column Customer.email", "column employee.first_name"} <= candidates
    assert "column booking.during" not in candidates


def test_pgbench_partitions_round_trip(pg_url, second_pg_url, tmp_path):
    pgbench = find_pg_bin("pgbench")   # shipped with the server binaries the harness uses
    assert pgbench, "pgbench not found beside initdb"
    subprocess.run([pgbench, "-i", "-q", "-I", "dtpf", "--partitions", "8", pg_url], check=True,
                   capture_output=True, timeout=120)
    round_trip(pg_url, second_pg_url, tmp_path / "project")
    assert (tmp_path / "project" / "postgres" / "baseline.sql").read_text().count("PARTITION OF") == 8
    assert scalar(second_pg_url, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'pgbench_accounts'::regclass") == 8
