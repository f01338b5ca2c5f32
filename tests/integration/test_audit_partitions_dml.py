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
GUARD_REVISION = "f3b9d2a7c5e1"   # the guard's own revision (c7e2a9f4b1d6 after it retags its event trigger)
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


def write(conn, target: str, user: str, ids: list[str], at: str = "date_trunc('month', now()) + interval '1 day'") -> None:
    """Two rows inserted, updated and deleted by statements naming ``target`` (operations or a partition),
    executed at ``at`` (an SQL expression: the partition's month)."""
    conn.execute(f"INSERT INTO {target} (operation_id, user_id, parameters, confidence, executed_at) "
                 f"SELECT id::uuid, %s, '{{}}', 0.5, {at} "
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


# -- partitions made by hand (the guard's event trigger gives them the triggers: revision f3b9d2a7c5e1) -----------

AUDIT_TRIGGERS = [f"operations_audit_{e}" for e in sorted((*DML, "truncate"))]
BY_HAND = {
    "create": ["CREATE TABLE operations_by_hand PARTITION OF operations FOR VALUES FROM ('2040-01-01') TO ('2040-02-01')"],
    "attach": ["CREATE TABLE operations_by_hand (LIKE operations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)",
               "ALTER TABLE operations ATTACH PARTITION operations_by_hand FOR VALUES FROM ('2040-01-01') TO ('2040-02-01')"],
}
IN_2040 = "timestamp '2040-01-02 10:00'"


def triggers_of(conn, table: str) -> list[str]:
    """The names of the audit triggers standing on ``table`` (statement-level, calling sovren_audit_stage)."""
    return [r[0] for r in conn.execute(
        "SELECT tgname FROM pg_trigger WHERE tgrelid = %s::regclass AND tgfoid = 'sovren_audit_stage()'::regprocedure "
        "ORDER BY tgname", (table,))]


@pytest.mark.parametrize("how", sorted(BY_HAND))
def test_a_partition_made_by_hand_gets_the_triggers_and_its_writes_leave_the_parents_events(migrated, how):
    """CREATE TABLE ... PARTITION OF and ATTACH PARTITION by the owner: the partition carries the parent's four
    audit triggers at the end of the command, and DML naming it writes, byte for byte but for the statement's
    shape, the events the same DML on the parent writes; a TRUNCATE naming it leaves its event."""
    with psycopg.connect(migrated) as conn:
        user, ids = add_user(conn, f"p{uuid.uuid4().hex[:6]}"), two_ids()
        conn.commit()
        for statement in BY_HAND[how]:
            conn.execute(statement)
        conn.commit()
        assert triggers_of(conn, "operations_by_hand") == AUDIT_TRIGGERS
        payloads = {}
        for target in ("operations", "operations_by_hand"):
            since = len(operation_events(conn))
            write(conn, target, user, ids, at=IN_2040)
            conn.commit()
            payloads[target] = [masked(json.dumps({**e, "query": target in e["query"]}, sort_keys=True))
                                for _, _, e in operation_events(conn, since)]
        assert len(payloads["operations_by_hand"]) == 6 and payloads["operations_by_hand"] == payloads["operations"]
        write(conn, "operations", user, two_ids(), at=IN_2040)   # rows to truncate: two inserted and kept
        conn.execute("INSERT INTO operations_by_hand (operation_id, user_id, parameters, confidence, executed_at) "
                     f"VALUES (gen_random_uuid(), %s, '{{}}', 0.5, {IN_2040})", (user,))
        conn.commit()
        before = count(conn)
        conn.execute("TRUNCATE operations_by_hand")
        conn.commit()
        (table, action, event), = operation_events(conn, len(operation_events(conn)) - 1)
        assert (table, action, event["user_id"], event["details"]["key"]) == ("operations_by_hand", "TRUNCATE", None, None)
        total = count(conn)
        assert total == before + 1
    chain_ok(migrated, total)


def test_attaching_a_table_that_has_some_of_the_triggers_gives_it_the_others_only(migrated):
    """A partition detached and attached again keeps and finds its four; a table holding one of them by its name
    and one renamed gets the two others, and a row written through it is still one event (no trigger twice)."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn, f"p{uuid.uuid4().hex[:6]}")
        for statement in BY_HAND["create"]:
            conn.execute(statement)
        conn.execute("ALTER TABLE operations DETACH PARTITION operations_by_hand")
        assert triggers_of(conn, "operations_by_hand") == AUDIT_TRIGGERS   # a detached table keeps its own
        conn.execute(BY_HAND["attach"][1])
        assert triggers_of(conn, "operations_by_hand") == AUDIT_TRIGGERS
        conn.execute("CREATE TABLE operations_some (LIKE operations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        conn.execute("CREATE TRIGGER operations_audit_insert AFTER INSERT ON operations_some REFERENCING NEW TABLE AS "
                     "new_rows FOR EACH STATEMENT EXECUTE FUNCTION sovren_audit_stage()")
        conn.execute("CREATE TRIGGER renamed_delete AFTER DELETE ON operations_some REFERENCING OLD TABLE AS "
                     "old_rows FOR EACH STATEMENT EXECUTE FUNCTION sovren_audit_stage()")
        conn.execute("ALTER TABLE operations ATTACH PARTITION operations_some "
                     "FOR VALUES FROM ('2040-02-01') TO ('2040-03-01')")
        assert triggers_of(conn, "operations_some") == ["operations_audit_insert", "operations_audit_truncate",
                                                        "operations_audit_update", "renamed_delete"]
        before, ids = count(conn), two_ids()
        write(conn, "operations_some", user, ids, at="timestamp '2040-02-02'")
        assert [(t, a) for t, a, _ in operation_events(conn, len(operation_events(conn)) - 6)] == \
            [("operations", a) for a in ("INSERT",) * 2 + ("UPDATE",) * 2 + ("DELETE",) * 2]
        total = count(conn)
        assert total == before + 6
    chain_ok(migrated, total)


def test_a_sub_partitioned_partition_and_its_partitions_get_the_triggers(migrated):
    """A statement naming the middle level fires its own statement triggers, one naming a leaf the leaf's: both
    carry the root's four, and their row events name the root."""
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn, f"p{uuid.uuid4().hex[:6]}")
        conn.execute("CREATE TABLE operations_2041 PARTITION OF operations FOR VALUES FROM ('2041-01-01') "
                     "TO ('2042-01-01') PARTITION BY RANGE (executed_at)")
        conn.execute("CREATE TABLE operations_2041_01 PARTITION OF operations_2041 "
                     "FOR VALUES FROM ('2041-01-01') TO ('2041-02-01')")
        conn.execute("CREATE TABLE operations_2041_02 (LIKE operations INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        conn.execute("ALTER TABLE operations_2041 ATTACH PARTITION operations_2041_02 "
                     "FOR VALUES FROM ('2041-02-01') TO ('2041-03-01')")
        for table in ("operations_2041", "operations_2041_01", "operations_2041_02"):
            assert triggers_of(conn, table) == AUDIT_TRIGGERS, table
        before = count(conn)
        for target, at in (("operations_2041", "timestamp '2041-01-05'"), ("operations_2041_01", "timestamp '2041-01-06'"),
                           ("operations_2041_02", "timestamp '2041-02-06'")):
            write(conn, target, user, two_ids(), at=at)
        events = operation_events(conn, len(operation_events(conn)) - 18)
        assert {t for t, _, _ in events} == {"operations"} and len(events) == 18
        conn.execute("TRUNCATE operations_2041")
        assert sorted(t for t, a, _ in operation_events(conn, len(operation_events(conn)) - 3)
                      if a == "TRUNCATE") == ["operations_2041", "operations_2041_01", "operations_2041_02"]
        total = count(conn)
        assert total == before + 21
    chain_ok(migrated, total)


def test_sovren_db_partitions_after_a_partition_made_by_hand_leaves_one_of_each_trigger(migrated, project):
    """The guard gives the triggers at the end of ensure_partitions' own CREATE TABLE, which then finds them there;
    a partition made by hand under the name ensure_partitions would use is left as it is."""
    from sovren_db.cli.partitions import maintain

    with psycopg.connect(migrated, autocommit=True) as conn:
        start, end = conn.execute("SELECT date_trunc('month', now())::date + interval '4 months', "
                                  "date_trunc('month', now())::date + interval '5 months'").fetchone()
        name = f"operations_p{start:%Y_%m}"
        conn.execute(f"CREATE TABLE {name} PARTITION OF operations FOR VALUES FROM ('{start:%Y-%m-%d}') TO ('{end:%Y-%m-%d}')")
    created = maintain(load_settings(project), months_ahead=5)["operations"]["created"]
    assert name not in created and len(created) == 1
    with psycopg.connect(migrated) as conn:
        present = partitions(conn, "operations")
        assert name in present and created[0] in present
        for partition in present:
            assert triggers_of(conn, partition) == AUDIT_TRIGGERS, partition
    assert commands.check(load_settings(project)).exit_code == 0


def guard_installed(conn) -> tuple:
    """The guard's function and event triggers (events, tags, states), and whether the cover function exists."""
    return (conn.execute("SELECT pg_get_functiondef('sovren_audit_guard_ddl()'::regprocedure)").fetchone()[0],
            conn.execute("SELECT evtname, evtevent, evttags, evtenabled FROM pg_event_trigger "
                         "WHERE evtname LIKE 'sovren_audit_guard_%' ORDER BY evtname").fetchall(),
            conn.execute("SELECT to_regprocedure('sovren_audit_cover_partitions()') IS NOT NULL").fetchone()[0])


def test_the_downgrade_gives_the_previous_guard_back_and_the_upgrade_covers_partitions_made_meanwhile(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings, REVISION)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        previous = guard_installed(conn)
    commands.migrate(settings, GUARD_REVISION)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        upgraded = guard_installed(conn)
        assert upgraded[0] != previous[0] and upgraded[1] == previous[1] and upgraded[2] and not previous[2]
    commands.downgrade(settings, REVISION)
    with psycopg.connect(pg_url) as conn:
        assert guard_installed(conn) == previous
        conn.execute(BY_HAND["create"][0])
        assert triggers_of(conn, "operations_by_hand") == []   # the gap, back
        user = add_user(conn, f"p{uuid.uuid4().hex[:6]}")
        conn.commit()
        before = count(conn)
        write(conn, "operations_by_hand", user, two_ids(), at=IN_2040)
        conn.commit()
        assert count(conn) == before
    commands.migrate(settings, GUARD_REVISION)
    with psycopg.connect(pg_url) as conn:
        assert guard_installed(conn) == upgraded
        assert triggers_of(conn, "operations_by_hand") == AUDIT_TRIGGERS   # given by the upgrade itself
        write(conn, "operations_by_hand", user, two_ids(), at=IN_2040)
        conn.commit()
        total = count(conn)
        assert total == before + 6
    chain_ok(pg_url, total)
    commands.migrate(settings)
    assert commands.check(settings).exit_code == 0


def test_check_names_a_partition_without_the_audit_triggers(migrated, project):
    """The safety net for a server where the guard was off (or a trigger dropped from a partition): `check` names
    the partition and the triggers it lacks (exit 1), and nothing once they stand again."""
    settings = load_settings(project)
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_alter DISABLE")
        conn.execute(BY_HAND["create"][0])
        conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_alter ENABLE")
        assert triggers_of(conn, "operations_by_hand") == []
        conn.execute(f"DROP TRIGGER operations_audit_update ON {this_month(conn)}")
        month = this_month(conn)
    outcome = commands.check(settings)
    found = [f for f in outcome.findings if f.code == "partition-trigger-missing"]
    assert outcome.exit_code == 1
    assert sorted(f.object for f in found) == sorted([f"partition {month} of operations",
                                                    "partition operations_by_hand of operations"])
    messages = {f.object: f.message for f in found}
    assert ("operations_audit_delete, operations_audit_insert, operations_audit_truncate, operations_audit_update "
            "of operations") in messages["partition operations_by_hand of operations"]
    assert messages[f"partition {month} of operations"].startswith("lacks the statement trigger(s) "
                                                                   "operations_audit_update of operations")
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("SELECT sovren_audit_cover_partitions()")
        assert triggers_of(conn, "operations_by_hand") == triggers_of(conn, month) == AUDIT_TRIGGERS
    assert commands.check(settings).exit_code == 0


def test_the_offline_sql_of_the_guard_revision_does_what_the_online_one_does(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings, GUARD_REVISION)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        upgraded = guard_installed(conn)
    commands.downgrade(settings, REVISION)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        previous = guard_installed(conn)
        conn.execute(BY_HAND["create"][0])
        conn.execute(revision_sql(project, "upgrade", "f3b9d2a7c5e1"))
        assert guard_installed(conn) == upgraded
        assert triggers_of(conn, "operations_by_hand") == AUDIT_TRIGGERS
        conn.execute(revision_sql(project, "downgrade", "f3b9d2a7c5e1"))
        assert guard_installed(conn) == previous


# -- the guard covers partitions only after a command that made or attached one (revision b9e5d3f7a2c4) ------------
COVERING_REVISION, BEFORE_COVERING = "b9e5d3f7a2c4", "c7e2a9f4b1d6"
COVER_CALLS = "SELECT pg_stat_get_xact_function_calls('sovren_audit_cover_partitions()'::regprocedure)"


def cover_calls(conn, statements: list[str]) -> int:
    """How many times the statements, run in one rolled-back transaction, made the guard call the cover function."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET LOCAL track_functions = 'all'")
        for statement in statements:
            conn.execute(statement)
        return conn.execute(COVER_CALLS).fetchone()[0] or 0


UNRELATED = ["CREATE TABLE unrelated (id integer)", "ALTER TABLE unrelated ADD COLUMN note text",
             "ALTER TABLE users ADD COLUMN nickname text", "CREATE SCHEMA elsewhere CREATE TABLE t (id integer)"]


@pytest.mark.parametrize("made", ["create", "attach", "schema"])
def test_the_guard_covers_partitions_only_after_a_command_that_made_or_attached_one(migrated, made):
    """Unrelated CREATE/ALTER TABLE (and CREATE SCHEMA) commands no longer walk every partition of every
    audited table (1.7x-4.9x a migration's time, revision b9e5d3f7a2c4's docstring); a partition made,
    attached or made inside CREATE SCHEMA still gets its triggers at the end of its command."""
    statements = BY_HAND.get(made) or [
        "CREATE SCHEMA by_hand CREATE TABLE operations_by_hand PARTITION OF public.operations "
        "FOR VALUES FROM ('2040-01-01') TO ('2040-02-01')"]
    with psycopg.connect(migrated, autocommit=True) as conn:
        assert cover_calls(conn, UNRELATED) == 0
        assert cover_calls(conn, statements) >= 1
        for statement in statements:
            conn.execute(statement)
        made_table = "by_hand.operations_by_hand" if made == "schema" else "operations_by_hand"
        assert triggers_of(conn, made_table) == AUDIT_TRIGGERS


def covering_installed(conn) -> tuple:
    return (*guard_installed(conn),
            conn.execute("SELECT pg_get_functiondef('sovren_audit_cover_partitions()'::regprocedure)").fetchone()[0])


def test_the_covering_revision_goes_down_and_up_exactly(project, pg_url):
    """Before it the guard called the cover function after every command it saw (the test above discriminates:
    the unrelated commands call it there); its downgrade gives both bodies back exactly, its offline SQL does the
    same."""
    settings = load_settings(project)
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        head = covering_installed(conn)
    commands.downgrade(settings, BEFORE_COVERING)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        before = covering_installed(conn)
        assert before[0] != head[0] and before[1:3] == head[1:3] and before[3] != head[3]
        assert cover_calls(conn, UNRELATED) == len(UNRELATED)
        conn.execute(revision_sql(project, "upgrade", COVERING_REVISION))
        assert covering_installed(conn) == head
        conn.execute(revision_sql(project, "downgrade", COVERING_REVISION))
        assert covering_installed(conn) == before
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert covering_installed(conn) == head
        assert cover_calls(conn, UNRELATED) == 0
    assert commands.check(settings).exit_code == 0
