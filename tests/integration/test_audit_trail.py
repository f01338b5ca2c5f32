"""Issue 13 on a real Postgres: only the triggers append, every column is hashed, partitions stay,
queries keep their shape only, tenants read their own events, rollbacks leave no gap."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import psycopg
import pytest

from sovren_db import commands
from sovren_db.compliance.audit_verify import stream_chain
from sovren_db.compliance.audit_format import CHAINS, first_id
from sovren_db.core.config import load_settings
from sovren_db.core.errors import Refused
from sovren_db.postgres import audit_capture
from tests.integration.test_audit_native import chain_ids, chain_ok, copy_users

pytestmark = pytest.mark.postgres

G2 = """SELECT event_id FROM audit_log
        WHERE hash != encode(digest(event_payload || event_id::text, 'sha256'),'hex')"""
APPEND = "SELECT sovren_audit_append('users', 'ERASE', NULL, '{\"forged\": true}')"
CHAIN = """SELECT sovren_audit_chain('[{"table": "users", "action": "ERASE", "details": {}}]')"""
ERASURE = "SELECT sovren_audit_erasure('users', '{\"forged\": true}')"


@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return pg_url


def add_user(conn, user_id=None, email=None) -> uuid.UUID:
    user_id = user_id or uuid.uuid4()
    conn.execute("INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
                 f"VALUES ('{user_id}', 'u{user_id.hex[:8]}', 'x', '{email or user_id.hex[:8] + '@x.io'}', 'pro')")
    return user_id


def verified(url):
    with psycopg.connect(url) as conn:
        return stream_chain(conn)


def native_capture(conn) -> bool:
    return audit_capture.native_installed(conn)


def events(conn) -> int:
    return conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]


# -- 1. only the audit triggers append ------------------------------------------------

@pytest.mark.parametrize("role", ["sovren_app", "sovren_readonly", "sovren_auditor", "sovren_migrator", "nobody"])
@pytest.mark.parametrize("call", [APPEND, CHAIN])
def test_no_role_but_the_owner_may_append(migrated, role, call):
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nobody') THEN "
                     "CREATE ROLE nobody; END IF; END $$")
        before = events(conn)
        conn.execute(f"SET ROLE {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(call)
        conn.execute("RESET ROLE")
        assert events(conn) == before


@pytest.mark.parametrize("role", ["sovren_app", "sovren_readonly", "sovren_auditor", "nobody"])
def test_only_the_bypass_role_may_record_an_erasure(migrated, role):
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'nobody') THEN "
                     "CREATE ROLE nobody; END IF; END $$")
        conn.execute(f"SET ROLE {role}")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(ERASURE)
        conn.execute("SET ROLE sovren_migrator")
        conn.execute(ERASURE)
        conn.execute("RESET ROLE")
        assert conn.execute("SELECT action, user_id FROM audit_log ORDER BY event_id DESC LIMIT 1").fetchone() == \
            ("ERASE", None)


@pytest.mark.parametrize("function", ["sovren_audit_stage()", "sovren_audit_flush()", "sovren_audit_row()"])
def test_the_staging_table_and_trigger_functions_are_out_of_reach(migrated, function):
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("SET ROLE sovren_app")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("""INSERT INTO audit_pending (xact, events)
                            VALUES (txid_current(), '[{"table": "users", "action": "ERASE"}]')""")
        with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFunction)):
            conn.execute(f"CREATE TRIGGER forged AFTER INSERT ON users FOR EACH STATEMENT EXECUTE FUNCTION {function}")


# -- 2. every column is covered ----------------------------------------------------------

@pytest.mark.parametrize("column, value", [
    ("actor", "'someone_else'"), ("user_id", "gen_random_uuid()"), ("action", "'DELETE'"),
    ("table_name", "'payments'"), ("query", "'SELECT 1'"), ("accessed_at", "accessed_at - interval '1 day'"),
    ("prev_hash", "repeat('0', 64)"),
])
def test_a_column_edited_with_the_triggers_off_is_refused(migrated, column, value):
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)
        conn.execute("SET session_replication_role = replica")   # triggers and event triggers off
        with pytest.raises(psycopg.errors.CheckViolation, match="audit_log_columns_match"):
            conn.execute(f"UPDATE audit_log SET {column} = {value}")
        assert conn.execute(G2).fetchall() == []


def test_a_payload_edited_with_its_column_is_found_by_g2_and_verify(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)
        conn.execute("SET session_replication_role = replica")
        conn.execute("""UPDATE audit_log SET actor = 'x',
                        event_payload = replace(event_payload, '"actor": "' || actor || '"', '"actor": "x"')""")
        assert len(conn.execute(G2).fetchall()) == 1
    assert "altered" in verified(migrated).broken.problem


# -- 4. partitions stay ------------------------------------------------------------------

def partition_of_latest(conn) -> str:
    return conn.execute("SELECT tableoid::regclass::text FROM audit_log ORDER BY event_id DESC LIMIT 1").fetchone()[0]


@pytest.mark.parametrize("statement", [
    "TRUNCATE {partition}", "DROP TABLE {partition}", "ALTER TABLE audit_log DETACH PARTITION {partition}",
    "TRUNCATE audit_log_default", "DROP TABLE audit_log_default",
    "ALTER TABLE audit_log DISABLE TRIGGER audit_log_immutable", "DROP TRIGGER audit_log_no_truncate ON {partition}",
    "ALTER TABLE audit_log ENABLE REPLICA TRIGGER audit_log_immutable",   # fires only where replication_role is replica
    "ALTER TABLE {partition} ENABLE REPLICA TRIGGER audit_log_no_truncate",
    "ALTER TABLE audit_log DROP CONSTRAINT audit_log_columns_match",
])
def test_a_superuser_cannot_truncate_drop_or_detach_a_partition(migrated, statement):
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)
        partition, before = partition_of_latest(conn), events(conn)
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="audit_log is immutable"):
            conn.execute(statement.format(partition=partition))
        assert events(conn) == before
    assert verified(migrated).broken is None


def test_a_partition_created_later_refuses_truncate_too(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("CREATE TABLE audit_log_p2099_01 PARTITION OF audit_log "
                     "FOR VALUES FROM ('2099-01-01') TO ('2099-02-01')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("TRUNCATE audit_log_p2099_01")


def test_without_event_triggers_the_partition_triggers_still_refuse_truncate(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_alter DISABLE")
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_drop DISABLE")
        partitions = [r[0] for r in conn.execute("SELECT inhrelid::regclass::text FROM pg_inherits "
                                                 "WHERE inhparent = 'audit_log'::regclass")]
        for partition in partitions:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"TRUNCATE {partition}")


# -- 4b. the guard's own objects keep their names (issue 13: renamed, they could be dropped or disabled) --------

GUARDED = """SELECT 'constraint', conrelid::regclass::text, conname, convalidated::text FROM pg_constraint
              WHERE conrelid = 'audit_log'::regclass
             UNION ALL
             SELECT 'trigger', tgrelid::regclass::text, tgname, tgenabled::text FROM pg_trigger
              WHERE tgrelid = 'audit_log'::regclass
                 OR tgrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit_log'::regclass)
             ORDER BY 1, 2, 3"""


def guarded(conn) -> list[tuple]:
    """audit_log's constraints and its and its partitions' triggers, with their state."""
    return conn.execute(GUARDED).fetchall()


# each rename, then what the renamed object would have allowed
@pytest.mark.parametrize("rename, then, refused", [
    ("ALTER TABLE audit_log RENAME CONSTRAINT audit_log_columns_match TO x", "ALTER TABLE audit_log DROP CONSTRAINT x",
     "constraint audit_log_columns_match on audit_log"),
    ("ALTER TRIGGER audit_log_immutable ON audit_log RENAME TO y", "ALTER TABLE audit_log DISABLE TRIGGER y",
     "trigger audit_log_immutable on audit_log"),
    ("ALTER TRIGGER audit_log_no_truncate ON audit_log RENAME TO y", "DROP TRIGGER y ON audit_log",
     "trigger audit_log_no_truncate on audit_log"),
    ("ALTER TRIGGER audit_log_no_truncate ON {partition} RENAME TO y", "DROP TRIGGER y ON {partition}",
     "trigger audit_log_no_truncate on {partition}"),
    ("ALTER TABLE audit_log RENAME TO audit_log_old", "DROP TRIGGER audit_log_immutable ON audit_log_old",
     "table audit_log"),
])
def test_a_superuser_cannot_rename_the_check_or_a_guard_trigger_and_nothing_changes(migrated, rename, then, refused):
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)
        partition = partition_of_latest(conn)
        before, count = guarded(conn), events(conn)
        refused = refused.format(partition=partition)
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as raised:
            with conn.transaction():
                conn.execute(rename.format(partition=partition))
                conn.execute(then.format(partition=partition))
        assert raised.value.diag.message_primary == \
            f"audit_log is immutable: renaming or dropping {refused} is not allowed"
        assert guarded(conn) == before and events(conn) == count
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"TRUNCATE {partition}")
    assert verified(migrated).broken is None


def test_other_constraints_and_triggers_are_renamed_as_before(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)
        partition = partition_of_latest(conn)
        before = guarded(conn)
        conn.execute("CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$")
        conn.execute("ALTER TABLE audit_log ADD CONSTRAINT extra CHECK (event_id > 0) NOT VALID")
        conn.execute("ALTER TABLE audit_log RENAME CONSTRAINT extra TO extra_renamed")
        conn.execute("CREATE TRIGGER extra AFTER INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION noop()")
        conn.execute("ALTER TRIGGER extra ON audit_log RENAME TO extra_renamed")
        conn.execute(f"CREATE TRIGGER extra AFTER INSERT ON {partition} FOR EACH ROW EXECUTE FUNCTION noop()")
        conn.execute(f"ALTER TRIGGER extra ON {partition} RENAME TO extra_too")
        conn.execute("CREATE TABLE other (a int CONSTRAINT other_positive CHECK (a > 0))")
        conn.execute("ALTER TABLE other RENAME CONSTRAINT other_positive TO other_above_zero")
        conn.execute("CREATE TRIGGER other_noop AFTER INSERT ON other FOR EACH ROW EXECUTE FUNCTION noop()")
        conn.execute("ALTER TRIGGER other_noop ON other RENAME TO other_nothing")
        conn.execute("ALTER TRIGGER users_audit_insert ON users RENAME TO users_audit_insert_renamed")
        conn.execute("ALTER TRIGGER users_audit_insert_renamed ON users RENAME TO users_audit_insert")
        names = {(kind, table, name) for kind, table, name, _ in guarded(conn)}
        assert {("constraint", "audit_log", "extra_renamed"), ("trigger", "audit_log", "extra_renamed"),
                ("trigger", partition, "extra_renamed"), ("trigger", partition, "extra_too")} <= names
        assert {r[0] for r in conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'other'::regclass "
                                           "UNION ALL SELECT tgname FROM pg_trigger WHERE tgrelid = 'other'::regclass")} \
            == {"other_above_zero", "other_nothing"}
        conn.execute(f"DROP TRIGGER extra_too ON {partition}")
        conn.execute("DROP TRIGGER extra_renamed ON audit_log")
        conn.execute("ALTER TABLE audit_log DROP CONSTRAINT extra_renamed")
        assert guarded(conn) == before


def guard_installed(conn) -> tuple:
    """The guard function's definition and its event triggers' events, tags and states."""
    return (conn.execute("SELECT pg_get_functiondef('sovren_audit_guard_ddl()'::regprocedure)").fetchone()[0],
            conn.execute("SELECT evtname, evtevent, evttags, evtenabled FROM pg_event_trigger "
                         "WHERE evtname LIKE 'sovren_audit_guard_%' ORDER BY evtname").fetchall())


def test_the_downgrade_gives_the_previous_guard_back_and_renames_are_allowed_again(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings, "3f6b2d8e4a19")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        previous = guard_installed(conn)
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        upgraded = guard_installed(conn)
        assert upgraded[0] != previous[0] and upgraded[1] != previous[1]
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="renaming or dropping constraint"):
            conn.execute("ALTER TABLE audit_log RENAME CONSTRAINT audit_log_columns_match TO x")
    commands.downgrade(settings, "3f6b2d8e4a19")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert guard_installed(conn) == previous
        conn.execute("ALTER TABLE audit_log RENAME CONSTRAINT audit_log_columns_match TO x")   # the gap, back
        conn.execute("ALTER TABLE audit_log RENAME CONSTRAINT x TO audit_log_columns_match")
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_alter DISABLE")   # a state the upgrade keeps
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert guard_installed(conn) == (upgraded[0], [(*upgraded[1][0][:3], "D"), upgraded[1][1]])


def test_events_missing_from_the_middle_are_reported_as_a_gap(migrated):
    """What a dropped or truncated month leaves, once every guard was turned off by a superuser."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        for _ in range(4):
            add_user(conn)   # one session, no other writer: one chain, ids CHAINS apart
        (k, ids), = chain_ids(conn).items()
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_drop DISABLE")
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_alter DISABLE")
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_log WHERE event_id IN (%s, %s)", (ids[1], ids[2]))
    broken = verified(migrated).broken
    assert broken.event_id == ids[3] and broken.chain == k
    assert broken.problem.startswith(f"chain {k}: gap: events {ids[1]} to {ids[2]} (2 of chain {k}) are missing")


# -- 5. statements keep their shape, not their values ------------------------------------------------

def test_literals_never_reach_the_log_and_g4_still_finds_statements_by_name(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn, email="jane.doe@example.com")
        conn.execute("UPDATE users SET shadow_board = '{\"card\": \"4111111111111111\"}', "
                     f"last_login = '2026-01-01' WHERE user_id = '{user}' /* token abc123 */")
        conn.execute("""UPDATE users SET username = $$o'neil$$ WHERE email = E'jane.doe\\x40example.com' -- x""")
        logged = " ".join(r[0] for r in conn.execute("SELECT query || event_payload FROM audit_log"))
        for literal in ("jane.doe", "4111111111111111", "2026-01-01", "abc123", "o'neil", "\\x40"):
            assert literal not in logged
        found = conn.execute("SELECT query FROM audit_log WHERE query LIKE '%shadow_board%'").fetchall()
        assert found == [("UPDATE users SET shadow_board = ?, last_login = ? WHERE user_id = ?  ",)]


def test_the_shape_of_odd_statements(migrated):
    cases = {
        """SELECT "odd ""col'x", p2026_12, $1, 10, 1.5e3 FROM t WHERE a = 'it''s'""":
            """SELECT "odd ""col'x", p2026_12, $1, ?, ? FROM t WHERE a = ?""",
        "SELECT $tag$secret 'x'$tag$ || $$more$$, -7": "SELECT ? || ?, -?",
        "INSERT INTO t VALUES (E'a\\'b', '{1,2}') -- 4111 1111": "INSERT INTO t VALUES (?, ?)  ",
    }
    with psycopg.connect(migrated) as conn:
        for query, shape in cases.items():
            assert conn.execute("SELECT sovren_audit_shape(%s)", (query,)).fetchone()[0] == shape


# -- 6. row security -------------------------------------------------------------------------

def test_an_application_session_reads_only_its_tenants_events_and_an_auditor_all(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        a, b = add_user(conn), add_user(conn)
        total = events(conn)
        conn.execute("SET ROLE sovren_app")
        conn.execute("SELECT set_config('app.user_id', %s, false)", (str(a),))
        assert {r[0] for r in conn.execute("SELECT user_id FROM audit_log")} == {a}
        conn.execute("RESET app.user_id")
        assert events(conn) == 0
        conn.execute("SET ROLE sovren_auditor")
        assert events(conn) == total and b in {r[0] for r in conn.execute("SELECT user_id FROM audit_log")}


# -- 7. appended at commit: no gap, one linear chain -------------------------------------------

def test_a_rolled_back_transaction_leaves_neither_events_nor_a_gap(migrated):
    with psycopg.connect(migrated) as conn:
        add_user(conn)
        conn.rollback()
        add_user(conn)
        conn.commit()
        assert conn.execute("SELECT count(*) FROM audit_pending").fetchone()[0] == 0
    chain_ok(migrated, 1)


def test_concurrent_writers_build_one_gapless_chain(migrated):
    def writer():
        with psycopg.connect(migrated) as conn:
            for _ in range(25):
                add_user(conn)
                conn.execute("INSERT INTO operations (operation_id, user_id) SELECT gen_random_uuid(), user_id "
                             "FROM users LIMIT 1")
                conn.commit()

    threads = [threading.Thread(target=writer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    chain_ok(migrated, 300)


def test_a_big_copy_of_row_events_is_staged_once_and_chained_in_order(migrated):
    """2,000 users in COPYs of fewer than BULK_ROWS rows (one event per row): one query shape, one chain, the
    events in the rows' order."""
    with psycopg.connect(migrated) as conn:
        copy_users(conn, 2000, "rows")
        conn.commit()
        assert conn.execute("SELECT count(DISTINCT query), max(event_id) - min(event_id) FROM audit_log").fetchone() \
            == (1, 1999 * CHAINS)   # one transaction: one chain
        names = [n for (n,) in conn.execute("SELECT u.username FROM audit_log a JOIN users u ON u.user_id = a.user_id "
                                            "ORDER BY a.event_id")]
    assert names == [f"rows{i}" for i in range(2000)]
    chain_ok(migrated, 2000)


# every row named inside the bulk events, in the events' order and the order within each
NAMED = ("SELECT (r ->> 'user_id')::uuid, (r -> 'key' ->> 'user_id')::uuid FROM audit_log a, "
         "jsonb_array_elements(a.event_payload::jsonb -> 'details' -> 'rows') WITH ORDINALITY AS e(r, n) "
         "WHERE a.table_name = 'users' AND a.action = %s ORDER BY a.event_id, e.n")


def test_a_bulk_copy_is_bulk_events_chained_in_order_naming_every_row_once(migrated):
    """One COPY of 2,500 rows (revision a4d8c1e6f2b3): three bulk events of 1,000, 1,000 and 500 rows on one
    chain, consecutive, one query shape, every row named once and in the COPY's order; the chain verifies."""
    ids = [uuid.uuid4() for _ in range(2500)]
    with psycopg.connect(migrated) as conn:
        with conn.cursor().copy("COPY users (user_id, username, password_hash, email, subscription_tier) "
                                "FROM STDIN") as copy:
            for i, user_id in enumerate(ids):
                copy.write_row((user_id, f"bulk{i}", "x", f"bulk{i}@x.io", "pro"))
        conn.commit()
        got = conn.execute("SELECT event_id, action, user_id, jsonb_array_length(event_payload::jsonb -> 'details' "
                           "-> 'rows'), query FROM audit_log ORDER BY event_id").fetchall()
        named = conn.execute(NAMED, ("INSERT",)).fetchall()
    assert [(e[1], e[2], e[3]) for e in got] == [("INSERT", None, 1000), ("INSERT", None, 1000), ("INSERT", None, 500)]
    assert [e[0] - got[0][0] for e in got] == [0, CHAINS, 2 * CHAINS]   # one transaction: one chain, in order
    assert len({e[4] for e in got}) == 1
    assert named == [(i, i) for i in ids]   # each row once, in order, its subject beside its key
    chain_ok(migrated, 3)


# -- 7b. any isolation level: the heads are taken at their latest version ------------------------

def move_every_head(url: str, but: int = 0) -> None:
    """An audited commit on each chain (but chain ``but``): the others' heads held while each commits."""
    with psycopg.connect(url) as holder, psycopg.connect(url, autocommit=True) as writer:
        for k in set(range(1, CHAINS + 1)) - {but}:
            holder.execute("SELECT 1 FROM audit_chain_head WHERE chain <> %s FOR UPDATE", (k,))
            add_user(writer)
            holder.rollback()


@pytest.mark.parametrize("level", ["REPEATABLE READ", "SERIALIZABLE"])
def test_an_audited_commit_at_a_snapshot_isolation_level_after_every_head_moved(migrated, level):
    """The heads are a shared counter, like a sequence: the native capture locks and moves each at its
    latest version whatever the isolation level. The plpgsql path reads them in the transaction's
    snapshot, so at these levels its commit fails, as a serialization failure the application retries,
    once every head moved since the transaction began (the next test: not before)."""
    with psycopg.connect(migrated) as conn:
        native = native_capture(conn)
        conn.commit()
        conn.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
        conn.execute("SELECT count(*) FROM users")   # the transaction's snapshot
        move_every_head(migrated)
        add_user(conn)
        if native:
            conn.commit()
        else:
            with pytest.raises(psycopg.errors.SerializationFailure, match="every chain's head moved since it began"):
                conn.commit()
            conn.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
            add_user(conn)   # the retry, with a new snapshot
            conn.commit()
    with psycopg.connect(migrated) as conn:
        assert len(chain_ids(conn)) == CHAINS
    chain_ok(migrated, CHAINS + 1)


@pytest.mark.parametrize("level", ["REPEATABLE READ", "SERIALIZABLE"])
def test_an_audited_commit_at_a_snapshot_isolation_level_takes_a_head_that_has_not_moved(migrated, level):
    """Seven heads moved since the transaction began: both paths commit, the plpgsql one on the
    eighth (revision c4e8f1a2b3d5: it skips heads moved or held instead of failing on the first)."""
    with psycopg.connect(migrated) as conn:
        native = native_capture(conn)
        conn.commit()
        conn.execute(f"SET TRANSACTION ISOLATION LEVEL {level}")
        conn.execute("SELECT count(*) FROM users")   # the transaction's snapshot
        move_every_head(migrated, but=5)
        add_user(conn)
        conn.commit()
        last = conn.execute("SELECT event_id FROM audit_log ORDER BY created_at DESC, event_id DESC LIMIT 1"
                            ).fetchone()[0]
        assert native or (last - 5) % CHAINS == 0   # the plpgsql path took chain 5, the one not moved
    chain_ok(migrated, CHAINS)


def test_serializable_audited_writers_do_not_conflict_through_the_heads(migrated):
    """Four writers at SERIALIZABLE inserting unrelated users: none fails (the heads are found by an
    index fetch with SnapshotSelf, which takes no predicate lock, and moved below the executor)."""
    with psycopg.connect(migrated) as conn:
        if not native_capture(conn):
            pytest.skip("plpgsql capture: reads the heads in the transaction's snapshot (the test above)")
    failures, errors = [], []

    def write():
        try:
            with psycopg.connect(migrated) as conn:
                for _ in range(25):
                    conn.execute("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE")
                    conn.execute("SELECT 1")
                    add_user(conn)
                    try:
                        conn.commit()
                    except psycopg.errors.SerializationFailure as exc:
                        failures.append(exc)
                        conn.rollback()
        except Exception as exc:   # surfaced below: a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and failures == []
    chain_ok(migrated, 100)


def test_a_check_on_the_heads_is_enforced_when_a_head_moves(migrated):
    """The head moves below the executor, its CHECKs compiled once per relcache version: one added
    after this session committed is enforced at its next commit, which then leaves nothing."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)
        before = events(conn)
        conn.execute("ALTER TABLE audit_chain_head ADD CONSTRAINT heads_frozen CHECK (next_id < 0) NOT VALID")
        with pytest.raises(psycopg.errors.CheckViolation, match="heads_frozen"):
            add_user(conn)
        assert events(conn) == before and conn.execute("SELECT count(*) FROM users").fetchone()[0] == 1
        conn.execute("ALTER TABLE audit_chain_head DROP CONSTRAINT heads_frozen")
        add_user(conn)
    chain_ok(migrated, 2)


def test_an_update_trigger_on_the_heads_fires_when_a_head_moves(migrated):
    """A trigger on audit_chain_head needs the executor: the head then moves through it."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)
        conn.execute("CREATE TABLE head_moves (chain bigint, next_id bigint)")
        conn.execute("CREATE FUNCTION note_head_move() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN INSERT INTO public.head_moves VALUES (NEW.chain, NEW.next_id); RETURN NEW; END $$")
        conn.execute("CREATE TRIGGER note_head_move AFTER UPDATE ON audit_chain_head "
                     "FOR EACH ROW EXECUTE FUNCTION note_head_move()")
        add_user(conn)
        add_user(conn)
        moves = conn.execute("SELECT chain, next_id FROM head_moves").fetchall()
        heads = dict(conn.execute("SELECT chain, next_id FROM audit_chain_head").fetchall())
        assert len(moves) == 2 and all(heads[k] >= n for k, n in moves)
    chain_ok(migrated, 3)


def test_heads_without_their_primary_key_are_still_found_and_moved(migrated):
    """The native path finds a head by its primary key; without one, the executor's statements do it."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)
        conn.execute("ALTER TABLE audit_chain_head DROP CONSTRAINT audit_chain_head_pkey")
        add_user(conn)
        add_user(conn)
        assert conn.execute("SELECT count(*) FROM audit_chain_head").fetchone()[0] == CHAINS
    chain_ok(migrated, 3)


def test_a_backend_follows_the_heads_columns_when_they_move(migrated):
    """A backend keeps the heads' column numbers between commits (sovren_audit.c, know_heads); when
    another session rebuilds next_id and hash as new columns (new attribute numbers, the old ones
    dropped), its next commit reads and moves the new ones. Fails when the kept numbers outlive the
    change (the next id read from a dropped column, the move written into one)."""
    with psycopg.connect(migrated, autocommit=True) as writer, psycopg.connect(migrated, autocommit=True) as ddl:
        add_user(writer)
        before = ddl.execute("SELECT attnum FROM pg_attribute WHERE attrelid = 'audit_chain_head'::regclass "
                             "AND attname = 'next_id'").fetchone()[0]
        with ddl.transaction():
            for column, kind in (("next_id", "bigint"), ("hash", "text")):
                ddl.execute(f"ALTER TABLE audit_chain_head ADD COLUMN moved {kind}")
                ddl.execute(f"UPDATE audit_chain_head SET moved = {column}")
                ddl.execute(f"ALTER TABLE audit_chain_head DROP COLUMN {column}")
                ddl.execute(f"ALTER TABLE audit_chain_head RENAME COLUMN moved TO {column}")
            ddl.execute("ALTER TABLE audit_chain_head ALTER COLUMN next_id SET NOT NULL")
        after = ddl.execute("SELECT attnum FROM pg_attribute WHERE attrelid = 'audit_chain_head'::regclass "
                            "AND attname = 'next_id'").fetchone()[0]
        assert after != before
        add_user(writer)
        add_user(writer)
    chain_ok(migrated, 3)


def test_heads_moved_while_an_old_snapshot_pins_their_versions_keep_their_index(migrated):
    """An open REPEATABLE READ transaction keeps every dead version of the heads: their page fills and
    the heads move off it (updates that are not HOT, new index entries). The primary key stays whole
    (amcheck, every heap tuple found) and every head is still found."""
    with psycopg.connect(migrated) as pin, psycopg.connect(migrated, autocommit=True) as conn:
        pin.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        pin.execute("SELECT count(*) FROM audit_chain_head")
        for _ in range(300):
            add_user(conn)
        pages = conn.execute("SELECT pg_relation_size('audit_chain_head') / current_setting('block_size')::int"
                             ).fetchone()[0]
        assert pages > 1   # the heads did move off their first page
        pin.rollback()
        conn.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        conn.execute("SELECT bt_index_check('audit_chain_head_pkey'::regclass, true)")
        assert conn.execute("SELECT count(*) FROM audit_chain_head").fetchone()[0] == CHAINS
    chain_ok(migrated, 300)


# -- the migration: existing chains keep verifying ----------------------------------------------

def test_a_format_1_chain_keeps_verifying_across_the_upgrade_and_the_downgrade(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings, "b0423f0c320c")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for i in range(3):
            add_user(conn, email=f"old.secret{i}@example.com")
        conn.execute("SET ROLE sovren_app")
        conn.execute(APPEND)   # format 1 let anyone append: the forgery this revision closes
        conn.execute("RESET ROLE")
    assert verified(pg_url).rows == 4
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM audit_log WHERE query LIKE '%old.secret%'").fetchone()[0] == 0
        # the fork over the existing chain: chain k goes on at the first id above 4 that is k modulo CHAINS
        assert conn.execute("SELECT array_agg(next_id ORDER BY chain) FROM audit_chain_head").fetchone()[0] == \
            [first_id(4, k) for k in range(1, CHAINS + 1)]
        add_user(conn)
        (k, ids), = chain_ids(conn, fork=4).items()
    report = verified(pg_url)
    assert report.broken is None and (report.rows, report.last_event) == (5, first_id(4, k))
    assert report.chains[k].events == 1 and report.chains[0].events == 4
    commands.downgrade(settings, "b0423f0c320c")   # allowed: one chain holds events, merged back
    with psycopg.connect(pg_url, autocommit=True) as conn:
        add_user(conn)   # format 1 again, numbered after the merged chain's event
    report = verified(pg_url)
    assert report.broken is None and (report.rows, report.last_event) == (6, first_id(4, k) + 1)
    commands.migrate(settings)   # a second fork
    with psycopg.connect(pg_url, autocommit=True) as conn:
        add_user(conn)
    report = verified(pg_url)
    assert report.broken is None and report.rows == 7


def test_the_downgrade_is_refused_once_several_chains_hold_events(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings)
    with psycopg.connect(pg_url) as holder, psycopg.connect(pg_url, autocommit=True) as writer:
        add_user(writer)
        k = next(iter(chain_ids(writer)))
        holder.execute("SELECT 1 FROM audit_chain_head WHERE chain = %s FOR UPDATE", (k,))
        add_user(writer)   # its chain is held: the next head
        holder.rollback()
        assert len(chain_ids(writer)) == 2
    with pytest.raises(Refused, match=r"revision 7c3e9a41f0b2 cannot be downgraded: 2 events were written on 2 chains"):
        commands.downgrade(settings, "5e1c0a7b9d21")
    done = subprocess.run([str(Path(sys.executable).parent / "sovren-db"), "downgrade", "5e1c0a7b9d21"], cwd=project,
                          env={**os.environ, "POSTGRES_URL": pg_url}, capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "revision 7c3e9a41f0b2 cannot be downgraded: 2 events were written on 2 chains" in done.stderr
    with psycopg.connect(pg_url) as conn:   # nothing changed
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "7c3e9a41f0b2"
        assert conn.execute("SELECT count(*) FROM audit_chain_head").fetchone()[0] == CHAINS
    chain_ok(pg_url, 2)


def test_the_downgrade_without_events_since_the_fork_gives_the_one_head_back(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings, "5e1c0a7b9d21")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        add_user(conn)
        add_user(conn)
    commands.migrate(settings)
    commands.downgrade(settings, "5e1c0a7b9d21")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT chain, event_id FROM audit_chain_head").fetchall() == [(1, 2)]
        add_user(conn)   # format 2, on either capture path
        assert conn.execute("SELECT max(event_id), left(max(event_payload), 9) FROM audit_log").fetchone() == \
            (3, '{"v": 2, ')
    report = verified(pg_url)
    assert report.broken is None and (report.rows, report.last_event) == (3, 3)


def test_a_backend_that_wrote_before_a_downgrade_and_an_upgrade_follows_both(project, pg_url):
    """One session writes across the downgrade and the upgrade back: the native writer, which
    remembers the heads' shape until audit_chain_head's relcache entry is invalidated, numbers
    and formats each event for the revision the database is at when it commits."""
    settings = load_settings(project)
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        add_user(conn)
        (k, ids), = chain_ids(conn).items()
        commands.downgrade(settings, "5e1c0a7b9d21")   # one chain holds events: merged back
        add_user(conn)
        assert conn.execute("SELECT event_id, left(event_payload, 9) FROM audit_log ORDER BY event_id DESC LIMIT 1"
                            ).fetchone() == (ids[-1] + 1, '{"v": 2, ')
        assert conn.execute("SELECT chain, event_id FROM audit_chain_head").fetchall() == [(1, ids[-1] + 1)]
        commands.migrate(settings)   # a second fork, under the same session
        add_user(conn)
        assert conn.execute("SELECT left(event_payload, 9) FROM audit_log ORDER BY event_id DESC LIMIT 1"
                            ).fetchone()[0] == '{"v": 3, '
    report = verified(pg_url)
    assert report.broken is None and report.rows == 3


# -- 8. the walk leans on the constraint only while it stands as declared --------------------------

def test_the_walk_trusts_the_constraint_only_while_it_is_validated_and_unaltered(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)
    assert verified(migrated).every_row is False
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_drop DISABLE")
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_alter DISABLE")
        conn.execute("ALTER TABLE audit_log DROP CONSTRAINT audit_log_columns_match")
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE audit_log SET actor = 'someone_else'")
    report = verified(migrated)
    assert report.every_row is True and "differs from its value in event_payload" in report.broken.problem
    with psycopg.connect(migrated, autocommit=True) as conn:   # a constraint of the same name that says nothing
        conn.execute("ALTER TABLE audit_log ADD CONSTRAINT audit_log_columns_match CHECK (actor IS NOT NULL)")
    report = verified(migrated)
    assert report.every_row is True and report.broken is not None



BULK_INSERT = ("INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
               "SELECT gen_random_uuid(), 'chunk' || i, 'x', 'chunk' || i || '@x.io', 'pro' "
               "FROM generate_series(1, 25000) i")
BULK_UPDATE = "UPDATE users SET subscription_tier = 'business' WHERE username LIKE 'chunk%'"
BULK_DELETE = "DELETE FROM users WHERE username LIKE 'chunk%'"


def chunk_users(conn) -> list[tuple]:
    """The users BULK_INSERT wrote, in its order, each as NAMED gives it (subject, key)."""
    return [(u, u) for (u,) in conn.execute("SELECT user_id FROM users WHERE username LIKE 'chunk%' "
                                            "ORDER BY substr(username, 6)::int")]


@pytest.mark.parametrize("statement, staged, written", [
    (BULK_INSERT, (3, 10, 25), 25),              # bulk events, 10 to a staged row (postgres/audit.py BULK_STAGED)
    (BULK_UPDATE, (3, 10_000, 25_000), 25_000),  # never bulk: row events, 10,000 to a staged row (STAGE_CHUNK)
    (BULK_DELETE, (3, 10, 25), 25),
], ids=["insert", "update", "delete"])
def test_a_bulk_statement_is_staged_in_chunks_and_chained_whole(migrated, statement, staged, written):
    """A jsonb value holds 256 MB: a million-row load staged as one array was refused by Postgres. Row
    events are staged 10,000 to a row of audit_pending (postgres/audit.py STAGE_CHUNK), bulk events (an
    INSERT or DELETE of 1,000 rows or more, revision a4d8c1e6f2b3) 10 to a row (BULK_STAGED), and all
    chained at commit. A bulk statement names each of its 25,000 rows once (was: 25,000 row events)."""
    with psycopg.connect(migrated) as conn:
        if statement is not BULK_INSERT:
            conn.execute(BULK_INSERT)
            conn.commit()
        before, inserted = events(conn), chunk_users(conn)
        conn.execute(statement)
        got = conn.execute("SELECT count(*), max(jsonb_array_length(events)), sum(jsonb_array_length(events)) "
                           "FROM audit_pending WHERE xact = txid_current()").fetchone()
        # the native capture keeps them in the backend (a tuplestore), chained 10,000 per INSERT at commit
        assert got == ((0, None, None) if native_capture(conn) else staged)
        conn.commit()
        assert events(conn) - before == written
        assert conn.execute("SELECT count(*) FROM audit_pending").fetchone()[0] == 0
        if statement is BULK_INSERT:   # in the statement's order: generate_series's, chunk1 first
            assert conn.execute(NAMED, ("INSERT",)).fetchall() == chunk_users(conn)
        elif statement is BULK_DELETE:   # in the order of the table's scan: compared as a set
            named = conn.execute(NAMED, ("DELETE",)).fetchall()
            assert len(named) == 25_000 and set(named) == set(inserted)
    chain_ok(migrated, before + written)
