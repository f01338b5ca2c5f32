"""Issue 13, "complete": DML naming a partition of an audited table leaves its events (revision e7a2c9d4b61f).

A statement-level trigger of a partitioned table fires only for statements naming it; Postgres does not
clone statement triggers to partitions, so `INSERT INTO operations_p2026_12 ...` (the owner's or a
superuser's write: the application roles hold no grant on partitions) left no event. Each partition of
operations now carries operations_audit_insert, _update and _delete (REFERENCING transition tables, as on
the parent; Postgres 15 allows them on a partition's statement triggers, only row triggers may not have
them), given by the revision to the partitions present and by ensure_partitions to those made later. The
events name the parent (`operations`), byte for byte those a statement on the parent writes for the same
rows but for the statement's shape. Runs on whichever capture path the run's migration chose
(SOVREN_DB_AUDIT_CAPTURE=plpgsql for the fallback; the Makefile's AUDIT_TESTS runs both).
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from tests.integration.test_audit_native import add_user, chain_ok
from tests.integration.test_audit_truncate import masked, on_both_paths, partitions, revision_sql, stage

pytestmark = pytest.mark.postgres

REVISION, PREVIOUS = "e7a2c9d4b61f", "8b4f1d6c2e90"
DML = ("insert", "update", "delete")
PARTITION_TRIGGERS = ("SELECT c.relname, t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                      "JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = 'operations'::regclass "
                      "WHERE t.tgname IN ('operations_audit_insert', 'operations_audit_update', "
                      "'operations_audit_delete') ORDER BY 1, 2")

@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return pg_url


def this_month(conn) -> str:
    return conn.execute("SELECT 'operations_p' || to_char(now(), 'YYYY_MM')").fetchone()[0]


def count(conn) -> int:
    return conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]


def operation_events(conn, since: int = 0) -> list[tuple[str, str, dict]]:
    """(table_name, action, payload) of every event about operations, in order, after the first ``since``."""
    rows = conn.execute("SELECT table_name, action, event_payload FROM audit_log "
                        "WHERE table_name LIKE 'operations%' ORDER BY created_at, event_id").fetchall()
    return [(t, a, json.loads(p)) for t, a, p in rows][since:]


def write(conn, target: str, user: str, ids: list[str]) -> None:
    """Two rows inserted, updated and deleted by statements naming ``target`` (operations or a partition)."""
    conn.execute(f"INSERT INTO {target} (operation_id, user_id, parameters, confidence, executed_at) "
                 "SELECT id::uuid, %s, '{}', 0.5, date_trunc('month', now()) + interval '1 day' "
                 "FROM unnest(%s::text[]) AS id", (user, ids))
    conn.execute(f"UPDATE {target} SET confidence = 0.9 WHERE operation_id = ANY(%s::uuid[])", (ids,))
    conn.execute(f"DELETE FROM {target} WHERE operation_id = ANY(%s::uuid[])", (ids,))


def two_ids() -> list[str]:
    return sorted(str(uuid.uuid4()) for _ in range(2))


def test_insert_update_and_delete_naming_a_partition_leave_their_events(migrated):
    with psycopg.connect(migrated) as conn:
        user, ids, part = add_user(conn, f"p{uuid.uuid4().hex[:6]}"), two_ids(), this_month(conn)
        conn.commit()
        before = count(conn)
        write(conn, part, user, ids)
        conn.commit()
        events = operation_events(conn)
        assert [(t, a) for t, a, _ in events] == [("operations", a) for a in ("INSERT",) * 2 + ("UPDATE",) * 2
                                                  + ("DELETE",) * 2]
        for (_, action, event), changed in zip(events, [None, None, ["confidence"], ["confidence"], None, None]):
            assert event["table"] == "operations" and event["user_id"] == user
            assert event["details"]["key"]["operation_id"] in ids and part in event["query"]
            if changed:
                assert event["details"]["changed"] == changed
            else:
                assert "executed_at" in event["details"]["changed"]
        assert sorted(e["details"]["key"]["operation_id"] for _, a, e in events if a == "INSERT") == ids
        total = count(conn)
        assert total == before + 6
    chain_ok(migrated, total)


def test_a_statement_on_the_parent_still_leaves_exactly_one_event_per_row(migrated):
    with psycopg.connect(migrated) as conn:
        user, ids = add_user(conn, f"p{uuid.uuid4().hex[:6]}"), sorted(str(uuid.uuid4()) for _ in range(3))
        conn.commit()
        write(conn, "operations", user, ids)
        conn.commit()
        events = operation_events(conn)
        assert [a for _, a, _ in events] == ["INSERT"] * 3 + ["UPDATE"] * 3 + ["DELETE"] * 3
        for action in ("INSERT", "UPDATE", "DELETE"):
            assert sorted(e["details"]["key"]["operation_id"] for _, a, e in events if a == action) == ids
        total = count(conn)
    chain_ok(migrated, total)


def test_the_events_are_those_of_the_parent_but_for_the_statement(migrated):
    """The same rows written through the parent, then through the partition: the payloads differ only in
    times, chain, link and the statement's shape (which names the partition)."""
    with psycopg.connect(migrated) as conn:
        user, ids, part = add_user(conn, f"p{uuid.uuid4().hex[:6]}"), two_ids(), this_month(conn)
        conn.commit()
        payloads = {}
        for target in ("operations", part):
            since = len(operation_events(conn))
            write(conn, target, user, ids)
            conn.commit()
            payloads[target] = [masked(json.dumps({**e, "query": target in e["query"]}, sort_keys=True))
                                for _, _, e in operation_events(conn, since)]
        assert len(payloads[part]) == 6 and payloads[part] == payloads["operations"]
        total = count(conn)
    chain_ok(migrated, total)


def test_a_rolled_back_write_to_a_partition_leaves_nothing(migrated):
    with psycopg.connect(migrated) as conn:
        user, part = add_user(conn, f"p{uuid.uuid4().hex[:6]}"), this_month(conn)
        conn.commit()
        before = count(conn)
        write(conn, part, user, two_ids())
        conn.rollback()
        conn.execute("SAVEPOINT a")
        write(conn, part, user, two_ids())
        conn.execute("ROLLBACK TO SAVEPOINT a")
        ids = two_ids()
        conn.execute(f"INSERT INTO {part} (operation_id, user_id, parameters, confidence) "
                     "SELECT id::uuid, %s, '{}', 0.5 FROM unnest(%s::text[]) AS id", (user, ids))
        conn.commit()
        assert [(t, a, e["details"]["key"]["operation_id"]) for t, a, e in operation_events(conn)] == \
            [("operations", "INSERT", i) for i in ids]
        total = count(conn)
        assert total == before + 2
    chain_ok(migrated, total)


def test_every_partition_carries_the_triggers_and_a_later_one_too(migrated, project):
    from sovren_db.cli.partitions import maintain

    with psycopg.connect(migrated) as conn:
        present = partitions(conn, "operations")
    created = maintain(load_settings(project), months_ahead=4)["operations"]["created"]
    assert len(created) == 1
    with psycopg.connect(migrated) as conn:
        assert conn.execute(PARTITION_TRIGGERS).fetchall() == sorted(
            (p, f"operations_audit_{e}") for p in [*present, *created] for e in DML)
        user = add_user(conn, f"p{uuid.uuid4().hex[:6]}")
        conn.commit()
        before = count(conn)
        conn.execute(f"INSERT INTO {created[0]} (operation_id, user_id, parameters, confidence, executed_at) "
                     f"SELECT gen_random_uuid(), %s, '{{}}', 0.5, lower_bound FROM (SELECT (regexp_match("
                     f"pg_get_expr(relpartbound, oid), '''([^'']+)'''))[1]::timestamp AS lower_bound FROM pg_class "
                     f"WHERE relname = %s) AS b", (user, created[0]))
        conn.execute(f"DELETE FROM {created[0]}")
        conn.commit()
        assert [(t, a) for t, a, _ in operation_events(conn)] == [("operations", "INSERT"), ("operations", "DELETE")]
        total = count(conn)
        assert total == before + 2
    chain_ok(migrated, total)


def test_the_downgrade_removes_the_triggers_and_the_upgrade_puts_them_back(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        expected = conn.execute(PARTITION_TRIGGERS).fetchall()
        assert len(expected) == 3 * len(partitions(conn, "operations")) > 3
    commands.downgrade(settings, PREVIOUS)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(PARTITION_TRIGGERS).fetchall() == []
        user, part = add_user(conn, f"p{uuid.uuid4().hex[:6]}"), this_month(conn)
        conn.commit()
        before = count(conn)
        write(conn, part, user, two_ids())
        conn.commit()
        assert count(conn) == before   # the gap, back
    commands.migrate(settings)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(PARTITION_TRIGGERS).fetchall() == expected
        write(conn, part, user, two_ids())
        conn.commit()
        total = count(conn)
        assert total == before + 6
    chain_ok(pg_url, total)
    assert commands.check(settings).exit_code == 0


def test_both_capture_paths_write_the_same_bytes_for_a_partition(project, pg_url, monkeypatch):
    """plpgsql first, then the C function swapped in (as revision 5e1c0a7b9d21 installs it): the same
    statements naming a partition give payloads that differ only in the times, the chain and the link."""
    payloads, ids = {}, two_ids()
    for path, conn in on_both_paths(project, pg_url, monkeypatch):
        if path == "plpgsql":
            user, part = add_user(conn, f"p{uuid.uuid4().hex[:6]}"), this_month(conn)
            conn.commit()
        since = len(operation_events(conn))
        write(conn, part, user, ids)
        conn.commit()
        payloads[path] = [masked(json.dumps(e, sort_keys=True)) for _, _, e in operation_events(conn, since)]
    assert len(payloads["plpgsql"]) == 6 and payloads["plpgsql"] == payloads["native"]
    assert all('"table": "operations"' in p for p in payloads["native"])
    with psycopg.connect(pg_url) as conn:
        total = count(conn)
    chain_ok(pg_url, total)


def test_the_offline_sql_does_what_the_online_revision_does(project, pg_url, monkeypatch):
    monkeypatch.setenv("SOVREN_DB_AUDIT_CAPTURE", "plpgsql")
    settings = load_settings(project)
    commands.migrate(settings, PREVIOUS)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        before = stage(conn)
        conn.execute(revision_sql(project, "upgrade", REVISION))
        assert len(conn.execute(PARTITION_TRIGGERS).fetchall()) == 3 * len(partitions(conn, "operations"))
        assert stage(conn) != before and "pg_partition_root" in stage(conn)[1]
        conn.execute(revision_sql(project, "downgrade", REVISION))
        assert conn.execute(PARTITION_TRIGGERS).fetchall() == [] and stage(conn) == before
