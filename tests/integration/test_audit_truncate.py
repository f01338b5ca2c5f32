"""Issue 13, "complete": a TRUNCATE of an audited table leaves an event (revision 8b4f1d6c2e90).

Statement-level AFTER TRUNCATE triggers on users, operations (and each of its partitions: Postgres
truncates them too, and a partition can be truncated alone) and payments call sovren_audit_stage, on
whichever capture path the run's migration chose (the C library by default where `make pgext` built
it; SOVREN_DB_AUDIT_CAPTURE=plpgsql for the fallback; the byte comparison below runs both in one
database). The event: action TRUNCATE, user_id NULL, the statement's shape, details
{"key": null, "changed": [every column]}.
"""

from __future__ import annotations

import json
import re
import uuid

import psycopg
import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.postgres import audit_capture
from sovren_db.postgres.state import normalise_sql
from sovren_db.services.local import AUDIT_LIBRARY_DIR
from tests.integration.test_audit_native import add_user, chain_ok

pytestmark = pytest.mark.postgres

REVISION, PREVIOUS = "8b4f1d6c2e90", "c4e8f1a2b3d5"
EVENTS = "SELECT table_name, action, user_id, query, event_payload FROM audit_log ORDER BY event_id"
TRUNCATE_TRIGGERS = ("SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                     "WHERE t.tgname LIKE '%\\_audit\\_truncate' ORDER BY 1")
STAGE = "SELECT l.lanname, p.prosrc FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE proname = 'sovren_audit_stage'"


def stage(conn) -> tuple[str, str]:
    language, body = conn.execute(STAGE).fetchone()
    return language, normalise_sql(body)


@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return pg_url


def add_payment(conn, user_id: str) -> None:
    conn.execute("INSERT INTO payments (payment_id, user_id, amount, currency, provider, provider_token) "
                 "VALUES (gen_random_uuid(), %s, 1.00, 'USD', 'stripe', 'tok_1')", (user_id,))


def add_operation(conn, user_id: str) -> None:
    conn.execute("INSERT INTO operations (operation_id, user_id, parameters, confidence) "
                 "VALUES (gen_random_uuid(), %s, '{}', 0.5)", (user_id,))


def truncations(conn) -> list[tuple]:
    return [row for row in conn.execute(EVENTS).fetchall() if row[1] == "TRUNCATE"]


def columns(conn, table: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT attname::text FROM pg_attribute WHERE attrelid = %s::regclass "
                                       "AND attnum > 0 AND NOT attisdropped ORDER BY attname::text", (table,))]


def partitions(conn, table: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                       "WHERE i.inhparent = %s::regclass", (table,))]


def seeded(conn) -> int:
    """A user with a payment and an operation, committed; how many events the log then holds."""
    user = str(add_user(conn, f"t{uuid.uuid4().hex[:6]}"))
    add_payment(conn, user)
    add_operation(conn, user)
    conn.commit()
    return conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]


def test_the_application_role_may_not_truncate_an_audited_table(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        for table in ("users", "operations", "payments"):
            assert not conn.execute("SELECT has_table_privilege('sovren_app', %s, 'TRUNCATE')", (table,)).fetchone()[0]
        conn.execute("SET ROLE sovren_app")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE payments")


def test_a_truncate_leaves_one_event_without_row_data(migrated):
    with psycopg.connect(migrated) as conn:
        before = seeded(conn)
        conn.execute("TRUNCATE payments /* 4111111111111111 */")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM payments").fetchone()[0] == 0
        (table, action, user_id, query, payload), = truncations(conn)
        assert (table, action, user_id, query.strip()) == ("payments", "TRUNCATE", None, "TRUNCATE payments")
        event = json.loads(payload)
        assert event["details"] == {"key": None, "changed": columns(conn, "payments")}
        assert event["user_id"] is None and event["v"] == 3
        assert payload == conn.execute("SELECT %s::jsonb::text", (payload,)).fetchone()[0]   # jsonb's own text
    chain_ok(migrated, before + 1)


def test_a_cascade_leaves_one_event_per_audited_table_truncated(migrated):
    with psycopg.connect(migrated) as conn:
        before = seeded(conn)
        conn.execute("TRUNCATE users CASCADE")   # also subscriptions and transactions: not audited
        conn.commit()
        expected = sorted(["users", "operations", "payments", *partitions(conn, "operations")])
        assert sorted(row[0] for row in truncations(conn)) == expected
        assert len(expected) > 4   # operations' months and default are tables Postgres truncated too
    chain_ok(migrated, before + len(expected))


def test_a_partition_truncated_alone_leaves_its_event(migrated):
    with psycopg.connect(migrated) as conn:
        part = conn.execute("SELECT relname FROM pg_class WHERE relname LIKE 'operations\\_p%' "
                            "ORDER BY relname LIMIT 1").fetchone()[0]
        conn.execute(f"TRUNCATE {part}")
        conn.commit()
        assert [row[0] for row in truncations(conn)] == [part]
    chain_ok(migrated, 1)


def test_a_rolled_back_truncate_leaves_nothing(migrated):
    with psycopg.connect(migrated) as conn:
        before = seeded(conn)
        conn.execute("TRUNCATE users CASCADE")
        conn.rollback()
        conn.execute("SAVEPOINT a")
        conn.execute("TRUNCATE payments")
        conn.execute("ROLLBACK TO SAVEPOINT a")
        conn.execute("SAVEPOINT b")
        conn.execute("TRUNCATE users CASCADE")
        conn.execute("ROLLBACK TO SAVEPOINT b")
        conn.execute("TRUNCATE operations")   # the one kept: operations and its partitions
        conn.commit()
        kept = sorted(["operations", *partitions(conn, "operations")])
        assert sorted(row[0] for row in truncations(conn)) == kept
        assert conn.execute("SELECT count(*) FROM payments").fetchone()[0] == 1
    chain_ok(migrated, before + len(kept))


MASKED = re.compile(r'"(at|accessed_at|prev_hash)": "[^"]*"|"(chain)": [0-9]+')


def masked(payload: str) -> str:
    """The payload with what differs between two commits (times, chain, link) blanked."""
    return MASKED.sub(lambda m: f'"{m.group(1) or m.group(2)}": _', payload)


def on_both_paths(project, pg_url, monkeypatch):
    """A migration choosing plpgsql, then a connection on each path: plpgsql, then the C function swapped in
    (as revision 5e1c0a7b9d21 installs it). Skips, saying why, where the library is not built."""
    if not (AUDIT_LIBRARY_DIR / "sovren_audit.so").exists():
        pytest.skip("pgext/sovren_audit is not built (make pgext): only the plpgsql path can run")
    monkeypatch.setenv("SOVREN_DB_AUDIT_CAPTURE", "plpgsql")
    commands.migrate(load_settings(project))
    for path in ("plpgsql", "native"):
        with psycopg.connect(pg_url) as conn:
            if path == "native":
                conn.execute(audit_capture.NATIVE_STAGE)
                conn.execute(audit_capture.OWNER_ONLY)
                conn.commit()
            assert audit_capture.native_installed(conn) == (path == "native")
            yield path, conn


def test_both_capture_paths_write_the_same_bytes(project, pg_url, monkeypatch):
    """plpgsql first, then the C function swapped in (as revision 5e1c0a7b9d21 installs it): the same
    statements give payloads that differ only in the times, the chain and the link."""
    payloads = {}
    for path, conn in on_both_paths(project, pg_url, monkeypatch):
        seeded(conn)
        # ids tell no order across commits (each commit takes a free chain); created_at does
        since = conn.execute("SELECT max(created_at) FROM audit_log").fetchone()[0]
        conn.execute("TRUNCATE users CASCADE")
        conn.commit()
        payloads[path] = sorted(masked(p) for p, in conn.execute(
            "SELECT event_payload FROM audit_log WHERE created_at > %s", (since,)))
    assert len(payloads["plpgsql"]) > 3 and payloads["plpgsql"] == payloads["native"]
    with psycopg.connect(pg_url) as conn:
        total = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    chain_ok(pg_url, total)


def test_the_downgrade_removes_the_triggers_and_the_upgrade_puts_them_back(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings, PREVIOUS)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        stage_before = stage(conn)
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        parts = partitions(conn, "operations")
        expected = sorted([(t, f"{t}_audit_truncate") for t in ("users", "operations", "payments")]
                          + [(p, "operations_audit_truncate") for p in parts])
        assert sorted(conn.execute(TRUNCATE_TRIGGERS).fetchall()) == expected
    commands.downgrade(settings, PREVIOUS)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(TRUNCATE_TRIGGERS).fetchall() == []
        assert stage(conn) == stage_before   # the function as it was (as `check` compares bodies), on either path
        seeded(conn)
        conn.execute("TRUNCATE users CASCADE")
        conn.commit()
        assert truncations(conn) == []   # the gap, back
        total = conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]
    commands.migrate(settings)
    with psycopg.connect(pg_url) as conn:
        assert sorted(conn.execute(TRUNCATE_TRIGGERS).fetchall()) == expected
        conn.execute("TRUNCATE payments")
        conn.commit()
        assert [row[0] for row in truncations(conn)] == ["payments"]
    chain_ok(pg_url, total + 1)
    assert commands.check(settings).exit_code == 0



def test_a_replica_session_truncates_without_an_event_as_it_writes_rows(migrated):
    """What bench/audit_write.py's reset relies on (session_replication_role is a superuser's setting,
    which turns the row triggers off alike): the audit is bypassed the same way for both."""
    with psycopg.connect(migrated) as conn:
        conn.execute("SET session_replication_role = replica")
        seeded(conn)
        conn.execute("TRUNCATE users CASCADE")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] == 0
        conn.execute("SET session_replication_role = origin")
        conn.execute("TRUNCATE users CASCADE")
        conn.commit()
        kept = 3 + len(partitions(conn, "operations"))
        assert len(truncations(conn)) == kept
    chain_ok(migrated, kept)


def test_a_partition_made_later_by_sovren_db_partitions_is_audited_too(migrated, project):
    from sovren_db.cli.partitions import maintain

    created = maintain(load_settings(project), months_ahead=4)["operations"]["created"]
    assert len(created) == 1
    with psycopg.connect(migrated) as conn:
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = %s::regclass "
                            "AND tgname = 'operations_audit_truncate'", (created[0],)).fetchone()[0] == 1
        conn.execute(f"TRUNCATE {created[0]}")
        conn.commit()
        assert [row[0] for row in truncations(conn)] == created
    chain_ok(migrated, 1)


def revision_sql(project, direction: str, revision: str = REVISION) -> str:
    """The revision's SQL as `--sql` writes it: no server to ask which stage function is installed."""
    import importlib.util
    import io

    from alembic.migration import MigrationContext
    from alembic.operations import Operations

    import sovren_db.postgres.ops  # noqa: F401 - registers create_trigger and drop_trigger

    path = next((project / "migrations" / "versions").glob(f"{revision}_*.py"))
    spec = importlib.util.spec_from_file_location("revision", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name="postgresql", dialect_opts={"paramstyle": "named"},  # as env.py
                                         opts={"as_sql": True, "output_buffer": buffer})
    with Operations.context(context):
        getattr(module, direction)()
    return buffer.getvalue()


def test_the_offline_sql_does_what_the_online_revision_does(project, pg_url, monkeypatch):
    monkeypatch.setenv("SOVREN_DB_AUDIT_CAPTURE", "plpgsql")
    settings = load_settings(project)
    commands.migrate(settings, PREVIOUS)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        before = stage(conn)
        conn.execute(revision_sql(project, "upgrade"))
        assert len(conn.execute(TRUNCATE_TRIGGERS).fetchall()) == 3 + len(partitions(conn, "operations"))
        assert stage(conn) != before and "'TRUNCATE'" in stage(conn)[1]
        conn.execute("TRUNCATE payments")
        assert [row[0] for row in truncations(conn)] == ["payments"]
        conn.execute(revision_sql(project, "downgrade"))
        assert conn.execute(TRUNCATE_TRIGGERS).fetchall() == [] and stage(conn) == before
