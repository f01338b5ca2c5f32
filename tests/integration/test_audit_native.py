"""Issue 13, part 7: the native capture (pgext/sovren_audit) and its fallback, on a real Postgres.

Every test here runs on whichever path the run's migration chose (the C library by default where
`make pgext` built it; SOVREN_DB_AUDIT_CAPTURE=plpgsql for the fallback): subtransactions that roll
back leave no event, a million events in one commit are chained whole (and a million-row COPY in
bulk events), concurrent writers keep one gapless chain, a backend killed mid-commit leaves a chain
that verifies, and the choice follows the setting.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from sovren_db import commands
from sovren_db.compliance.audit_format import CHAINS, first_id
from sovren_db.compliance.audit_verify import stream_chain
from sovren_db.core.config import load_settings
from sovren_db.postgres import audit_capture
from sovren_db.services.local import AUDIT_LIBRARY_DIR

pytestmark = pytest.mark.postgres
SOVREN_DB = str(Path(sys.executable).parent / "sovren-db")
INSERT = ("INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
          "VALUES (%s, %s, 'x', %s, 'pro')")
KEYS = "SELECT details::jsonb -> 'key' ->> 'user_id' FROM (SELECT event_payload::jsonb -> 'details' AS details " \
       "FROM audit_log WHERE table_name = 'users' ORDER BY event_id) AS e"


@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return pg_url


def add_user(conn, name: str) -> str:
    user_id = str(uuid.uuid4())
    conn.execute(INSERT, (user_id, name, f"{name}@x.io"))
    return user_id


PER_CHAIN = ("SELECT (event_payload::jsonb ->> 'chain')::int, array_agg(event_id ORDER BY event_id) FROM audit_log "
             "WHERE left(event_payload, 9) = '{\"v\": 3, ' GROUP BY 1")


def chain_ids(conn, fork: int = 0) -> dict[int, list[int]]:
    """Each chain's event ids, asserted gapless from the chain's first id after a fork at event ``fork``
    (revision 7c3e9a41f0b2): first_id(fork, k), then CHAINS apart."""
    chains = dict(conn.execute(PER_CHAIN).fetchall())
    for k, ids in chains.items():
        assert 1 <= k <= CHAINS and ids == list(range(first_id(fork, k), first_id(fork, k) + CHAINS * len(ids), CHAINS))
    return chains


def chain_ok(url: str, rows: int) -> None:
    """The log verifies, holds ``rows`` events, each chain gapless from its first id after the fork of an empty log."""
    with psycopg.connect(url) as conn:
        report = stream_chain(conn)
        chains = chain_ids(conn)
    assert report.broken is None and report.rows == rows
    assert sum(len(ids) for ids in chains.values()) == rows


def audited_users(conn) -> list[str]:
    return [row[0] for row in conn.execute(KEYS)]


# Big commits of row events. Since revision a4d8c1e6f2b3 an INSERT, COPY or DELETE of BULK_ROWS rows or more
# is recorded as one bulk event per BULK_ROWS rows (postgres/audit.py and sovren_audit.c, BULK_ROWS; the tests
# of bulk events are test_audit_bulk.py). The tests of a big commit's machinery (kept-back sorted index entries
# from SORTED_INDEX_ROWS events, WRITE_BATCH heap batches, STAGE_CHUNK staging, spills, cancel, kill -9) need
# many events in ONE commit: they write their rows in statements of at most PER_ROW rows, one transaction,
# so that every row keeps its own event. BULK_ROWS is repeated here: postgres/audit.py is not importable.
BULK_ROWS = 1000
PER_ROW = BULK_ROWS - 1


def statements(rows: int, per: int = PER_ROW) -> list[range]:
    """Rows 0..rows-1 cut into consecutive statements of at most ``per`` rows."""
    return [range(start, min(start + per, rows)) for start in range(0, rows, per)]


def copy_users(conn, rows: int, tag: str, per: int = PER_ROW, ids: list | None = None) -> None:
    """``rows`` users in the current transaction, one event each: COPYs of at most ``per`` rows. The i-th
    user is named ``tag``i; its id is ``ids[i]`` if given, else random."""
    for batch in statements(rows, per):
        with conn.cursor().copy("COPY users (user_id, username, password_hash, email, subscription_tier) "
                                "FROM STDIN") as copy:
            for i in batch:
                u = ids[i] if ids is not None else uuid.uuid4()
                copy.write(f"{u}\t{tag}{i}\tx\t{tag}{i}@x.io\tpro\n")


def row_event_inserts(insert: str, rows: int) -> list[str]:
    """``insert``, an INSERT ... SELECT ... FROM generate_series({first}, {last}) i, as the statements that
    insert rows 1..rows at most PER_ROW at a time (each row its own event)."""
    return [insert.replace("{first}", str(batch.start + 1)).replace("{last}", str(batch.stop))
            for batch in statements(rows)]


def insert_row_events(conn, insert: str, rows: int, params: tuple | None = None) -> None:
    """Run row_event_inserts(insert, rows) in the current transaction, each with ``params``."""
    for statement in row_event_inserts(insert, rows):
        conn.execute(statement, params)


def test_the_capture_path_is_the_configured_one(migrated):
    wanted = os.environ.get("SOVREN_DB_AUDIT_CAPTURE", "auto")
    built = (AUDIT_LIBRARY_DIR / "sovren_audit.so").exists()
    with psycopg.connect(migrated) as conn:
        assert audit_capture.native_installed(conn) == (wanted != "plpgsql" and built)


def test_rolled_back_subtransactions_leave_no_event(migrated):
    with psycopg.connect(migrated) as conn:
        kept = [add_user(conn, "s1")]
        conn.execute("SAVEPOINT a")
        kept.append(add_user(conn, "s2"))
        conn.execute("SAVEPOINT b")
        add_user(conn, "s3-dropped")
        conn.execute("SAVEPOINT c")
        add_user(conn, "s4-dropped")
        conn.execute("ROLLBACK TO SAVEPOINT b")     # b and its child c go
        kept.append(add_user(conn, "s5"))
        conn.execute("RELEASE SAVEPOINT a")
        conn.execute("SAVEPOINT d")
        add_user(conn, "s6-dropped")
        conn.execute("ROLLBACK TO SAVEPOINT d")
        conn.execute("SAVEPOINT e")
        kept.append(add_user(conn, "s7"))
        conn.execute("RELEASE SAVEPOINT e")
        conn.commit()
        assert audited_users(conn) == kept
    chain_ok(migrated, 4)


def test_an_exception_block_in_plpgsql_drops_its_events(migrated):
    ids = [str(uuid.uuid4()) for _ in range(4)]
    block = f"""DO $$ BEGIN
        INSERT INTO users (user_id, username, password_hash, email, subscription_tier)
             VALUES ('{ids[0]}', 'p0', 'x', 'p0@x.io', 'pro');
        BEGIN
            INSERT INTO users (user_id, username, password_hash, email, subscription_tier)
                 VALUES ('{ids[1]}', 'p1', 'x', 'p1@x.io', 'pro');
            BEGIN
                INSERT INTO users (user_id, username, password_hash, email, subscription_tier)
                     VALUES ('{ids[2]}', 'p2', 'x', 'p2@x.io', 'pro');
            END;
            RAISE EXCEPTION 'undo both';
        EXCEPTION WHEN raise_exception THEN NULL;
        END;
        INSERT INTO users (user_id, username, password_hash, email, subscription_tier)
             VALUES ('{ids[3]}', 'p3', 'x', 'p3@x.io', 'pro');
    END $$"""
    with psycopg.connect(migrated) as conn:
        conn.execute(block)
        conn.commit()
        assert audited_users(conn) == [ids[0], ids[3]]
    chain_ok(migrated, 2)


def test_a_rolled_back_transaction_leaves_nothing_and_the_next_one_chains(migrated):
    with psycopg.connect(migrated) as conn:
        add_user(conn, "gone")
        conn.rollback()
        kept = add_user(conn, "kept")
        conn.commit()
        assert audited_users(conn) == [kept]
    chain_ok(migrated, 1)


def test_prepare_transaction_with_audited_changes_is_refused_on_the_native_path(migrated):
    with psycopg.connect(migrated) as conn:
        if not audit_capture.native_installed(conn):
            pytest.skip("the plpgsql capture chains at PREPARE through its deferred trigger")
        conn.execute("BEGIN")
        add_user(conn, "prepared")
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="audited changes"):
            conn.execute("PREPARE TRANSACTION 'audit'")
    chain_ok(migrated, 0)


def test_the_application_role_writes_audited_rows_but_cannot_call_the_capture(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        for role in ("sovren_app", "sovren_readonly", "sovren_auditor"):
            assert not conn.execute("SELECT has_function_privilege(%s, 'sovren_audit_stage()', 'EXECUTE')",
                                    (role,)).fetchone()[0]
        acl = conn.execute("SELECT proacl::text FROM pg_proc WHERE proname = 'sovren_audit_stage'").fetchone()[0]
        assert acl is not None and not any(item.startswith("=") for item in acl.strip("{}").split(","))  # not PUBLIC
        user = str(uuid.uuid4())
        conn.execute("SET ROLE sovren_app")
        conn.execute("SELECT set_config('app.user_id', %s, false)", (user,))
        conn.execute(INSERT, (user, "app", "app@x.io"))
        conn.execute("RESET ROLE")
        row = conn.execute("SELECT actor, user_id::text FROM audit_log").fetchone()
    assert row[1] == user
    chain_ok(migrated, 1)


def test_concurrent_writers_keep_one_gapless_chain(migrated):
    writers, transactions = 8, 25
    failures: list[BaseException] = []

    def write(n: int) -> None:
        try:
            with psycopg.connect(migrated) as conn:
                for t in range(transactions):
                    add_user(conn, f"w{n}-{t}-a")
                    add_user(conn, f"w{n}-{t}-b")
                    conn.commit()
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    chain_ok(migrated, writers * transactions * 2)   # gapless per chain
    with psycopg.connect(migrated) as conn:   # in a chain, created_at grows with event_id and a transaction's
        assert conn.execute("""SELECT count(*) FROM (SELECT created_at, lag(created_at) OVER (   -- events are adjacent
                                 PARTITION BY event_id % 8 ORDER BY event_id) AS b FROM audit_log) s
                                WHERE created_at < b""").fetchone()[0] == 0
        assert conn.execute("""SELECT count(*) FROM audit_log a JOIN users ua ON ua.user_id = a.user_id
                                 JOIN audit_log b ON b.event_id = a.event_id + 8 JOIN users ub ON ub.user_id = b.user_id
                                WHERE ua.username LIKE '%-a' AND ub.username = left(ua.username, -1) || 'b'""").fetchone()[0] \
            == writers * transactions
        used = conn.execute("SELECT count(DISTINCT event_id % 8) FROM audit_log").fetchone()[0]
    assert used > 1   # 8 concurrent committers did not all queue on one head


@pytest.mark.slow
def test_a_million_row_events_in_one_commit_are_chained_whole(migrated):
    """A million events in one commit (COPYs of PER_ROW rows, one event per row): staged in the backend's
    tuplestore past work_mem, chained whole at commit."""
    rows = 1_000_000
    with psycopg.connect(migrated) as conn:
        copy_users(conn, rows, "bulk")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM audit_pending").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM audit_log WHERE event_payload::jsonb -> 'details' ? 'rows'"
                            ).fetchone()[0] == 0   # row events, not bulk ones
    chain_ok(migrated, rows)


@pytest.mark.slow
def test_a_million_row_copy_is_a_thousand_bulk_events_naming_every_row(migrated):
    """One COPY of a million rows (revision a4d8c1e6f2b3): 1,000 chained bulk events of 1,000 rows, every
    row named once and in the COPY's order (was: a million row events)."""
    rows = 1_000_000
    with psycopg.connect(migrated) as conn:
        with conn.cursor().copy("COPY users (user_id, username, password_hash, email, subscription_tier) "
                                "FROM STDIN") as copy:
            for i in range(rows):
                copy.write(f"{uuid.UUID(int=i + 1)}\tbulk{i}\tx\tbulk{i}@x.io\tpro\n")
        conn.commit()
        assert conn.execute("SELECT count(*) FROM audit_pending").fetchone()[0] == 0
        sizes = [n for (n,) in conn.execute("SELECT jsonb_array_length(event_payload::jsonb -> 'details' -> 'rows') "
                                            "FROM audit_log ORDER BY event_id")]
        named = conn.execute("SELECT count(*), count(*) FILTER (WHERE (r -> 'key' ->> 'user_id')::uuid "
                             "<> ('00000000-0000-0000-0000-' || lpad(to_hex(o), 12, '0'))::uuid) "
                             "FROM (SELECT r, row_number() OVER (ORDER BY a.event_id, e.n) AS o FROM audit_log a, "
                             "jsonb_array_elements(a.event_payload::jsonb -> 'details' -> 'rows') WITH ORDINALITY "
                             "AS e(r, n)) s").fetchone()
    assert sizes == [BULK_ROWS] * (rows // BULK_ROWS)
    assert named == (rows, 0)   # the i-th row named is the COPY's i-th
    chain_ok(migrated, rows // BULK_ROWS)


# 100,000 row events in one commit: the statements (of PER_ROW rows each) come as JSON in argv[2].
KILLED_WRITER = """
import json, sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    for statement in json.loads(sys.argv[2]):
        conn.execute(statement)
    print(conn.execute("SELECT pg_backend_pid()").fetchone()[0], flush=True)
    conn.commit()
"""
KILLED_INSERT = ("INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
                 "SELECT gen_random_uuid(), 'killed' || i, 'x', 'killed' || i || '@x.io', 'pro' "
                 "FROM generate_series({first}, {last}) i")


def wait_for_server(url: str) -> None:
    for _ in range(300):
        try:
            with psycopg.connect(url, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
                return
        except psycopg.OperationalError:
            time.sleep(0.1)
    raise AssertionError("the server did not come back after the backend was killed")


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, random.uniform(0.05, 0.4)])
def test_a_backend_killed_mid_commit_leaves_a_chain_that_verifies(migrated, delay):
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn, "before")
    inserts = json.dumps(row_event_inserts(KILLED_INSERT, 100_000))
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, migrated, inserts], stdout=subprocess.PIPE, text=True)
    pid = int(writer.stdout.readline())
    time.sleep(delay)   # the 100,000 events are being chained by COMMIT (or it has just finished)
    os.kill(pid, signal.SIGKILL)
    writer.wait()
    wait_for_server(migrated)
    with psycopg.connect(migrated) as conn:
        users = conn.execute("SELECT count(*) FROM users WHERE username LIKE 'killed%'").fetchone()[0]
        # every event but the one of "before" (the query column holds the shape: 'killed' became ?)
        logged = conn.execute("SELECT count(*) - 1 FROM audit_log").fetchone()[0]
    assert (users, logged) in ((0, 0), (100_000, 100_000))   # all or nothing, never rows without events
    chain_ok(migrated, 1 + logged)
    indexes_whole(migrated)   # the entries kept back for the sort (keep_back_indexes) were all written or none
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn, "after")
    chain_ok(migrated, 2 + logged)


NO_LIBRARY = "options=-c%20dynamic_library_path%3D%2Fnonexistent"


def test_native_on_a_server_without_the_library_is_one_sentence_and_exit_2(project, pg_url):
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}{NO_LIBRARY}"
    env = {**os.environ, "POSTGRES_URL": url, "SOVREN_DB_AUDIT_CAPTURE": "native"}
    done = subprocess.run([SOVREN_DB, "migrate"], cwd=project, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 2, done.stderr
    assert "sovren_audit" in done.stderr and "Traceback" not in done.stderr
    assert pg_url.split("//")[1].split("@")[0].split(":")[1] not in done.stderr + done.stdout   # no password
    with psycopg.connect(pg_url) as conn:   # nothing half applied: the revision rolled back whole
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "db870bd000c4"
        assert not audit_capture.native_installed(conn)


def test_auto_on_a_server_without_the_library_keeps_plpgsql_and_check_is_clean(project, pg_url):
    url = f"{pg_url}{'&' if '?' in pg_url else '?'}{NO_LIBRARY}"
    env = {**os.environ, "POSTGRES_URL": url, "SOVREN_DB_AUDIT_CAPTURE": "auto"}
    for verb in ("migrate", "check"):
        done = subprocess.run([SOVREN_DB, verb], cwd=project, env=env,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    with psycopg.connect(pg_url) as conn:
        assert not audit_capture.native_installed(conn)
        add_user(conn, "fallback")
        conn.commit()
    chain_ok(pg_url, 1)


def test_check_is_clean_on_the_path_chosen(migrated, project):
    assert commands.check(load_settings(project)).exit_code == 0


HIJACK = """CREATE SCHEMA IF NOT EXISTS evil AUTHORIZATION sovren_app;
CREATE OR REPLACE FUNCTION evil.plus(bigint, bigint) RETURNS bigint LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'hijacked as %', current_user; END $$;
CREATE OR REPLACE FUNCTION evil.regexp_replace(text, text, text, text) RETURNS text LANGUAGE plpgsql AS
  $$ BEGIN RAISE EXCEPTION 'shape hijacked as %', current_user; END $$;
DROP OPERATOR IF EXISTS evil.+ (bigint, bigint);
CREATE OPERATOR evil.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = evil.plus)"""


def test_the_sessions_search_path_cannot_choose_what_runs_for_the_owner(migrated):
    """The chain runs as the owner: an operator or function the session puts before pg_catalog is not used."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute(HIJACK)
    with psycopg.connect(migrated) as conn:   # a new backend: the chain's plans are prepared under this path
        user = str(uuid.uuid4())
        conn.execute("SET ROLE sovren_app")
        conn.execute("SET search_path = evil, public, pg_catalog")
        conn.execute("SELECT set_config('app.user_id', %s, false)", (user,))
        conn.execute(INSERT, (user, "victim", "victim@x.io"))
        conn.commit()
    chain_ok(migrated, 1)


def test_many_rolled_back_blocks_between_kept_rows(migrated):
    """A loop whose every pass keeps one row and rolls back a nested block of two: only the kept rows."""
    with psycopg.connect(migrated) as conn:
        conn.execute("""DO $$ BEGIN FOR i IN 1..2000 LOOP
            INSERT INTO users (user_id, username, password_hash, email, subscription_tier)
                 VALUES (gen_random_uuid(), 'kept' || i, 'x', 'kept' || i || '@x.io', 'pro');
            BEGIN
                INSERT INTO users (user_id, username, password_hash, email, subscription_tier)
                     VALUES (gen_random_uuid(), 'gone' || i, 'x', 'gone' || i || '@x.io', 'pro');
                BEGIN
                    INSERT INTO users (user_id, username, password_hash, email, subscription_tier)
                         VALUES (gen_random_uuid(), 'gone2' || i, 'x', 'gone2' || i || '@x.io', 'pro');
                EXCEPTION WHEN raise_exception THEN NULL;
                END;
                RAISE EXCEPTION 'undo';
            EXCEPTION WHEN raise_exception THEN NULL;
            END;
        END LOOP; END $$""")
        conn.commit()
        names = [row[0] for row in conn.execute(
            "SELECT u.username FROM audit_log a JOIN users u ON u.user_id::text = a.event_payload::jsonb "
            "-> 'details' -> 'key' ->> 'user_id' ORDER BY a.event_id")]
    assert names == [f"kept{i}" for i in range(1, 2001)]
    chain_ok(migrated, 2000)


def test_every_payload_is_the_text_jsonb_prints(migrated):
    """The native path writes the payload's text itself (payload_text): it must be byte for byte what
    jsonb prints, as the plpgsql path's ``::text`` is, for strings needing escapes, non-ASCII, a NULL
    user_id and a NULL-free query alike (audit_log's CHECK and ``audit verify`` read it as jsonb's text)."""
    with psycopg.connect(migrated) as conn:
        add_user(conn, 'qu"o\\te\ttab ü€😀 \x01 end')
        conn.execute("INSERT INTO operations (operation_id, user_id, parameters, confidence) "
                     "VALUES (gen_random_uuid(), NULL, %s, 0.25) /* é \" \\ */",
                     ('{"nested": {"b": [1, 2.50, "\\u00e9"], "a": null}, "é": "x"}',))
        conn.commit()
        total, differing, null_users = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE event_payload <> event_payload::jsonb::text), "
            "count(*) FILTER (WHERE user_id IS NULL) FROM audit_log").fetchone()
    assert total >= 2 and null_users >= 1
    assert differing == 0


AUDIT_INDEXES = ("SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indrelid "
                 "WHERE h.inhparent = 'audit_log'::regclass ORDER BY 1")


def test_a_big_commits_index_entries_go_in_sorted_and_every_index_stays_whole(migrated):
    """From SORTED_INDEX_ROWS events a commit keeps back the entries of audit_log's plain b-trees and
    writes them in key order at the end (sovren_audit.c, keep_back_indexes); unique, partial and other
    indexes stay row by row (on the plpgsql path the executor writes them all). Every index of every partition holds exactly the heap's rows (amcheck,
    heapallindexed), an index scan finds each event, and the sort spilled to disk here (1 MB), so the
    tuplesort really ran, spilling included. Fails when an entry is skipped, written twice or given
    another row's TID."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        native = audit_capture.native_installed(conn)   # the plpgsql path inserts through the executor
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        conn.execute("CREATE INDEX audit_log_actor_expr ON audit_log (lower(actor), event_id)")      # sorted
        conn.execute("CREATE INDEX audit_log_partial ON audit_log (user_id) WHERE action = 'UPDATE'")  # row by row
        conn.execute("CREATE INDEX audit_log_hash ON audit_log USING hash (table_name)")              # row by row
        conn.execute("CREATE UNIQUE INDEX audit_log_unique ON audit_log (hash, created_at)")           # row by row
        temp_files = conn.execute("SELECT temp_files FROM pg_stat_database WHERE datname = current_database()"
                                  ).fetchone()[0]
    rows = 30_000
    with psycopg.connect(migrated) as conn:
        conn.execute("SET maintenance_work_mem = '1MB'")
        copy_users(conn, rows, "sorted")
        conn.execute("UPDATE users SET subscription_tier = 'free' WHERE username LIKE 'sorted1%'")
        conn.commit()
        updated = conn.execute("SELECT count(*) FROM users WHERE username LIKE 'sorted1%'").fetchone()[0]
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_force_next_flush()")
        indexes = [row[0] for row in conn.execute(AUDIT_INDEXES)]
        assert len(indexes) >= 6
        for index in indexes:
            if conn.execute("SELECT amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = %s::regclass",
                            (index,)).fetchone()[0] == "btree":
                conn.execute("SELECT bt_index_check(%s::regclass, true)", (index,))
        conn.execute("SET enable_seqscan = off")
        conn.execute("SET enable_bitmapscan = off")
        by_index = conn.execute("SELECT count(*) FROM users u JOIN LATERAL (SELECT 1 FROM audit_log a "
                                "WHERE a.user_id = u.user_id AND a.accessed_at > '-infinity' LIMIT 2) e ON true "
                                "WHERE u.username LIKE 'sorted%'").fetchone()[0]
        assert by_index == rows + updated   # each user's INSERT event, and its UPDATE event if updated
        partial = conn.execute("SELECT count(*) FROM audit_log WHERE action = 'UPDATE' AND user_id IS NOT NULL"
                               ).fetchone()[0]
        assert partial == updated > 0
        spilled = conn.execute("SELECT temp_files FROM pg_stat_database WHERE datname = current_database()"
                               ).fetchone()[0]
    assert spilled > temp_files or not native
    chain_ok(migrated, rows + updated)


def indexes_whole(url: str) -> None:
    """Every b-tree of every partition of audit_log holds exactly the heap's rows (amcheck, heapallindexed)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        for (index,) in conn.execute(AUDIT_INDEXES).fetchall():
            conn.execute("SELECT bt_index_check(%s::regclass, true)", (index,))


def test_a_small_commit_keeps_the_row_by_row_path_and_its_indexes_whole(migrated):
    with psycopg.connect(migrated) as conn:
        conn.execute("SET maintenance_work_mem = '1MB'")
        copy_users(conn, 999, "small")
        conn.commit()
    indexes_whole(migrated)
    chain_ok(migrated, 999)


def test_big_commits_at_once_each_sort_their_own_entries(migrated):
    """Three sessions commit 4,000-row COPYs at the same moment (each on its own chain, each sorting its
    own entries into the same indexes): every index whole, every chain gapless."""
    barrier = threading.Barrier(3)
    failures = []

    def writer(tag: str) -> None:
        try:
            with psycopg.connect(migrated) as conn:
                copy_users(conn, 4_000, tag)
                barrier.wait(timeout=60)
                conn.commit()
        except Exception as exc:   # noqa: BLE001: reported by the test below
            failures.append(exc)

    threads = [threading.Thread(target=writer, args=(f"at-once{k}-",)) for k in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    indexes_whole(migrated)
    chain_ok(migrated, 12_000)
