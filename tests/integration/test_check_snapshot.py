"""check takes no migration lease: it reads one REPEATABLE READ snapshot (env.py), so a migrate running
beside it is seen whole or not at all, and check never waits for it.

Both cases run a real ``sovren-db migrate`` in a process of its own against the test's server.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.postgres import table_forms
from tests.integration.conftest import add_revision, append_declaration, copy_project

pytestmark = pytest.mark.postgres

SOVREN_DB = Path(sys.executable).with_name("sovren-db")


def _active(url: str, fragment: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE %s",
                            (f"%{fragment}%",)).fetchone()[0] > 0


def test_a_check_during_a_migrate_answers_at_once_from_the_revision_before(project, pg_url):
    """The revision's index is committed (its autocommit block) but not its version row: pending, not drift;
    with the lease, check waited for the whole migrate (the 8 s sleep) and then said clean."""
    commands.migrate(load_settings(project))
    add_revision(project, "slow0000001",
                 "    with op.get_context().autocommit_block():\n"
                 "        op.execute('CREATE INDEX CONCURRENTLY ix_users_created_at ON users (created_at)')\n"
                 "    op.execute('SELECT pg_sleep(8)')",
                 "op.execute('DROP INDEX ix_users_created_at')")
    append_declaration(project, "tables.py", "\nIndex('ix_users_created_at', users.c.created_at)\n")
    migrate = subprocess.Popen([str(SOVREN_DB), "migrate"], cwd=project, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + 60
        while not _active(pg_url, "pg_sleep(8)") and time.monotonic() < end:
            time.sleep(0.05)
        assert _active(pg_url, "pg_sleep(8)"), "the migrate never reached its sleep"
        began = time.monotonic()
        during = commands.check(load_settings(project))
        took = time.monotonic() - began
        still_running = migrate.poll() is None
    finally:
        out, err = migrate.communicate(timeout=120)
    assert migrate.returncode == 0, err
    assert still_running and took < 6, took  # answered while the migrate slept, without waiting for it
    assert during.exit_code == 1
    assert [(f.code, f.object) for f in during.findings] == [("pending", "revision slow0000001")]
    after = commands.check(load_settings(project))
    assert (after.exit_code, after.findings) == (0, [])


def test_a_migrate_committed_while_check_compares_is_not_half_seen(project, pg_url, tmp_path, monkeypatch):
    """A newer deploy migrates (a column added, the version moved on) after check read the revision and before
    it read the tables: check answers for the snapshot it began with (in step at its head), not a mix of the
    old revision and the new column (drift). With the lease, the migrate waited for check (here: forever)."""
    settings = load_settings(project)
    commands.migrate(settings)
    newer = copy_project(project, tmp_path / "newer")
    add_revision(newer, "newer000001", "    op.execute('ALTER TABLE users ADD COLUMN nickname text')",
                 "op.execute('ALTER TABLE users DROP COLUMN nickname')")
    source = (newer / "postgres" / "tables.py").read_text()
    marker = '    Column("last_login", TIMESTAMP),\n'
    assert marker in source
    (newer / "postgres" / "tables.py").write_text(source.replace(marker, marker + '    Column("nickname", Text),\n', 1))
    migrated: list[subprocess.CompletedProcess] = []
    read_forms = table_forms.live_forms

    def newer_deploy_migrates_first(connection, schema):
        if not migrated:  # check has read alembic_version (at its head) in its snapshot by now
            migrated.append(subprocess.run([str(SOVREN_DB), "migrate"], cwd=newer, capture_output=True, text=True,
                                           timeout=60))
        return read_forms(connection, schema)

    monkeypatch.setattr(table_forms, "live_forms", newer_deploy_migrates_first)
    during = commands.check(settings)
    assert migrated and migrated[0].returncode == 0, migrated and migrated[0].stderr
    assert (during.exit_code, during.findings) == (0, [])
    with psycopg.connect(pg_url) as conn:  # the migrate did happen while check compared
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == ("newer000001",)
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
                            "AND column_name = 'nickname'").fetchone() == (1,)
    monkeypatch.setattr(table_forms, "live_forms", read_forms)
    assert commands.check(load_settings(newer)).exit_code == 0  # the newer deploy's own check: in step


def test_check_leaves_its_connection_idle_and_outside_any_transaction(project, pg_url):
    """The connection kept for the next check holds no snapshot open (which would hold back vacuum) and no lock."""
    commands.migrate(load_settings(project))
    assert commands.check(load_settings(project)).exit_code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        kept = conn.execute("SELECT state, backend_xmin IS NULL FROM pg_stat_activity "
                            "WHERE application_name = 'sovren-db check' AND datname = current_database()").fetchall()
        assert kept == [("idle", True)]
    assert commands.check(load_settings(project)).exit_code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:  # the same connection served the second check
        assert conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sovren-db check' "
                            "AND datname = current_database()").fetchone() == (1,)


def test_check_of_a_database_never_migrated_writes_nothing(project, pg_url):
    """Alembic creates an empty alembic_version when it finds none; check's read-only snapshot must not."""
    out = commands.check(load_settings(project))
    assert out.exit_code == 1 and out.findings and {f.code for f in out.findings} == {"pending"}
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('alembic_version')").fetchone() == (None,)
