"""Issue 13, part 7: a bulk statement is recorded in bulk events (revision a4d8c1e6f2b3), on a real Postgres.

An INSERT, COPY or DELETE of BULK_ROWS rows or more gives one chained event per BULK_ROWS rows, in order,
its details naming every row's key and subject; a smaller statement and every UPDATE give one event per
row. Each test runs on whichever path the run's migration chose (AUDIT_TESTS runs them on both), and the
two paths are compared byte for byte.
"""

from __future__ import annotations

import io
import json
import re
import uuid

import psycopg
import pytest

from sovren_db import commands
from sovren_db.compliance.audit_verify import stream_chain
from sovren_db.core.config import load_settings
from sovren_db.postgres import audit_capture

from .test_audit_truncate import masked, on_both_paths, revision_sql, stage

pytestmark = pytest.mark.postgres
BULK_ROWS = 1000
REVISION, PREVIOUS = "a4d8c1e6f2b3", "b9e5d3f7a2c4"
COLUMNS = sorted(["user_id", "username", "password_hash", "email", "created_at", "subscription_tier",
                  "shadow_board", "last_login"])
EVENTS = ("SELECT event_id, action, user_id::text, event_payload::jsonb -> 'details', event_payload FROM audit_log "
          "WHERE table_name = %s AND created_at > %s ORDER BY created_at, event_id")
G2 = "SELECT event_id FROM audit_log WHERE hash != encode(digest(event_payload || event_id::text, 'sha256'), 'hex')"
# A subject's events, its rows inside bulk events included (postgres/audit.py, "Bulk events")
SUBJECT = ("SELECT count(*) FROM audit_log WHERE user_id = %(s)s OR (user_id IS NULL AND "
           "event_payload::jsonb -> 'details' -> 'rows' @> jsonb_build_array(jsonb_build_object('user_id', %(s)s::text)))")


@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return pg_url


def copy_users(conn, n: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    data = io.StringIO("".join(f"{i}\tu-{i}\tx\t{i}@x.io\tpro\n" for i in ids))
    with conn.cursor().copy("COPY users (user_id, username, password_hash, email, subscription_tier) FROM STDIN") as cp:
        cp.write(data.getvalue())
    return ids


def last_at(conn):
    """When the latest event was written: the chains' ids interleave, so a later commit may take a lower id."""
    return conn.execute("SELECT COALESCE(max(created_at), '2000-01-01') FROM audit_log").fetchone()[0]


def events(conn, table: str, since: int) -> list[tuple]:
    return conn.execute(EVENTS, (table, since)).fetchall()


def chain_intact(url: str) -> int:
    with psycopg.connect(url) as conn:
        report = stream_chain(conn)
        assert report.broken is None
        assert conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto") is not None
        assert conn.execute(G2).fetchall() == []
    return report.rows


def test_a_copy_of_2500_rows_is_three_bulk_events_naming_every_row_in_order(migrated):
    with psycopg.connect(migrated) as conn:
        since = last_at(conn)
        ids = copy_users(conn, 2500)
        conn.commit()
        got = events(conn, "users", since)
    assert [len(e[3]["rows"]) for e in got] == [1000, 1000, 500]
    assert {(e[1], e[2]) for e in got} == {("INSERT", None)}   # many subjects: no one user_id
    assert [r["key"]["user_id"] for e in got for r in e[3]["rows"]] == ids
    assert all(r["user_id"] == r["key"]["user_id"] for e in got for r in e[3]["rows"])
    assert all(e[3]["changed"] == COLUMNS and set(e[3]) == {"changed", "rows"} for e in got)
    assert all('"query": "COPY users (user_id, username, password_hash, email, subscription_tier) FROM STDIN"'
               in e[4] for e in got)
    assert chain_intact(migrated) >= 3


def test_a_smaller_statement_and_an_update_are_one_event_per_row(migrated):
    with psycopg.connect(migrated) as conn:
        since = last_at(conn)
        ids = copy_users(conn, BULK_ROWS - 1)
        conn.commit()
        assert len(events(conn, "users", since)) == BULK_ROWS - 1
        since = last_at(conn)
        copy_users(conn, 1)
        conn.execute("UPDATE users SET last_login = now()")   # 1,000 rows: UPDATE is never bulk
        conn.commit()
        updated = [e for e in events(conn, "users", since) if e[1] == "UPDATE"]
    assert len(updated) == BULK_ROWS and set(ids) <= {e[2] for e in updated}
    assert all(e[3]["changed"] == ["last_login"] for e in updated)
    chain_intact(migrated)


def test_a_bulk_delete_and_a_bulk_of_one_subject(migrated):
    """The rows of one subject: the bulk event carries that user_id, so the subject's tenant sees it under row
    security and another tenant does not; a DELETE of them is bulk too."""
    with psycopg.connect(migrated) as conn:
        user = copy_users(conn, 1)[0]
        conn.commit()
        since = last_at(conn)
        conn.execute("INSERT INTO operations (operation_id, user_id, parameters, confidence, executed_at) "
                     "SELECT gen_random_uuid(), %s, '{}', 0.5, now() FROM generate_series(1, 1500)", (user,))
        conn.commit()
        inserted = events(conn, "operations", since)
        conn.execute("DELETE FROM operations WHERE user_id = %s", (user,))
        conn.commit()
        deleted = [e for e in events(conn, "operations", since) if e[1] == "DELETE"]
    assert [(e[1], e[2], len(e[3]["rows"])) for e in inserted] == [("INSERT", user, 1000), ("INSERT", user, 500)]
    assert [(e[2], len(e[3]["rows"])) for e in deleted] == [(user, 1000), (user, 500)]
    assert {r["user_id"] for e in inserted + deleted for r in e[3]["rows"]} == {user}
    assert sorted(r["key"]["operation_id"] for e in inserted for r in e[3]["rows"]) == \
        sorted(r["key"]["operation_id"] for e in deleted for r in e[3]["rows"])
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("SET ROLE sovren_app")
        conn.execute("SELECT set_config('app.user_id', %s, false)", (user,))
        mine = conn.execute("SELECT count(*) FROM audit_log WHERE table_name = 'operations'").fetchone()[0]
        conn.execute("SELECT set_config('app.user_id', %s, false)", (str(uuid.uuid4()),))
        theirs = conn.execute("SELECT count(*) FROM audit_log WHERE table_name = 'operations'").fetchone()[0]
    assert mine == 4 and theirs == 0
    chain_intact(migrated)


def test_a_subjects_rows_inside_bulk_events_are_found_and_hidden_from_tenants(migrated):
    with psycopg.connect(migrated) as conn:
        ids = copy_users(conn, 1200)
        conn.commit()
        assert conn.execute(SUBJECT, {"s": ids[1100]}).fetchone()[0] == 1
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("SET ROLE sovren_app")
        conn.execute("SELECT set_config('app.user_id', %s, false)", (ids[0],))
        assert conn.execute("SELECT count(*) FROM audit_log WHERE table_name = 'users'").fetchone()[0] == 0


def test_an_edited_row_inside_a_bulk_event_breaks_the_chain(migrated):
    with psycopg.connect(migrated) as conn:
        ids = copy_users(conn, BULK_ROWS)
        conn.commit()
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")   # the owner's way around the immutability trigger
        conn.execute("UPDATE audit_log SET event_payload = replace(event_payload, %s, %s) WHERE user_id IS NULL",
                     (ids[500], str(uuid.uuid4())))
        report = stream_chain(conn)
        assert conn.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto") is not None
        assert len(conn.execute(G2).fetchall()) == 1
    assert report.broken is not None


ROWS = re.compile(r'"rows": \[.*\], "changed"')


def test_both_capture_paths_write_the_same_bulk_events(project, pg_url, monkeypatch):
    """The same COPY and DELETE on each path: the same payloads but for times, chain and link (a DELETE's rows
    come in the order of the table's scan, which the first path's dead rows change: compared as a set)."""
    payloads, deleted = {}, {}
    for path, conn in on_both_paths(project, pg_url, monkeypatch):
        conn.execute("DELETE FROM users")
        conn.commit()
        since = last_at(conn)
        rows = "".join(f"{i}\tu-{i}\tx\t{i}@x.io\tpro\n" for i in (uuid.UUID(int=n + 1) for n in range(1500)))
        with conn.cursor().copy("COPY users (user_id, username, password_hash, email, subscription_tier) "
                                "FROM STDIN") as cp:
            cp.write(rows)
        conn.execute("DELETE FROM users")
        conn.commit()
        got = events(conn, "users", since)
        payloads[path] = [masked(ROWS.sub('"rows": _, "changed"', e[4]) if e[1] == "DELETE" else e[4]) for e in got]
        deleted[path] = sorted(json.dumps(r, sort_keys=True) for e in got if e[1] == "DELETE" for r in e[3]["rows"])
    assert [p.count('"action": "DELETE"') for p in payloads["plpgsql"]] == [0, 0, 1, 1]
    assert payloads["plpgsql"] == payloads["native"] and deleted["plpgsql"] == deleted["native"]
    assert len(deleted["native"]) == 1500
    chain_intact(pg_url)


def test_the_downgrade_gives_the_row_events_back_and_the_upgrade_the_bulk_ones(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings)
    with psycopg.connect(pg_url) as conn:
        native = audit_capture.native_installed(conn)
        link = conn.execute("SELECT probin, prosrc FROM pg_proc WHERE proname = 'sovren_audit_stage'").fetchone()
    commands.downgrade(settings, PREVIOUS)
    with psycopg.connect(pg_url) as conn:
        if native:
            assert conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'sovren_audit_stage'").fetchone()[0] \
                == "sovren_audit_stage"
        since = last_at(conn)
        copy_users(conn, 1200)
        conn.commit()
        assert len(events(conn, "users", since)) == 1200
    commands.migrate(settings)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT probin, prosrc FROM pg_proc WHERE proname = 'sovren_audit_stage'").fetchone() \
            == link
        since = last_at(conn)
        copy_users(conn, 1200)
        conn.commit()
        assert [len(e[3]["rows"]) for e in events(conn, "users", since)] == [1000, 200]
    chain_intact(pg_url)
    assert commands.check(settings).exit_code == 0


def test_the_offline_sql_does_what_the_online_revision_does(project, pg_url, monkeypatch):
    monkeypatch.setenv("SOVREN_DB_AUDIT_CAPTURE", "plpgsql")
    settings = load_settings(project)
    commands.migrate(settings, PREVIOUS)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        before = stage(conn)
        conn.execute(revision_sql(project, "upgrade", REVISION))
        assert stage(conn) != before and f">= {BULK_ROWS}" in stage(conn)[1]
        conn.execute(revision_sql(project, "downgrade", REVISION))
        assert stage(conn) == before
    commands.migrate(settings)
    assert commands.check(settings).exit_code == 0


def test_a_bulk_statement_spilled_to_disk_is_read_back_whole(migrated):
    """At work_mem 64 kB the statement's transition table spills to a temporary file, and each row read back
    is allocated in the reader's memory and freed by the slot at the next read (sovren_audit.c reads in the
    caller's context, not the per-event one it resets): 20,000 rows give twenty events naming every row in order."""
    with psycopg.connect(migrated) as conn:
        conn.execute("SET work_mem = '64kB'")
        since = last_at(conn)
        ids = copy_users(conn, 20_000)
        conn.commit()
        got = events(conn, "users", since)
    assert [len(e[3]["rows"]) for e in got] == [1000] * 20
    assert [r["key"]["user_id"] for e in got for r in e[3]["rows"]] == ids
    chain_intact(migrated)


def test_a_bulk_statement_rolled_back_to_a_savepoint_leaves_no_event(migrated):
    """A bulk COPY inside a savepoint rolled back, then another: only the second's events, every row of it
    once; a 25,000-row COPY after it is 25 events staged across several audit_pending rows (plpgsql: ten
    bulk events to a row) and chained in order."""
    with psycopg.connect(migrated) as conn:
        since = last_at(conn)
        conn.execute("SAVEPOINT s")
        copy_users(conn, 1500)
        conn.execute("ROLLBACK TO SAVEPOINT s")
        kept = copy_users(conn, 1200)
        conn.commit()
        got = events(conn, "users", since)
        assert [r["key"]["user_id"] for e in got for r in e[3]["rows"]] == kept
        since = last_at(conn)
        many = copy_users(conn, 25_000)
        conn.commit()
        got = events(conn, "users", since)
        assert conn.execute("SELECT count(*) FROM audit_pending").fetchone()[0] == 0
    assert len(got) == 25 and [r["key"]["user_id"] for e in got for r in e[3]["rows"]] == many
    chain_intact(migrated)
