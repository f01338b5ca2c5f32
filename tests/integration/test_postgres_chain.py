"""The revision chain against a real Postgres started by the harness."""

from __future__ import annotations

import psycopg
import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.postgres.state import fingerprint, normalise_sql
from tests.integration.conftest import add_revision, append_declaration

pytestmark = pytest.mark.postgres


def settings_for(project):
    return load_settings(project)


def tables(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r','p')")}


def test_migrate_check_downgrade_check(project, pg_url):
    settings = settings_for(project)
    out = commands.migrate(settings)
    assert out.data["applied"], "the initial revision is applied"
    assert {"users", "operations", "audit_log", "payments", "operations_default"} <= tables(pg_url)

    clean = commands.check(settings)
    assert clean.exit_code == 0, [f.sentence() for f in clean.findings]

    commands.downgrade(settings, "base")
    assert tables(pg_url) <= {"alembic_version", "sovren_db_deferred"}
    after = commands.check(settings)
    assert after.exit_code == 1
    assert all(f.code == "pending" for f in after.findings)


def test_second_migrate_finds_nothing_to_do(project):
    settings = settings_for(project)
    commands.migrate(settings)
    again = commands.migrate(settings)
    assert again.data["applied"] == []


DRIFT = {
    "dropped policy": ("DROP POLICY users_tenant_isolation ON users",
                       "policy users_tenant_isolation on users: missing in database"),
    "disabled trigger": ("ALTER TABLE users DISABLE TRIGGER users_audit_update",
                         "trigger users_audit_update on users: disabled in database"),
    "RLS turned off": ("ALTER TABLE transactions DISABLE ROW LEVEL SECURITY",
                       "row level security on transactions: disabled in database"),
    "FORCE RLS removed": ("ALTER TABLE payments NO FORCE ROW LEVEL SECURITY",
                          "row level security on payments: not forced in database"),
    "missing partition": ("DROP TABLE operations_default",
                          "partitions of operations: missing in database: operations_default"),
    "extra index": ("CREATE INDEX extra_last_login ON users (last_login)",
                    "index extra_last_login on users: in database but not declared"),
    "revoked grant": ("REVOKE SELECT ON users FROM sovren_readonly",
                      "grant SELECT on users to sovren_readonly: missing in database"),
    "dropped extension": ("DROP EXTENSION pgcrypto", "extension pgcrypto: missing in database"),
    "altered policy": ("ALTER POLICY operations_tenant_isolation ON operations USING (true)",
                       "policy operations_tenant_isolation on operations: expression was changed in the database"),
}


@pytest.mark.parametrize("case", sorted(DRIFT))
def test_drift_is_found_and_named(project, pg_url, case):
    statement, expected = DRIFT[case]
    settings = settings_for(project)
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(statement)
    out = commands.check(settings)
    assert out.exit_code == 1
    sentences = [f.sentence() for f in out.findings]
    assert any(s.startswith(expected) for s in sentences), sentences
    assert len(out.findings) == 1, sentences


def test_autogenerate_writes_nothing_when_in_step(project):
    settings = settings_for(project)
    commands.migrate(settings)
    out = commands.revision(settings, "nothing", autogenerate=True)
    assert out.exit_code == 1
    assert not any("nothing" in p.name for p in (project / "migrations" / "versions").iterdir())


def test_autogenerate_writes_a_revision_for_a_new_policy(project, pg_url):
    settings = settings_for(project)
    commands.migrate(settings)
    security = project / "postgres" / "security.py"
    security.write_text(security.read_text() + (
        "\npolicies.append(Policy('subscriptions_active_select', 'subscriptions', using=\"status = 'active'\","
        " command='SELECT', roles=(READONLY,)))\n"))
    out = commands.revision(settings_for(project), "active subscriptions", autogenerate=True)
    assert out.exit_code == 0
    written = out.data["written"][0]
    text = open(written).read()
    assert "op.create_policy(" in text and "subscriptions_active_select" in text
    assert "op.drop_policy(" in text  # the downgrade
    commands.migrate(settings_for(project))
    assert commands.check(settings_for(project)).exit_code == 0
    commands.downgrade(settings_for(project), "-1")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_policy WHERE polname = 'subscriptions_active_select'"
                            ).fetchone()[0] == 0


def test_a_policy_expression_postgres_and_python_normalise_differently_is_not_drift(project, pg_url):
    # A no-break space in a literal: Python's \s matches it, Postgres's does not. The live fingerprint
    # must come from the server on both sides (comment and check), never from Python.
    settings = settings_for(project)
    commands.migrate(settings)
    security = project / "postgres" / "security.py"
    security.write_text(security.read_text() + (
        "\npolicies.append(Policy('subscriptions_not_gold', 'subscriptions', using=\"tier <> 'gold\\u00a0 plan'\","
        " command='SELECT', roles=(READONLY,)))\n"))
    assert commands.revision(settings_for(project), "not gold", autogenerate=True).exit_code == 0
    commands.migrate(settings_for(project))
    with psycopg.connect(pg_url) as conn:
        using, comment = conn.execute(
            "SELECT pg_get_expr(polqual, polrelid), obj_description(oid, 'pg_policy') FROM pg_policy "
            "WHERE polname = 'subscriptions_not_gold'").fetchone()
    assert "\u00a0" in using
    assert comment.split()[2] != fingerprint(normalise_sql(using), normalise_sql(None))  # Python would differ
    out = commands.check(settings_for(project))
    assert out.findings == [] and out.exit_code == 0, [f.sentence() for f in out.findings]


def test_plan_prints_sql_without_running_it(project, pg_url):
    settings = settings_for(project)
    out = commands.plan(settings)
    assert out.exit_code == 1
    sql = out.data["sql"]
    assert "CREATE TABLE users" in sql and "CREATE POLICY users_tenant_isolation" in sql
    assert "PARTITION BY RANGE (executed_at)" in sql
    assert tables(pg_url) == set()


def test_a_dropped_foreign_key_is_named(project, pg_url):
    settings = settings_for(project)
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE payments DROP CONSTRAINT payments_transaction_id_fkey")
    sentences = [f.sentence() for f in commands.check(settings).findings]
    assert sentences == ["foreign key payments_transaction_id_fkey on payments: missing in database"]


def test_a_migration_waits_out_a_held_lock_without_queueing(project, pg_url):
    """The ALTER waits for the holder outside the lock queue (postgres/lockwait.py): no lock on users
    is ever requested and not granted, so readers of users never wait behind the migration."""
    import threading
    import time

    settings = settings_for(project)
    commands.migrate(settings)
    add_revision(project, "lock0000001", "    op.execute('ALTER TABLE users ADD COLUMN nickname text')",
                 "op.execute('ALTER TABLE users DROP COLUMN nickname')")
    holder = psycopg.connect(pg_url)
    holder.execute("LOCK TABLE users IN ACCESS SHARE MODE")
    queued: list[int] = []

    def watch_then_release() -> None:
        with psycopg.connect(pg_url, autocommit=True) as watcher:
            for _ in range(50):
                queued.append(watcher.execute("SELECT count(*) FROM pg_locks WHERE relation = 'users'::regclass "
                                              "AND NOT granted").fetchone()[0])
                time.sleep(0.02)
        holder.rollback()

    release = threading.Thread(target=watch_then_release)
    release.start()
    try:
        out = commands.migrate(settings_for(project))
    finally:
        release.join()
        holder.close()
    assert out.data["applied"] == ["lock0000001"]
    assert set(queued) == {0}


def test_check_reports_personal_data_that_erasure_does_not_cover(project):
    settings = settings_for(project)
    commands.migrate(settings)
    append_declaration(project, "tables.py", (
        "\nuser_notes = Table('user_notes', metadata,\n"
        "    Column('note_id', UUID(as_uuid=True), primary_key=True),\n"
        "    Column('user_id', UUID(as_uuid=True), ForeignKey('users.user_id'), nullable=False),\n"
        "    Column('phone', Text))\n"))
    out = commands.check(settings_for(project))
    assert out.exit_code == 1
    codes = {(f.code, f.object.split()[-1]) for f in out.findings if f.code.startswith("pii")}
    assert any(code == "pii-uncovered" and "user_notes" in obj for code, obj in codes), out.findings


def test_without_mongodb_the_chain_stands_in_for_the_server(project):
    settings = settings_for(project)
    commands.migrate(settings)
    toml = project / "mongo" / "communications.toml"
    text = toml.read_text()
    toml.write_text(text.replace("[shard]", "[[indexes]]\nkey = { recipient = 1 }\n\n[shard]", 1))
    drift = commands.check(settings_for(project))
    assert [f.sentence() for f in drift.findings if f.store == "mongo"] == \
        ["index communications.recipient_1: missing in database"]
    assert any("compared the declarations with the revision chain" in n for n in drift.notes)
    written = commands.revision(settings_for(project), "recipient index", autogenerate=True)
    source = open(written.data["written"][0]).read()
    assert "op.mongo_create_index(" in source and "op.mongo_drop_index(" in source
    assert "op.create_table" not in source
    commands.migrate(settings_for(project))  # the Mongo step is deferred: no server
    assert commands.check(settings_for(project)).exit_code == 0
