"""audit_log_columns_match without parsing the payload (issue 13, part 7; revision 3f6b2d8e4a19).

On whichever capture path the run's migration chose (SOVREN_DB_AUDIT_CAPTURE=plpgsql for the
fallback): every row written satisfies the text comparison, including the odd values; each column
edited alone is refused by the CHECK and, once the CHECK is gone, reported by `audit verify`; what
details holds cannot stand in for a column; no column set to NULL makes the CHECK NULL (which would
pass); the revision validates rows of formats 1, 2 and 3, its downgrade puts the jsonb text back,
and `audit verify` trusts either text on its revision.
"""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.types.json import Jsonb

from sovren_db import commands
from sovren_db.compliance.audit_format import COLUMNS_MATCH, COLUMNS_MATCH_JSONB, SUFFIX
from sovren_db.compliance.audit_verify import stream_chain
from sovren_db.core.config import load_settings
from sovren_db.core.errors import MigrationFailed
from tests.integration.test_audit_trail import add_user

pytestmark = pytest.mark.postgres

REVISION, PREVIOUS = "3f6b2d8e4a19", "7c3e9a41f0b2"
LIVE = ("SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint "
        "WHERE conrelid = 'audit_log'::regclass AND conname = 'audit_log_columns_match'")
ODD_QUERY = 'INSERT INTO users AS "Ünï\\x""q" (user_id, username, password_hash, email, subscription_tier) ' \
            "VALUES (%s, %s, 'x', %s, 'pro')"
# An event with no query and no subject, its accessed_at ending in zeros (rendered .1), as the owner appends it.
BARE_EVENT = """SELECT sovren_audit_chain(jsonb_build_array(jsonb_build_object(
    'table', 'users', 'action', 'ERASE', 'details', %s::jsonb, 'accessed_at', %s::text, 'query', NULL,
    'user_id', %s::uuid)))"""
MATCHES = f"SELECT event_id, ({COLUMNS_MATCH}) FROM audit_log ORDER BY event_id"


@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return pg_url


def admin(url: str) -> psycopg.Connection:
    """A superuser session in replication role: triggers and event triggers (the guards) off, the session
    the issue's tampering runs in."""
    conn = psycopg.connect(url, autocommit=True)
    conn.execute("SET session_replication_role = replica")
    return conn


def newest(conn, where: str = "true") -> int:
    return conn.execute(f"SELECT max(event_id) FROM audit_log WHERE {where}").fetchone()[0]


def test_every_row_written_satisfies_the_text_comparison(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        definition, valid = conn.execute(LIVE).fetchone()
        assert valid and "starts_with" in definition
        conn.execute("SET TimeZone = 'America/New_York'")   # neither the session's zone nor its date style matter
        conn.execute("SET DateStyle = 'SQL, DMY'")
        for _ in range(500):   # commits until one's created_at ends in a zero (rendered one digit shorter)
            user = uuid.uuid4()
            conn.execute(ODD_QUERY, (user, f"u{user.hex[:8]}", f"{user.hex[:8]}@x.io"))
            if conn.execute("SELECT extract(microseconds FROM max(created_at))::bigint % 10 = 0 "
                            "FROM audit_log").fetchone()[0]:
                break
        else:
            pytest.fail("500 commits and no created_at ending in zero")
        conn.execute("UPDATE users SET subscription_tier = 'business'")
        conn.execute("SELECT sovren_audit_append('users', 'ERASE', NULL, %s)", ('{"x": "a\\\\b \\"q\\" é"}',))
        conn.execute(BARE_EVENT, ("{}", "2026-12-06T19:00:00.1", None))
        rows = conn.execute(MATCHES).fetchall()
        assert rows and all(match is True for _, match in rows)
        kinds = conn.execute("""SELECT count(*) FILTER (WHERE query IS NULL), count(*) FILTER (WHERE user_id IS NULL),
                                       count(*) FILTER (WHERE strpos(query, '"Ünï\\x""q"') > 0),
                                       count(*) FILTER (WHERE event_payload LIKE '%"accessed_at": "2026-12-06T19:00:00.1"}'),
                                       count(*) FILTER (WHERE prev_hash IS NULL AND event_payload LIKE '%"prev_hash": ""%'),
                                       count(*) FILTER (WHERE left(event_payload, 9) = '{"v": 3, ')
                                  FROM audit_log""").fetchone()
        assert kinds[0] == 1 and kinds[1] == 2 and kinds[2] >= 1 and kinds[3] == 1 and kinds[4] >= 1
        assert kinds[5] == len(rows)
    report = stream_chain(psycopg.connect(migrated))
    assert report.broken is None and report.every_row is False   # the validated, unaltered new text is trusted
    with psycopg.connect(migrated) as conn:
        assert stream_chain(conn, every_row=True).broken is None


EDITS = [
    ("actor", "'someone_else'"), ("user_id", "gen_random_uuid()"), ("user_id", "NULL"), ("action", "'DELETE'"),
    ("table_name", "'payments'"), ("query", "'SELECT 1'"), ("query", "NULL"), ("query", "query || ' '"),
    ("accessed_at", "accessed_at - interval '1 microsecond'"), ("created_at", "created_at + interval '1 microsecond'"),
    ("prev_hash", "repeat('0', 64)"), ("prev_hash", "NULL"), ("event_id", "event_id + 1"),
]


@pytest.mark.parametrize("column, value", EDITS)
def test_a_column_edited_alone_is_refused_and_reported_by_verify(migrated, column, value):
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)
        add_user(conn)   # the second user's event follows the first on its chain: it has a previous hash
        first, target = conn.execute("SELECT min(event_id), max(event_id) FROM audit_log").fetchone()
        assert target - first == 8
    with admin(migrated) as a:
        with pytest.raises(psycopg.errors.CheckViolation, match="audit_log_columns_match"):
            a.execute(f"UPDATE audit_log SET {column} = {value} WHERE event_id = {target}")
        a.execute("ALTER TABLE audit_log DROP CONSTRAINT audit_log_columns_match")
        a.execute(f"UPDATE audit_log SET {column} = {value} WHERE event_id = {target}")
    with psycopg.connect(migrated) as conn:
        report = stream_chain(conn)
    assert report.every_row is True and report.break_count >= 1
    problems = {b.event_id if column != "event_id" else b.event_id - 1: b.problem for b in report.breaks}
    expected = {"event_id": "hash differs", "prev_hash": "prev_hash is not the previous row's hash"}.get(
        column, "a column differs from its value in event_payload")
    assert expected in problems[target]


def test_an_erasure_event_with_no_subject_refuses_one(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("SELECT sovren_audit_append('users', 'ERASE', NULL, '{}')")
        target = newest(conn)
    with admin(migrated) as a, pytest.raises(psycopg.errors.CheckViolation, match="audit_log_columns_match"):
        a.execute(f"UPDATE audit_log SET user_id = gen_random_uuid() WHERE event_id = {target}")


# An event whose details hold, as JSON structure (not inside a string, where quotes are escaped), the very
# text the edited row's suffix or prefix would need: {"id": 1, "user_id": U2, "prev_hash": P, "accessed_at": A}
# renders as `..., "user_id": "U2", "prev_hash": "P", "accessed_at": "A"}`.
def test_details_holding_the_suffix_or_prefix_text_cannot_make_an_edited_row_pass(migrated):
    other, at = str(uuid.uuid4()), "2026-12-06T19:00:00.5"
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)
        chain = conn.execute("SELECT pg_backend_pid() % 8 + 1").fetchone()[0]   # the head this backend takes
        previous = conn.execute("SELECT hash FROM audit_chain_head WHERE chain = %s", (chain,)).fetchone()[0]
        details = Jsonb({
            "fake": {"id": 1, "user_id": other, "prev_hash": previous, "accessed_at": at},
            "also": {"query": "SELECT 1", "table": "payments", "action": "DELETE", "details": {}},
        })
        conn.execute(BARE_EVENT, (details, at, str(uuid.uuid4())))
        target = newest(conn)
        forged_suffix = conn.execute(f"SELECT {SUFFIX} FROM (SELECT %s::uuid AS user_id, prev_hash, accessed_at "
                                     "FROM audit_log WHERE event_id = %s) AS r", (other, target)).fetchone()[0]
        payload = conn.execute("SELECT event_payload FROM audit_log WHERE event_id = %s", (target,)).fetchone()[0]
        assert forged_suffix in payload and not payload.endswith(forged_suffix)
        assert '"query": "SELECT 1", "table": "payments", "action": "DELETE", "details": ' in payload
    for column, value in [("user_id", f"'{other}'"), ("query", "'SELECT 1'"), ("table_name", "'payments'")]:
        with admin(migrated) as a, pytest.raises(psycopg.errors.CheckViolation, match="audit_log_columns_match"):
            a.execute(f"UPDATE audit_log SET {column} = {value} WHERE event_id = {target}")


COLUMNS = (("event_id", "bigint"), ("created_at", "timestamptz"), ("table_name", "text"), ("action", "text"),
           ("user_id", "uuid"), ("actor", "text"), ("accessed_at", "timestamptz"), ("query", "text"),
           ("prev_hash", "text"))


@pytest.mark.parametrize("column", [name for name, _ in COLUMNS])
def test_no_column_set_to_null_makes_the_check_null(migrated, column):
    """A CHECK that is NULL passes: with any one column NULL the expression is true (the payload holds null
    there: user_id of an erasure, a chain's first prev_hash) or false, never NULL. event_payload itself is
    NOT NULL."""
    nulled = ", ".join(f"NULL::{kind} AS {name}" if name == column else name for name, kind in COLUMNS)
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_user(conn)   # the chain's first event: prev_hash NULL, "" in the payload
        add_user(conn)
        conn.execute("SELECT sovren_audit_append('users', 'ERASE', NULL, '{}')")   # user_id NULL, null in the payload
        results = conn.execute(f"SELECT was_null, ({COLUMNS_MATCH}) FROM (SELECT {column} IS NULL AS was_null, "
                               f"{nulled}, event_payload FROM audit_log) AS r").fetchall()
        assert conn.execute("SELECT attnotnull FROM pg_attribute WHERE attrelid = 'audit_log'::regclass "
                            "AND attname = 'event_payload'").fetchone()[0]
    assert len(results) == 3 and [match for _, match in results] == [was_null for was_null, _ in results]
    assert any(was_null for was_null, _ in results) == (column in ("user_id", "prev_hash"))


def formats(conn) -> dict[str, int]:
    return dict(conn.execute("SELECT CASE WHEN left(event_payload, 9) = '{\"v\": 3, ' THEN '3' "
                             "WHEN left(event_payload, 9) = '{\"v\": 2, ' THEN '2' ELSE '1' END, count(*) "
                             "FROM audit_log GROUP BY 1").fetchall())


def test_the_revision_validates_formats_1_2_and_3_and_its_downgrade_puts_the_jsonb_text_back(project, pg_url):
    settings = load_settings(project)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for revision in ("b0423f0c320c", "5e1c0a7b9d21", PREVIOUS):
            commands.migrate(settings, revision)
            add_user(conn)
            add_user(conn)
        assert formats(conn) == {"1": 2, "2": 2, "3": 2}
        old = conn.execute(LIVE).fetchone()
        assert "starts_with" not in old[0] and old[1] is True
    report = stream_chain(psycopg.connect(pg_url))   # the previous revision's text is trusted as well
    assert report.broken is None and report.every_row is False and report.rows == 6
    with psycopg.connect(pg_url) as conn:
        assert stream_chain(conn, every_row=True).broken is None   # the new text, evaluated on every format

    commands.migrate(settings, REVISION)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == REVISION
        new = conn.execute(LIVE).fetchone()
        assert "starts_with" in new[0] and new[1] is True
        # one constraint, of its name, on the parent and on every partition (validated there too)
        assert conn.execute("""SELECT count(DISTINCT c.conname), bool_and(c.convalidated), count(*) FROM pg_constraint c
                                WHERE c.contype = 'c' AND c.conrelid IN (SELECT 'audit_log'::regclass UNION ALL
                                      SELECT inhrelid FROM pg_inherits WHERE inhparent = 'audit_log'::regclass)
                                  AND c.conname LIKE 'audit_log_columns_match%'""").fetchone()[:2] == (1, True)
        add_user(conn)
        assert all(match for _, match in conn.execute(MATCHES).fetchall())
    report = stream_chain(psycopg.connect(pg_url))
    assert report.broken is None and report.every_row is False and report.rows == 7
    commands.migrate(settings)   # check compares with the declaration: the chain's head
    assert commands.check(settings).exit_code == 0 and commands.check(settings, exact=True).exit_code == 0

    commands.downgrade(settings, PREVIOUS)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute(LIVE).fetchone() == old
        add_user(conn)
    report = stream_chain(psycopg.connect(pg_url))
    assert report.broken is None and report.every_row is False and report.rows == 8


def test_a_tampered_row_stops_the_revision_and_the_old_constraint_stands(project, pg_url):
    """A row edited while the constraint was away fails the replacement's validation: the revision stops at
    the previous one, the old constraint unchanged, and the replacement (committed NOT VALID before its
    validation, as the revision says) refuses new tampering meanwhile; verify walks every row and names it."""
    settings = load_settings(project)
    commands.migrate(settings, PREVIOUS)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        add_user(conn)
        target = newest(conn)
    with admin(pg_url) as a:
        a.execute("ALTER TABLE audit_log DROP CONSTRAINT audit_log_columns_match")
        a.execute(f"UPDATE audit_log SET actor = 'someone_else' WHERE event_id = {target}")
        a.execute(f"ALTER TABLE audit_log ADD CONSTRAINT audit_log_columns_match CHECK ({COLUMNS_MATCH_JSONB}) NOT VALID")
    with pytest.raises(MigrationFailed, match="audit_log_columns_match_next"):
        commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == PREVIOUS
        definition, valid = conn.execute(LIVE).fetchone()
        assert "starts_with" not in definition and not valid
        assert conn.execute("SELECT convalidated FROM pg_constraint WHERE conrelid = 'audit_log'::regclass "
                            "AND conname = 'audit_log_columns_match_next'").fetchone() == (False,)
    report = stream_chain(psycopg.connect(pg_url))
    assert report.every_row is True and report.broken.event_id == target
