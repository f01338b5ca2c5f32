"""Attacks on the audit trail's newest code (issue 13): the sorted index entries of a big commit
(pgext/sovren_audit: keep_back_indexes, write_kept_back), the commit's payload head and hash context,
the heads' column numbers kept per relcache version (know_heads), and the guard that covers partitions
made by hand (revision f3b9d2a7c5e1).

Each test is an attack a careless or hostile user could make on a real server; those that found a fault
fail without its fix, the others guard a real risk. Most run on both capture paths (the Makefile's
AUDIT_TESTS; SOVREN_DB_AUDIT_CAPTURE=plpgsql for the fallback).
"""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest

from sovren_db import commands
from sovren_db.compliance.audit_format import CHAINS
from sovren_db.core.config import load_settings
from sovren_db.postgres import audit_capture
from tests.integration.test_audit_native import add_user, chain_ok, copy_users, indexes_whole, insert_row_events
from tests.integration.test_audit_partitions_dml import count as events
from tests.integration.test_audit_truncate import revision_sql

pytestmark = pytest.mark.postgres


@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return pg_url


def native(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return audit_capture.native_installed(conn)


# ---- the heads' column numbers, kept per relcache version (know_heads) ----

def shadow_trail(conn) -> None:
    """A second audit trail in schema shadow, on the C capture: its audit_chain_head has the columns of
    public's at other numbers (a spare bigint where public keeps next_id), its audit_log is a plain table."""
    library = conn.execute("SELECT probin FROM pg_proc WHERE oid = 'public.sovren_audit_stage()'::regprocedure"
                           ).fetchone()[0]
    cols = dict(conn.execute("SELECT attname, attnum FROM pg_attribute WHERE attrelid = 'public.audit_chain_head'::regclass "
                             "AND attnum > 0 AND NOT attisdropped").fetchall())
    width = conn.execute("SELECT max(attnum) FROM pg_attribute WHERE attrelid = 'public.audit_chain_head'::regclass"
                         ).fetchone()[0]
    by_number = {cols["chain"]: "chain bigint PRIMARY KEY", cols["hash"]: "hash text",
                 cols["next_id"]: "spare bigint NOT NULL DEFAULT 1000000"}
    columns = [by_number.get(n, f"pad{n} int") for n in range(1, width + 1)] + ["next_id bigint NOT NULL"]
    conn.execute("CREATE SCHEMA shadow")
    conn.execute(f"CREATE TABLE shadow.audit_chain_head ({', '.join(columns)})")
    for n in range(1, width + 1):
        if n not in by_number:
            conn.execute(f"ALTER TABLE shadow.audit_chain_head DROP COLUMN pad{n}")
    conn.execute("INSERT INTO shadow.audit_chain_head (chain, next_id) SELECT k, k FROM generate_series(1, %s) k",
                 (CHAINS,))
    conn.execute("CREATE TABLE shadow.audit_log (event_id bigint PRIMARY KEY, created_at timestamptz, table_name text, "
                 "action text, user_id uuid, actor text, accessed_at timestamptz, query text, event_payload text, "
                 "prev_hash text, hash text)")
    conn.execute(f"CREATE FUNCTION shadow.sovren_audit_stage() RETURNS trigger LANGUAGE c AS '{library}', "
                 "'sovren_audit_stage'")
    conn.execute("CREATE FUNCTION shadow.sovren_audit_shape(text) RETURNS text LANGUAGE sql IMMUTABLE "
                 "AS 'SELECT $1'")
    conn.execute("CREATE TABLE shadow.notes (note_id int PRIMARY KEY, body text)")
    conn.execute("CREATE TRIGGER notes_audit AFTER INSERT ON shadow.notes REFERENCING NEW TABLE AS new_rows "
                 "FOR EACH STATEMENT EXECUTE FUNCTION shadow.sovren_audit_stage()")


def test_a_backend_follows_the_heads_of_another_schemas_trail(migrated):
    """know_heads kept audit_chain_head's column numbers until that relation's relcache entry was
    invalidated, but a commit to the trail of another schema looks up another audit_chain_head: the
    backend read shadow's head with public's numbers (next_id taken from shadow's spare column). Fault
    found in da5bb03; fixed: the kept numbers and CHECKs are forgotten when the heads' relation changes."""
    if not native(migrated):
        pytest.skip("the plpgsql path keeps no column numbers of audit_chain_head (nothing to follow)")
    with psycopg.connect(migrated, autocommit=True) as conn:
        shadow_trail(conn)
    with psycopg.connect(migrated) as conn:
        add_user(conn, "public-first")
        conn.commit()                                   # public's heads known in this backend
        conn.execute("INSERT INTO shadow.notes VALUES (1, 'shadow')")
        conn.commit()
        ids = [row[0] for row in conn.execute("SELECT event_id FROM shadow.audit_log")]
        heads = conn.execute("SELECT chain, next_id, spare FROM shadow.audit_chain_head WHERE next_id <> chain"
                             ).fetchall()
        assert len(ids) == 1 and 1 <= ids[0] <= CHAINS, ids          # the chain's first id, not the spare's
        assert heads == [(ids[0], ids[0] + CHAINS, 1_000_000)]
        add_user(conn, "public-again")
        conn.commit()
    chain_ok(migrated, 2)


# ---- a big commit's sorted index entries (keep_back_indexes, write_kept_back) ----

EXOTIC = (
    "CREATE INDEX audit_log_incl ON audit_log (table_name, accessed_at DESC NULLS FIRST) INCLUDE (actor, hash)",
    "CREATE INDEX audit_log_desc ON audit_log (user_id DESC NULLS FIRST, event_id)",
    'CREATE INDEX audit_log_coll ON audit_log (hash COLLATE "C" DESC)',
    "CREATE INDEX audit_log_pattern ON audit_log (prev_hash text_pattern_ops NULLS FIRST)",
    "CREATE INDEX audit_log_expr ON audit_log ((event_payload::jsonb ->> 'action'), (length(query)) DESC)",
)


def test_indexes_of_every_kind_stay_whole_after_a_big_commit(migrated):
    """INCLUDE columns, DESC, NULLS FIRST, a collation and an opclass of their own, a jsonb expression:
    the kept-back entries are sorted by the index's own comparators and written with its own tuple
    layout. amcheck (heapallindexed: no entry missing, none extra, keys in order) on every index."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        for statement in EXOTIC:
            conn.execute(statement)
    with psycopg.connect(migrated) as conn:
        conn.execute("SET maintenance_work_mem = '1MB'")            # the sort spills
        copy_users(conn, 5_000, "exotic")
        conn.execute("UPDATE users SET subscription_tier = 'free' WHERE username LIKE 'exotic1%'")
        conn.commit()
        total = events(conn)
    indexes_whole(migrated)
    with psycopg.connect(migrated) as conn:               # amcheck saw these five too
        assert conn.execute("SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent "
                            "WHERE c.relname = ANY(%s)", ([s.split()[2] for s in EXOTIC],)).fetchone()[0] >= 5 * 2
    chain_ok(migrated, total)



def temp_files(url: str, more_than: int | None = None) -> int:
    """The database's temp_files, once the committing backends' statistics are in (waits up to 5 s for more
    than ``more_than``; with None, 1 s for any late report)."""
    deadline = time.monotonic() + (5 if more_than is not None else 1)
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            files = conn.execute("SELECT temp_files FROM pg_stat_database WHERE datname = current_database()"
                                 ).fetchone()[0]
            if (more_than is not None and files > more_than) or time.monotonic() > deadline:
                return files
            time.sleep(0.1)


def two_more_plain_btrees(url: str) -> None:
    """Two more indexes of audit_log that a big commit keeps back (three with ix_audit_log_user_id_accessed_at)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE INDEX audit_log_by_actor ON audit_log (actor, accessed_at)")
        conn.execute("CREATE INDEX audit_log_by_action ON audit_log (table_name, action, accessed_at)")


def test_the_kept_back_sorts_share_one_maintenance_work_mem(migrated):
    """Every kept-back index has its own sort, all held until the end of the commit: each took the whole
    maintenance_work_mem, so k plain b-trees on audit_log took k times the setting at once (an
    administrator's 1 GB for index builds became k GB per big commit). Now they share it. At 1 MB, an
    8,000-event commit's entries of the one default b-tree fit in memory; with two more plain b-trees its
    three sorts, sharing the 1 MB, spill to disk."""
    if not native(migrated):
        pytest.skip("the plpgsql path inserts index entries through the executor: no sort to measure")

    def commit(tag: str) -> None:
        with psycopg.connect(migrated) as conn:
            conn.execute("SET maintenance_work_mem = '1MB'")
            conn.execute("SET work_mem = '64MB'")       # the staged events stay in memory: only sorts spill
            copy_users(conn, 8_000, tag)
            conn.commit()

    start = temp_files(migrated)
    commit("one-sort")
    alone = temp_files(migrated)
    assert alone == start                               # one sort of 8,000 entries fits in 1 MB
    two_more_plain_btrees(migrated)
    commit("three-sorts")
    assert temp_files(migrated, more_than=alone) > alone  # three share the 1 MB: they spill
    indexes_whole(migrated)
    chain_ok(migrated, 16_000)


def test_a_big_commit_at_the_largest_maintenance_work_mem_is_whole(migrated):
    """maintenance_work_mem at its largest (2147483647 kB, about 2 TB), shared by three kept-back sorts:
    no overflow of the budget, no allocation sized by the setting; the commit is whole."""
    two_more_plain_btrees(migrated)
    with psycopg.connect(migrated) as conn:
        conn.execute("SET maintenance_work_mem = '2147483647kB'")
        copy_users(conn, 3_000, "huge-mem")
        conn.commit()
    indexes_whole(migrated)
    chain_ok(migrated, 3_000)


def test_an_index_expression_that_fails_aborts_the_big_commit_whole(migrated):
    """An expression index on audit_log whose function raises for one event (the 2,500th of 3,000): on the
    native path the error comes from the kept-back entries, after the heap rows are written. The commit
    must fail with that error, leave neither users nor events, and the next big commit chains on."""
    doomed = str(uuid.uuid4())
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("CREATE FUNCTION audit_probe(uuid) RETURNS uuid LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN "
                     f"IF $1 = '{doomed}' THEN RAISE EXCEPTION 'probe refuses %', $1; END IF; RETURN $1; END $$")
        conn.execute("CREATE INDEX audit_log_probe ON audit_log (public.audit_probe(user_id))")
        before = events(conn)
    with psycopg.connect(migrated) as conn:
        copy_users(conn, 3_000, "probe", ids=[doomed if i == 2_499 else uuid.uuid4() for i in range(3_000)])
        with pytest.raises(psycopg.errors.RaiseException, match="probe refuses"):
            conn.commit()
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM users WHERE username LIKE 'probe%'").fetchone()[0] == 0
        assert events(conn) == before
        copy_users(conn, 2_000, "after-probe")
        conn.commit()
        assert events(conn) == before + 2_000
    indexes_whole(migrated)
    chain_ok(migrated, before + 2_000)


def test_a_big_commit_with_rolled_back_savepoints_keeps_exactly_the_kept_events(migrated):
    """Staged events of rolled-back savepoints count towards the commit's size but are dropped: 1,400
    staged of which 600 kept (under SORTED_INDEX_ROWS, yet the sort is chosen), then 2,600 staged of which
    1,800 kept, at the smallest maintenance_work_mem. Exactly the kept users have events, in order; the
    indexes hold exactly the heap's rows."""
    kept_total = 0
    with psycopg.connect(migrated) as conn:
        conn.execute("SET maintenance_work_mem = '1MB'")
        for dropped, blocks, tag in (({1, 3, 5, 6}, 7, "sp-a"), ({1, 3, 5, 7}, 13, "sp-b")):
            for block in range(blocks):
                conn.execute(f"SAVEPOINT s{block}")
                copy_users(conn, 200, f"{tag}{block}-")
                conn.execute(f"{'ROLLBACK TO' if block in dropped else 'RELEASE'} SAVEPOINT s{block}")
            conn.commit()
            kept = conn.execute("SELECT count(*) FROM users WHERE username LIKE %s", (f"{tag}%",)).fetchone()[0]
            assert kept == 200 * (blocks - len(dropped))
            audited = conn.execute("SELECT count(*) FROM audit_log a JOIN users u ON u.user_id = a.user_id "
                                   "WHERE u.username LIKE %s", (f"{tag}%",)).fetchone()[0]
            assert audited == kept
            kept_total += kept
        assert events(conn) == kept_total == 600 + 1_800
    indexes_whole(migrated)
    chain_ok(migrated, kept_total)



def test_a_big_commit_of_the_application_role_with_truncate_and_copy_in_one_transaction(migrated):
    """As sovren_app (row security on, one tenant): 1,000 operations written in a transaction that the
    owner's TRUNCATE of operations began, a rolled-back savepoint of 500 more, then the owner's COPY of 500. The
    TRUNCATE's event and exactly the 1,500 kept INSERT events are chained, the big commit's sorted entries
    written as the chain's owner; every index whole."""
    with psycopg.connect(migrated) as conn:
        user = add_user(conn, "app-big")
        conn.commit()
        before = events(conn)
        conn.execute("TRUNCATE operations")
        conn.execute("SET ROLE sovren_app")
        conn.execute("SELECT set_config('app.user_id', %s, false)", (user,))
        insert = ("INSERT INTO operations (operation_id, user_id, parameters, confidence) "
                  "SELECT gen_random_uuid(), %s, '{}', 0.5 FROM generate_series({first}, {last})")
        insert_row_events(conn, insert, 1_000, (user,))        # 999 + 1 rows: row events, not a bulk one
        conn.execute("SAVEPOINT dropped")
        insert_row_events(conn, insert, 500, (user,))
        conn.execute("ROLLBACK TO SAVEPOINT dropped")
        conn.execute("RESET ROLE")                      # COPY FROM is refused under row security
        with conn.cursor().copy("COPY operations (operation_id, user_id, parameters, confidence) FROM STDIN") as copy:
            for _ in range(500):
                copy.write(f"{uuid.uuid4()}\t{user}\t{{}}\t0.5\n")
        conn.commit()
        written = conn.execute("SELECT table_name, action, count(*) FROM (SELECT * FROM audit_log "
                               "ORDER BY created_at, event_id OFFSET %s) e GROUP BY 1, 2 ORDER BY 1, 2", (before,)
                               ).fetchall()
        assert ("operations", "INSERT", 1_500) in written and ("operations", "TRUNCATE", 1) in written
        assert {(t.startswith("operations"), a) for t, a, _ in written} == {(True, "INSERT"), (True, "TRUNCATE")}
        assert sum(n for _, a, n in written if a == "INSERT") == 1_500   # none of the rolled-back savepoint's
        assert conn.execute("SELECT count(*) FROM operations").fetchone()[0] == 1_500
        total = events(conn)
    indexes_whole(migrated)
    chain_ok(migrated, total)

@pytest.mark.parametrize("ddl", [
    "CREATE INDEX CONCURRENTLY audit_cic ON {part} (actor, user_id)",
    "REINDEX INDEX CONCURRENTLY {index}",
])
def test_an_index_built_concurrently_while_big_commits_run_is_whole(migrated, ddl):
    """CREATE INDEX CONCURRENTLY on this month's partition of audit_log (or REINDEX CONCURRENTLY of its
    user_id index) while big audited commits run: the new index must hold every event of commits that
    sorted their entries, whichever phase of the build (or of DROP INDEX CONCURRENTLY) each commit met."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        part = conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                            "WHERE i.inhparent = 'audit_log'::regclass AND pg_get_expr(c.relpartbound, c.oid) "
                            "LIKE '%' || to_char(now(), 'YYYY-MM') || '%' ORDER BY 1 LIMIT 1").fetchone()[0]
        index = conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = %s::regclass "
                             "AND pg_get_indexdef(indexrelid) LIKE '%%user_id%%' AND NOT indisunique LIMIT 1",
                             (part,)).fetchone()[0]
    rounds, failures, done = 4, [], threading.Event()
    start = threading.Barrier(2)

    def writer() -> None:
        try:
            with psycopg.connect(migrated) as conn:
                start.wait(timeout=60)
                for r in range(rounds):
                    copy_users(conn, 3_000, f"cic{r}-")
                    conn.commit()
        except Exception as exc:   # noqa: BLE001: asserted below
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    builds = 0
    with psycopg.connect(migrated, autocommit=True) as conn:
        start.wait(timeout=60)
        while not done.is_set() or builds == 0:
            conn.execute("DROP INDEX CONCURRENTLY IF EXISTS audit_cic")
            conn.execute(ddl.format(part=part, index=index))
            builds += 1
    thread.join()
    assert failures == [] and builds >= 1
    indexes_whole(migrated)
    chain_ok(migrated, rounds * 3_000)



@pytest.mark.parametrize("delay", [0.2, 0.9])
def test_a_big_commit_canceled_half_way_leaves_nothing_and_the_chain_goes_on(migrated, delay):
    """COMMIT of 80,000 audited rows (about 1.5 s here) canceled by pg_cancel_backend from another session
    early (numbering and hashing) or late (heap and sorted index entries): the commit fails as canceled, no
    user and no event of it remain, every index is whole, and the next big commit chains on. (A
    statement_timeout does not stop a COMMIT at all, audited or not: Postgres' own behaviour.)"""
    with psycopg.connect(migrated) as conn:
        copy_users(conn, 80_000, "stopped")
        pid = conn.info.backend_pid

        def cancel() -> None:
            with psycopg.connect(migrated, autocommit=True) as other:
                other.execute("SELECT pg_cancel_backend(%s)", (pid,))

        canceller = threading.Timer(delay, cancel)
        canceller.start()
        with pytest.raises(psycopg.errors.QueryCanceled):
            conn.commit()
        canceller.join()
        conn.rollback()
        assert conn.execute("SELECT count(*) FROM users WHERE username LIKE 'stopped%'").fetchone()[0] == 0
        assert events(conn) == 0
        copy_users(conn, 2_000, "after-stop")
        conn.commit()
    indexes_whole(migrated)
    chain_ok(migrated, 2_000)

# ---- the guard: partitions made by hand (revision f3b9d2a7c5e1, sovren_audit_cover_partitions) ----

IN_2041 = "timestamp '2041-01-02 10:00'"


def operation_events_since(conn, before: int) -> list[tuple[str, str]]:
    return conn.execute("SELECT table_name, action FROM (SELECT * FROM audit_log ORDER BY created_at, event_id "
                        "OFFSET %s) e WHERE table_name = 'operations'", (before,)).fetchall()


def insert_naming(conn, target: str, user: str) -> None:
    conn.execute(f"INSERT INTO {target} (operation_id, user_id, parameters, confidence, executed_at) "
                 f"VALUES (%s, %s, '{{}}', 0.5, {IN_2041})", (str(uuid.uuid4()), user))


def test_a_partition_made_inside_create_schema_is_covered_at_once(migrated):
    """`CREATE SCHEMA s CREATE TABLE p PARTITION OF operations` is one command tagged CREATE SCHEMA: the
    guard did not run, and the partition had no audit triggers until the next CREATE or ALTER TABLE of
    anyone, so an INSERT naming it right after left no event. Fixed by revision c7e2a9f4b1d6 (the guard
    listens to CREATE SCHEMA)."""
    with psycopg.connect(migrated) as conn:
        user = add_user(conn, "schema-part")
        conn.commit()
        conn.execute("CREATE SCHEMA hand CREATE TABLE p2041 PARTITION OF public.operations "
                     "FOR VALUES FROM ('2041-01-01') TO ('2041-02-01')")
        before = events(conn)
        insert_naming(conn, "hand.p2041", user)
        conn.commit()
        assert operation_events_since(conn, before) == [("operations", "INSERT")]
        total = events(conn)
    chain_ok(migrated, total)




def test_hand_made_partitions_of_every_kind_leave_events_for_dml_naming_them(migrated):
    """Partitions made by hand in the ways a careless owner would: created and written in one transaction,
    a table of another role attached, a sub-partition under a partition made by hand, and a partition of
    an audited table that a later revision adds (found by its triggers, not by a list of names). An INSERT
    naming each leaves its event, under the root's name."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn, "by-hand")
        conn.execute("CREATE ROLE attack_other_owner")
        conn.execute("CREATE TABLE op_foreign_owner (LIKE operations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        conn.execute("ALTER TABLE op_foreign_owner OWNER TO attack_other_owner")
        conn.execute("ALTER TABLE operations ATTACH PARTITION op_foreign_owner "
                     "FOR VALUES FROM ('2041-01-01') TO ('2041-02-01')")
        conn.execute("CREATE TABLE op_y2042 PARTITION OF operations FOR VALUES FROM ('2042-01-01') TO ('2043-01-01') "
                     "PARTITION BY RANGE (executed_at)")
        conn.execute("CREATE TABLE op_m2042_01 PARTITION OF op_y2042 FOR VALUES FROM ('2042-01-01') TO ('2042-02-01')")
        conn.execute("CREATE TABLE ledger (entry_id uuid, user_id uuid, booked_at timestamptz NOT NULL, "
                     "PRIMARY KEY (entry_id, booked_at)) PARTITION BY RANGE (booked_at)")
        conn.execute("CREATE TRIGGER ledger_audit_insert AFTER INSERT ON ledger REFERENCING NEW TABLE AS new_rows "
                     "FOR EACH STATEMENT EXECUTE FUNCTION sovren_audit_stage()")
        conn.execute("CREATE TABLE ledger_2041 PARTITION OF ledger FOR VALUES FROM ('2041-01-01') TO ('2042-01-01')")
    with psycopg.connect(migrated) as conn:
        before = events(conn)
        conn.execute("CREATE TABLE op_same_xact PARTITION OF operations FOR VALUES FROM ('2043-01-01') TO ('2043-02-01')")
        conn.execute("INSERT INTO op_same_xact (operation_id, user_id, parameters, confidence, executed_at) "
                     "VALUES (%s, %s, '{}', 0.5, '2043-01-02')", (str(uuid.uuid4()), user))
        insert_naming(conn, "op_foreign_owner", user)
        conn.execute("INSERT INTO op_m2042_01 (operation_id, user_id, parameters, confidence, executed_at) "
                     "VALUES (%s, %s, '{}', 0.5, '2042-01-02')", (str(uuid.uuid4()), user))
        conn.execute("INSERT INTO op_y2042 (operation_id, user_id, parameters, confidence, executed_at) "
                     "VALUES (%s, %s, '{}', 0.5, '2042-01-03')", (str(uuid.uuid4()), user))
        conn.execute("INSERT INTO ledger_2041 VALUES (%s, %s, '2041-06-01')", (str(uuid.uuid4()), user))
        conn.commit()
        written = conn.execute("SELECT table_name, action FROM audit_log ORDER BY created_at, event_id OFFSET %s", (before,)
                               ).fetchall()
        assert sorted(written) == [("ledger", "INSERT")] + [("operations", "INSERT")] * 4
        total = events(conn)
    chain_ok(migrated, total)

def guard_tags(conn) -> list:
    return conn.execute("SELECT evttags, evtenabled FROM pg_event_trigger WHERE evtname = 'sovren_audit_guard_alter'"
                        ).fetchall()


def test_the_create_schema_revision_goes_down_and_up_online_and_offline(project, pg_url):
    """Revision c7e2a9f4b1d6 retags the guard's event trigger, keeping its state (disabled stays disabled);
    its downgrade gives the previous tags back; its offline SQL does what it does online."""
    settings = load_settings(project)
    commands.migrate(settings, "f3b9d2a7c5e1")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_alter DISABLE")
        previous = guard_tags(conn)
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        upgraded = guard_tags(conn)
    assert previous == [(["ALTER TABLE", "CREATE TABLE", "ALTER TRIGGER"], "D")]
    assert upgraded == [(["ALTER TABLE", "CREATE TABLE", "ALTER TRIGGER", "CREATE SCHEMA"], "D")]
    commands.downgrade(settings, "f3b9d2a7c5e1")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert guard_tags(conn) == previous
        conn.execute(revision_sql(project, "upgrade", "c7e2a9f4b1d6"))
        assert guard_tags(conn) == upgraded
        conn.execute(revision_sql(project, "downgrade", "c7e2a9f4b1d6"))
        assert guard_tags(conn) == previous


def impostor(conn, target: str) -> None:
    conn.execute("CREATE FUNCTION public.audit_nothing() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$")
    conn.execute(f"CREATE TRIGGER operations_audit_insert AFTER INSERT ON {target} FOR EACH STATEMENT "
                 "EXECUTE FUNCTION public.audit_nothing()")


def check_findings(project) -> list:
    outcome = commands.check(load_settings(project))
    return [(f.code, f.object) for f in outcome.findings if f.code == "partition-trigger-missing"]


def test_check_names_a_partition_whose_audit_trigger_is_an_impostor_or_disabled(migrated, project):
    """A table with its own trigger named operations_audit_insert (calling a function that does nothing),
    attached as a partition, and a partition whose operations_audit_insert is disabled: INSERTs naming
    either leave no event. partition-trigger-missing looked at trigger names only and stayed silent;
    it now wants the parent's function, events and an enabled trigger under that name."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn, "impostor")
        conn.execute("CREATE TABLE op_impostor (LIKE operations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        impostor(conn, "op_impostor")
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_alter DISABLE")   # the guard would add the real ones
        conn.execute("ALTER TABLE operations ATTACH PARTITION op_impostor FOR VALUES FROM ('2041-01-01') TO ('2041-02-01')")
        before = events(conn)
        insert_naming(conn, "op_impostor", user)
        assert events(conn) == before                   # what the finding is about: no event
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_alter ENABLE")
        conn.execute("CREATE TABLE op_disabled PARTITION OF operations FOR VALUES FROM ('2042-01-01') TO ('2042-02-01')")
        conn.execute("ALTER TABLE op_disabled DISABLE TRIGGER operations_audit_insert")
    found = check_findings(project)
    assert sorted(subject for _, subject in found) == ["partition op_disabled of operations",
                                                       "partition op_impostor of operations"]
    assert commands.check(load_settings(project)).exit_code == 1


def test_the_guard_puts_the_audit_trigger_beside_an_impostor_on_an_attached_table(migrated, project):
    """A table with its own trigger named operations_audit_insert (calling a function that does nothing) attached as a
    partition: before revision b9e5d3f7a2c4 the guard counted the trigger present by its name and INSERTs naming the
    partition left no event. Now the real trigger stands beside it (operations_audit_insert_sovren), the INSERT leaves
    exactly one event, `check` still names the partition (its trigger of that name is not the audit trigger), and a
    later partition command is not refused because of it (`sovren-db partitions` must keep working)."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn, "impostor-guard")
        conn.execute("CREATE TABLE op_impostor (LIKE operations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        impostor(conn, "op_impostor")
        conn.execute("ALTER TABLE operations ATTACH PARTITION op_impostor FOR VALUES FROM ('2041-01-01') TO ('2041-02-01')")
        names = [r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'op_impostor'::regclass "
                                            "AND tgfoid = 'sovren_audit_stage()'::regprocedure ORDER BY 1")]
        assert names == ["operations_audit_delete", "operations_audit_insert_sovren", "operations_audit_truncate",
                         "operations_audit_update"]
        before = events(conn)
        insert_naming(conn, "op_impostor", user)
        assert operation_events_since(conn, before) == [("operations", "INSERT")]
        conn.execute("CREATE TABLE op_later PARTITION OF operations FOR VALUES FROM ('2042-01-01') TO ('2042-02-01')")
    assert check_findings(project) == [("partition-trigger-missing", "partition op_impostor of operations")]

def test_two_impostor_names_on_an_attached_table_warn_and_never_block_later_partitions(migrated, project):
    """Both names the guard would give the INSERT trigger taken by other triggers: the ATTACH succeeds with a
    warning (no audit INSERT trigger there), `check` names the partition, and later partition commands (the
    guard looks at every partition each time) are not refused: `sovren-db partitions` must keep making next
    month's. Fails when creating the trigger is an error."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("CREATE TABLE op_two (LIKE operations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        impostor(conn, "op_two")
        conn.execute("CREATE TRIGGER operations_audit_insert_sovren AFTER INSERT ON op_two FOR EACH STATEMENT "
                     "EXECUTE FUNCTION public.audit_nothing()")
        warnings = []
        conn.add_notice_handler(lambda notice: warnings.append(notice.message_primary))
        conn.execute("ALTER TABLE operations ATTACH PARTITION op_two FOR VALUES FROM ('2043-01-01') TO ('2043-02-01')")
        assert any("partition op_two has no audit trigger for INSERT" in w for w in warnings), warnings
        conn.execute("CREATE TABLE op_after PARTITION OF operations FOR VALUES FROM ('2044-01-01') TO ('2044-02-01')")
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgrelid = 'op_after'::regclass "
                            "AND tgfoid = 'sovren_audit_stage()'::regprocedure").fetchone()[0] == 4
    assert check_findings(project) == [("partition-trigger-missing", "partition op_two of operations")]


# ---- revision b9e5d3f7a2c4: a trigger present by its function and events, the _sovren name ----

def stage_triggers(conn, table: str) -> list[str]:
    return [r[0] for r in conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass "
                                       "AND tgfoid = 'sovren_audit_stage()'::regprocedure ORDER BY 1", (table,))]


def test_a_trigger_calling_the_stage_function_that_never_fires_is_not_the_audit_trigger(migrated, project):
    """A table attached with its own operations_audit_insert calling sovren_audit_stage() for INSERT, with its
    transition table, but WHEN (false): the guard counted it present (same function, same events), so it added
    nothing, INSERTs naming the partition left no event, and `check` (same function, events, enabled) was silent.
    Fault found in b9e5d3f7a2c4; fixed: a trigger with a WHEN condition, a column list or other transition tables
    than the root's is not the audit trigger, in the guard's cover and in `check`."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn, "never-fires")
        conn.execute("CREATE TABLE op_never (LIKE operations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        conn.execute("CREATE TRIGGER operations_audit_insert AFTER INSERT ON op_never REFERENCING NEW TABLE AS new_rows "
                     "FOR EACH STATEMENT WHEN (false) EXECUTE FUNCTION sovren_audit_stage()")
        conn.execute("ALTER TABLE operations ATTACH PARTITION op_never FOR VALUES FROM ('2041-01-01') TO ('2041-02-01')")
        assert stage_triggers(conn, "op_never") == ["operations_audit_delete", "operations_audit_insert",
                                                    "operations_audit_insert_sovren", "operations_audit_truncate",
                                                    "operations_audit_update"]
        before = events(conn)
        insert_naming(conn, "op_never", user)
        assert operation_events_since(conn, before) == [("operations", "INSERT")]
        total = events(conn)
    chain_ok(migrated, total)
    assert check_findings(project) == [("partition-trigger-missing", "partition op_never of operations")]


def test_the_audit_trigger_renamed_to_its_suffix_is_the_audit_trigger_for_check_and_the_guard(migrated, project):
    """The owner renames a partition's operations_audit_insert to operations_audit_insert_sovren (the name the guard
    gives it beside an impostor): INSERTs naming the partition still leave their event, yet `check` named the
    partition (it looked for the root's name only). Fault found in b9e5d3f7a2c4; fixed: `check` takes the
    trigger under either name. An impostor then created under the root's name is named, once; neither the
    guard (a later partition command) nor `sovren-db partitions` adds a second audit trigger."""
    from sovren_db.cli.partitions import maintain

    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn, "suffix")
        conn.execute("CREATE TABLE op_suffix PARTITION OF operations FOR VALUES FROM ('2041-01-01') TO ('2041-02-01')")
        conn.execute("ALTER TRIGGER operations_audit_insert ON op_suffix RENAME TO operations_audit_insert_sovren")
    assert check_findings(project) == []
    with psycopg.connect(migrated, autocommit=True) as conn:
        impostor(conn, "op_suffix")
        conn.execute("CREATE TABLE op_next PARTITION OF operations FOR VALUES FROM ('2042-01-01') TO ('2042-02-01')")
    maintain(load_settings(project), months_ahead=2)
    with psycopg.connect(migrated, autocommit=True) as conn:
        assert stage_triggers(conn, "op_suffix") == ["operations_audit_delete", "operations_audit_insert_sovren",
                                                     "operations_audit_truncate", "operations_audit_update"]
        before = events(conn)
        insert_naming(conn, "op_suffix", user)
        assert operation_events_since(conn, before) == [("operations", "INSERT")]
    assert check_findings(project) == [("partition-trigger-missing", "partition op_suffix of operations")]


def test_the_application_role_makes_no_partition_and_touches_no_audit_trigger(migrated):
    """sovren_app, the role the application connects as, tries each way around the partitions' audit triggers:
    every one is refused for want of privilege (none is the guard's business)."""
    attempts = [
        "CREATE TABLE op_app PARTITION OF operations FOR VALUES FROM ('2041-01-01') TO ('2041-02-01')",
        "ALTER TABLE operations DETACH PARTITION {p}",
        "ALTER TABLE {p} DISABLE TRIGGER operations_audit_insert",
        "ALTER TRIGGER operations_audit_insert ON {p} RENAME TO operations_audit_insert_sovren",
        "DROP TRIGGER operations_audit_insert ON {p}",
        "CREATE TRIGGER operations_audit_insert_sovren AFTER INSERT ON {p} FOR EACH STATEMENT "
        "EXECUTE FUNCTION sovren_audit_stage()",
        "SELECT sovren_audit_cover_partitions()",
    ]
    with psycopg.connect(migrated) as conn:
        partition = conn.execute("SELECT 'operations_p' || to_char(now(), 'YYYY_MM')").fetchone()[0]
        before = stage_triggers(conn, partition)
        conn.execute("SET ROLE sovren_app")
        for attempt in attempts:
            conn.execute("SAVEPOINT s")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(attempt.format(p=partition))
            conn.execute("ROLLBACK TO SAVEPOINT s")
        conn.execute("RESET ROLE")
        assert stage_triggers(conn, partition) == before and len(before) == 4


def test_check_names_a_partition_whose_audit_trigger_stands_twice(migrated, project):
    """The owner follows `check` on a partition attached with an impostor (the guard put the real trigger beside it
    as operations_audit_insert_sovren): drops the impostor and creates operations_audit_insert "as on the other
    partitions". Two triggers now fire as the parent's and every INSERT naming the partition writes its event
    twice, and `check` (which looked for one missing) was silent. Fault found in b9e5d3f7a2c4 (the suffix made
    the second name); fixed: partition-trigger-missing also names a partition where a trigger of its parent
    stands twice."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn, "twice")
        conn.execute("CREATE TABLE op_twice (LIKE operations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        impostor(conn, "op_twice")
        conn.execute("ALTER TABLE operations ATTACH PARTITION op_twice FOR VALUES FROM ('2041-01-01') TO ('2041-02-01')")
        conn.execute("DROP TRIGGER operations_audit_insert ON op_twice")
        conn.execute("CREATE TRIGGER operations_audit_insert AFTER INSERT ON op_twice REFERENCING NEW TABLE AS new_rows "
                     "FOR EACH STATEMENT EXECUTE FUNCTION sovren_audit_stage()")
        before = events(conn)
        insert_naming(conn, "op_twice", user)
        assert operation_events_since(conn, before) == [("operations", "INSERT")] * 2   # what the finding is about
    outcome = commands.check(load_settings(project))
    found = [f for f in outcome.findings if f.code == "partition-trigger-missing"]
    assert [f.object for f in found] == ["partition op_twice of operations"]
    assert "twice" in found[0].message and "operations_audit_insert" in found[0].message
    assert outcome.exit_code == 1
