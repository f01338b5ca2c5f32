"""`check`'s advice for a partition whose audit trigger is disabled, followed as written, on a real Postgres.

sovren_audit_cover_partitions() counts a disabled trigger as present (disabling one is an owner's act, as on
the parent), so partition-trigger-missing's advice to run it changed nothing for a disabled trigger: the
finding stood after the advice was followed. It now names the trigger disabled and the statement enabling it.
"""

from __future__ import annotations

import psycopg
import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from tests.integration.test_audit_attack import insert_naming
from tests.integration.test_audit_native import add_user
from tests.integration.test_audit_partitions_dml import count as events

pytestmark = pytest.mark.postgres


@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return pg_url


def advice(project) -> list[str]:
    return [f.message for f in commands.check(load_settings(project)).findings
            if f.code == "partition-trigger-missing"]


def test_a_disabled_partition_trigger_is_named_disabled_and_the_advice_given_enables_it(migrated, project):
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn, "disabled")
        conn.execute("CREATE TABLE op_disabled PARTITION OF operations FOR VALUES FROM ('2041-01-01') TO ('2041-02-01')")  # insert_naming's month
        conn.execute("ALTER TABLE op_disabled DISABLE TRIGGER operations_audit_insert")
        conn.execute("SELECT sovren_audit_cover_partitions()")   # the other advice: it does not enable it
        before = events(conn)
        insert_naming(conn, "op_disabled", user)
        assert events(conn) == before
    said = advice(project)
    assert len(said) == 1 and "operations_audit_insert of operations disabled" in said[0]
    statement = said[0].split("the owner's ")[1].rstrip(")")
    assert statement == "ALTER TABLE op_disabled ENABLE TRIGGER operations_audit_insert"
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute(statement)
        before = events(conn)
        insert_naming(conn, "op_disabled", user)
        assert events(conn) > before
    assert advice(project) == [] and commands.check(load_settings(project)).exit_code == 0


def test_a_missing_trigger_beside_a_disabled_one_gets_both_advices(migrated, project):
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("CREATE TABLE op_both PARTITION OF operations FOR VALUES FROM ('2043-01-01') TO ('2043-02-01')")
        conn.execute("ALTER TABLE op_both DISABLE TRIGGER operations_audit_update")
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_drop DISABLE")
        conn.execute("DROP TRIGGER operations_audit_delete ON op_both")
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_drop ENABLE")
    said = advice(project)
    assert len(said) == 1
    assert "lacks the statement trigger(s) operations_audit_delete" in said[0]
    assert "ALTER TABLE op_both ENABLE TRIGGER operations_audit_update" in said[0]
