"""Issue 13, part 7: what writing audit_log rows must still do, whichever path writes them.

The native capture writes a commit's rows below the executor (pgext/sovren_audit, write_rows): a
partition found per commit, CHECKs compiled once per relcache version, heap and index inserts of
its own. These tests hold it to what the executor's INSERT does (the plpgsql path, run with
SOVREN_DB_AUDIT_CAPTURE=plpgsql, is held to the same): a CHECK added or replaced is enforced at the
very next commit of a backend that already wrote, a commit time with no partition fails the commit
whole, the writer follows partitions created, detached and attached, a unique index on a partition
is enforced, a row trigger on audit_log still fires, and every row has its index entries.
Each test keeps one writing backend open across the changes, so that anything it cached is used.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from sovren_db.compliance.audit_format import CHAINS
from sovren_db.postgres.sql import ensure_partitions
from sovren_db.postgres.state import PartitionRule
from tests.integration.test_audit_native import INSERT, chain_ok, insert_row_events, migrated  # noqa: F401 (a fixture)

pytestmark = pytest.mark.postgres
GUARDS_OFF = ("ALTER EVENT TRIGGER sovren_audit_guard_drop DISABLE",
              "ALTER EVENT TRIGGER sovren_audit_guard_alter DISABLE")
# the partition a row created now goes to, and the bounds of this month
CURRENT = """SELECT c.relname, c.oid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
              WHERE i.inhparent = 'audit_log'::regclass AND c.relname = 'audit_log_p' || to_char(now(), 'YYYY_MM')"""
MONTH = "SELECT date_trunc('month', now())::date::text, (date_trunc('month', now()) + interval '1 month')::date::text"


def commit_user(conn, name: str) -> str:
    user_id = str(uuid.uuid4())
    conn.execute(INSERT, (user_id, name, f"{name}@x.io"))
    conn.commit()
    return user_id


def admin(url: str):
    conn = psycopg.connect(url, autocommit=True)
    for statement in GUARDS_OFF:   # a test database: the guards would refuse the partition changes
        conn.execute(statement)
    return conn


def where_is(conn, event_id: int) -> tuple[str, int]:
    return conn.execute("SELECT tableoid::regclass::text, tableoid::int FROM audit_log WHERE event_id = %s",
                        (event_id,)).fetchone()


def heads(conn) -> list[tuple]:
    """Every chain's head (revision 7c3e9a41f0b2): a refused commit moves none."""
    return conn.execute("SELECT chain, next_id, hash FROM audit_chain_head ORDER BY chain").fetchall()


def newest(conn) -> tuple[int, int]:
    """The newest event's id and chain. The tests have one writer, so its chain's ids grow by CHAINS."""
    return conn.execute("SELECT event_id, (event_payload::jsonb ->> 'chain')::int FROM audit_log "
                        "ORDER BY created_at DESC, event_id DESC LIMIT 1").fetchone()


@pytest.fixture
def wrote(migrated):
    """A writer that committed one event (it has compiled the partition's CHECKs), an admin session with the
    guards off, and the chains' heads after that event."""
    with psycopg.connect(migrated) as writer, admin(migrated) as a:
        commit_user(writer, "first")
        yield writer, a, heads(a)


def refused_at_commit(writer, before: list[tuple], name: str, violation: str) -> None:
    """The writer's next user is refused at its commit by the CHECK ``violation`` matches: neither the user
    nor an event is kept, no chain's head moves."""
    writer.execute(INSERT, (str(uuid.uuid4()), name, f"{name}@x.io"))
    with pytest.raises(psycopg.errors.CheckViolation, match=violation):
        writer.commit()
    writer.rollback()
    assert writer.execute("SELECT count(*) FROM users WHERE username = %s", (name,)).fetchone()[0] == 0
    assert heads(writer) == before


def test_a_check_added_after_a_backend_wrote_is_enforced_at_its_next_commit(migrated, wrote):
    writer, a, before = wrote
    first, _ = newest(a)
    a.execute(f"ALTER TABLE audit_log ADD CONSTRAINT no_second_event CHECK (event_id <= {first}) NOT VALID")
    refused_at_commit(writer, before, "second", r'new row for relation "audit_log_(p\d{4}_\d{2}|default)" violates '
                                                r'check constraint "no_second_event"')
    a.execute("ALTER TABLE audit_log DROP CONSTRAINT no_second_event")
    commit_user(writer, "third")
    chain_ok(migrated, 2)


def test_the_declared_columns_match_check_is_the_one_evaluated(wrote):
    """audit_log_columns_match replaced (guards off) by one every row fails: the commit fails by its name."""
    writer, a, before = wrote
    a.execute("ALTER TABLE audit_log DROP CONSTRAINT audit_log_columns_match")
    a.execute("ALTER TABLE audit_log ADD CONSTRAINT audit_log_columns_match "
              "CHECK (event_payload::jsonb ->> 'actor' = 'nobody at all') NOT VALID")
    refused_at_commit(writer, before, "refused", '"audit_log_columns_match"')


def test_no_partition_for_the_commit_time_fails_the_commit_and_keeps_nothing(migrated):
    with psycopg.connect(migrated) as writer, admin(migrated) as a:
        commit_user(writer, "first")
        before = heads(a)
        current, _ = a.execute(CURRENT).fetchone()
        a.execute(f"ALTER TABLE audit_log DETACH PARTITION {current}")
        a.execute("ALTER TABLE audit_log DETACH PARTITION audit_log_default")
        writer.execute(INSERT, (str(uuid.uuid4()), "nowhere", "nowhere@x.io"))
        with pytest.raises(psycopg.errors.CheckViolation, match='no partition of relation "audit_log" found for row'):
            writer.commit()
        writer.rollback()
        assert writer.execute("SELECT count(*) FROM users WHERE username = 'nowhere'").fetchone()[0] == 0
        assert heads(writer) == before
        start, end = a.execute(MONTH).fetchone()
        a.execute(f"ALTER TABLE audit_log ATTACH PARTITION {current} FOR VALUES FROM ('{start}') TO ('{end}')")
        a.execute("ALTER TABLE audit_log ATTACH PARTITION audit_log_default DEFAULT")
        commit_user(writer, "again")
    chain_ok(migrated, 2)


def test_the_writer_follows_partitions_created_detached_and_attached(migrated):
    with psycopg.connect(migrated) as writer, admin(migrated) as a:
        commit_user(writer, "e1")
        current, first_oid = a.execute(CURRENT).fetchone()
        first, _ = newest(a)
        assert where_is(a, first) == (current, first_oid)
        # detached and renamed: the partition rule creates this month's partition again
        a.execute(f"ALTER TABLE audit_log DETACH PARTITION {current}")
        a.execute(f"ALTER TABLE {current} RENAME TO audit_log_first")
        a.execute(ensure_partitions(PartitionRule("audit_log", "created_at", months_ahead=3)))
        created_oid = a.execute(CURRENT).fetchone()[1]
        assert created_oid != first_oid
        commit_user(writer, "e2")
        assert where_is(a, first + 1 * CHAINS) == (current, created_oid)
        # the created one detached, the first attached back
        a.execute(f"ALTER TABLE audit_log DETACH PARTITION {current}")
        a.execute(f"ALTER TABLE {current} RENAME TO audit_log_second")
        a.execute(f"ALTER TABLE audit_log_first RENAME TO {current}")
        start, end = a.execute(MONTH).fetchone()
        a.execute(f"ALTER TABLE audit_log ATTACH PARTITION {current} FOR VALUES FROM ('{start}') TO ('{end}')")
        commit_user(writer, "e3")
        assert where_is(a, first + 2 * CHAINS) == (current, first_oid)
        # no month partition at all: the default takes it
        a.execute(f"ALTER TABLE audit_log DETACH PARTITION {current}")
        commit_user(writer, "e4")
        assert where_is(a, first + 3 * CHAINS)[0] == "audit_log_default"
        a.execute(f"ALTER TABLE audit_log_default RENAME TO audit_log_spare")   # no gap: put it all back
        a.execute("ALTER TABLE audit_log DETACH PARTITION audit_log_spare")
        a.execute(f"ALTER TABLE audit_log ATTACH PARTITION {current} FOR VALUES FROM ('{start}') TO ('{end}')")
        a.execute("INSERT INTO audit_log SELECT * FROM audit_log_second")
        a.execute("INSERT INTO audit_log SELECT * FROM audit_log_spare")
    chain_ok(migrated, 4)


def test_a_unique_index_on_a_partition_is_enforced(migrated):
    with psycopg.connect(migrated) as writer, admin(migrated) as a:
        commit_user(writer, "first")
        first, chain = newest(a)
        current, _ = a.execute(CURRENT).fetchone()
        a.execute(f"CREATE UNIQUE INDEX audit_log_one_id ON {current} (event_id)")
        # the writer's chain is the one free from its own (pid % CHAINS + 1): its next event reuses the first id
        a.execute("UPDATE audit_chain_head SET next_id = next_id - %s WHERE chain = %s", (CHAINS, chain))
        writer.execute(INSERT, (str(uuid.uuid4()), "dup", "dup@x.io"))
        with pytest.raises(psycopg.errors.UniqueViolation, match='"audit_log_one_id"'):
            writer.commit()
        writer.rollback()
        assert writer.execute("SELECT count(*) FROM users WHERE username = 'dup'").fetchone()[0] == 0
        a.execute("UPDATE audit_chain_head SET next_id = next_id + %s WHERE chain = %s", (CHAINS, chain))
        commit_user(writer, "second")
        a.execute("SET enable_seqscan = off")
        assert a.execute("SELECT count(*) FROM audit_log WHERE event_id = %s", (first + CHAINS,)).fetchone()[0] == 1
    chain_ok(migrated, 2)


def test_a_row_trigger_on_audit_log_fires_for_every_row(migrated):
    with psycopg.connect(migrated) as writer, admin(migrated) as a:
        commit_user(writer, "before")
        first, _ = newest(a)
        a.execute("CREATE TABLE seen (event_id bigint)")
        a.execute("CREATE FUNCTION note_event() RETURNS trigger LANGUAGE plpgsql AS "
                  "$$ BEGIN INSERT INTO public.seen VALUES (NEW.event_id); RETURN NULL; END $$")
        a.execute("CREATE TRIGGER audit_log_seen AFTER INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION note_event()")
        writer.execute(INSERT, (str(uuid.uuid4()), "t1", "t1@x.io"))
        writer.execute(INSERT, (str(uuid.uuid4()), "t2", "t2@x.io"))
        writer.commit()
        assert [r[0] for r in a.execute("SELECT event_id FROM seen ORDER BY 1")] == [first + CHAINS, first + 2 * CHAINS]
        a.execute("DROP TRIGGER audit_log_seen ON audit_log")
        commit_user(writer, "after")
        assert a.execute("SELECT count(*) FROM seen").fetchone()[0] == 2
    chain_ok(migrated, 4)


def test_bulk_rows_across_batches_have_every_index_entry(migrated):
    """25,000 events in one commit cross the writer's batches (1,000) and the chain's chunks (10,000)."""
    rows = 25_000
    with psycopg.connect(migrated) as writer:
        commit_user(writer, "first")
        insert_row_events(writer, "INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
                          "SELECT gen_random_uuid(), 'bulk' || i, 'x', 'bulk' || i || '@x.io', 'pro' "
                          "FROM generate_series({first}, {last}) i", rows)   # row events, not bulk ones
        writer.commit()
    with psycopg.connect(migrated, autocommit=True) as a:
        a.execute("CREATE EXTENSION IF NOT EXISTS amcheck")
        indexes = [r[0] for r in a.execute(
            "SELECT i.indexrelid::regclass::text FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indrelid "
            "WHERE h.inhparent = 'audit_log'::regclass")]
        assert len(indexes) >= 2
        for index in indexes:   # every heap row has its entry (heapallindexed), and the index is sound
            a.execute("SELECT bt_index_check(%s::regclass, true)", (index,))
        a.execute("SET enable_seqscan = off")
        assert a.execute("SELECT count(*) FROM audit_log WHERE event_id >= 1").fetchone()[0] == rows + 1
    chain_ok(migrated, rows + 1)
