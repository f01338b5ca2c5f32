"""The CLI through click's CliRunner and as a real subprocess: exit codes, messages, no secrets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from click.testing import CliRunner

from sovren_db.cli.main import cli
from tests.integration.conftest import add_revision
from sovren_db.services import free_port

pytestmark = pytest.mark.postgres
SOVREN_DB = str(Path(sys.executable).parent / "sovren-db")


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def one_sentence(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_migrate_check_status_json(project):
    assert run("migrate").exit_code == 0
    checked = run("check", "--format", "json")
    assert checked.exit_code == 0, checked.output
    assert '"findings": []' in checked.output
    status = run("status")
    # Mongo and Redis are not configured here: Postgres is at head and their steps wait, deferred.
    assert status.exit_code == 1 and "at head" in status.output
    assert "not configured, " in status.output and "deferred step(s) waiting" in status.output


def test_check_reports_drift_with_exit_1_in_each_format(project, pg_url):
    run("migrate")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP POLICY users_tenant_isolation ON users")
    text = run("check")
    assert text.exit_code == 1
    assert "policy users_tenant_isolation on users: missing in database" in text.output
    github = run("check", "--format", "github")
    assert github.exit_code == 1
    assert github.output.startswith("::error title=postgres drift::policy users_tenant_isolation on users")


def test_plan_exits_1_while_pending_and_0_after_migrate(project):
    pending = run("plan")
    assert pending.exit_code == 1 and "CREATE TABLE users" in pending.output
    run("migrate")
    done = run("plan")
    assert done.exit_code == 0 and "nothing to migrate" in done.output


def test_unreachable_server(project, monkeypatch):
    monkeypatch.setenv("POSTGRES_URL", f"postgresql://sovren:hunter2secret@127.0.0.1:{free_port()}/sovren_ai")
    result = run("migrate")
    assert result.exit_code == 2
    line = one_sentence(result)
    assert "postgres server at postgresql://sovren:***@127.0.0.1" in line
    assert "hunter2secret" not in result.output


def test_wrong_password(project, pg_url, monkeypatch):
    real = urlsplit(pg_url).password
    monkeypatch.setenv("POSTGRES_URL", pg_url.replace(f":{real}@", ":wrongpassword@"))
    result = run("check")
    assert result.exit_code == 2
    line = one_sentence(result)
    assert "password authentication failed" in line
    assert "wrongpassword" not in result.output and real not in result.output


def test_malformed_url(project, monkeypatch):
    monkeypatch.setenv("POSTGRES_URL", "postgresql://sovren:topsecret@localhost:notaport/db")
    result = run("status")
    assert result.exit_code == 2
    assert "POSTGRES_URL" in one_sentence(result) and "topsecret" not in result.output


def test_wrong_scheme(project, monkeypatch):
    monkeypatch.setenv("POSTGRES_URL", "mysql://root:pw@localhost/db")
    result = run("status")
    assert result.exit_code == 2
    assert "must start with postgresql://" in one_sentence(result)


def test_missing_configuration(project, monkeypatch):
    monkeypatch.delenv("POSTGRES_URL")
    result = run("migrate")
    assert result.exit_code == 2
    assert one_sentence(result).startswith("error: POSTGRES_URL is not set")


def test_unknown_revision(project):
    result = run("migrate", "deadbeef1234")
    assert result.exit_code == 2
    assert "deadbeef1234" in one_sentence(result)


def test_syntax_error_in_a_declaration(project):
    tables = project / "postgres" / "tables.py"
    tables.write_text(tables.read_text() + "\ndef broken(:\n")
    result = run("check")
    assert result.exit_code == 2
    line = one_sentence(result)
    assert "postgres/tables.py" in line and "syntax error" in line


def test_failing_revision_changes_nothing(project, pg_url):
    run("migrate")
    head = commands_head(project)
    add_revision(project, "bad0000001", "    op.create_table('half', sa.Column('id', sa.Integer, primary_key=True))\n"
                                        "    op.execute('SELECT 1/0')", "op.drop_table('half')")
    result = run("migrate")
    assert result.exit_code == 2
    assert "division by zero" in one_sentence(result)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('half')").fetchone()[0] is None
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == head


def test_protected_environment_refuses_downgrade(project, monkeypatch):
    run("migrate")
    monkeypatch.setenv("SOVREN_ENV", "production")
    result = run("downgrade", "base")
    assert result.exit_code == 2
    assert "protected" in one_sentence(result)


def _env(pg_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MONGO_URL", "REDIS_URL")}
    env.update(POSTGRES_URL=pg_url, SOVREN_DB_STORES="postgres")
    return env


def test_two_concurrent_migrations_apply_each_revision_once(project, pg_url):
    procs = [subprocess.Popen([SOVREN_DB, "migrate"], cwd=project, env=_env(pg_url),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    stdout = [o[0] for o in outputs]
    assert sum("applied" in s for s in stdout) == 1, stdout
    assert sum("nothing to migrate" in s for s in stdout) == 1, stdout
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1


def test_subprocess_exit_codes_and_debug_traceback(project, pg_url):
    env = _env(pg_url)
    ok = subprocess.run([SOVREN_DB, "migrate"], cwd=project, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    env_bad = dict(env, POSTGRES_URL=pg_url.replace(f":{urlsplit(pg_url).password}@", ":nope@"))
    bad = subprocess.run([SOVREN_DB, "check"], cwd=project, env=env_bad, capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and "nope" not in bad.stderr
    debug = subprocess.run([SOVREN_DB, "--debug", "check"], cwd=project, env=env_bad, capture_output=True, text=True)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_alembic_commands_work_from_the_root(project, pg_url):
    alembic = str(Path(sys.executable).parent / "alembic")
    env = _env(pg_url)
    up = subprocess.run([alembic, "upgrade", "head"], cwd=project, env=env, capture_output=True, text=True)
    assert up.returncode == 0, up.stderr
    check = subprocess.run([alembic, "check"], cwd=project, env=env, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "No new upgrade operations detected" in check.stdout


def test_protected_environment_refuses_a_destructive_revision(project, pg_url, monkeypatch):
    run("migrate")
    add_revision(project, "drop0000001", "    op.drop_column('users', 'last_login')")
    monkeypatch.setenv("SOVREN_ENV", "production")
    refused = run("migrate")
    assert refused.exit_code == 2
    assert "drop column users.last_login" in one_sentence(refused)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
                            "AND column_name = 'last_login'").fetchone()[0] == 1
    allowed = run("migrate", "--allow-destructive")
    assert allowed.exit_code == 0, allowed.output


def test_downgrade_minus_one(project):
    from alembic.script import ScriptDirectory

    run("migrate")
    previous = ScriptDirectory(str(project / "migrations")).get_revision(commands_head(project)).down_revision
    result = run("downgrade", "-1")
    assert result.exit_code == 0, result.output
    assert f"to {previous or 'base'}" in result.output


def commands_head(project: Path) -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(project / "migrations")).get_current_head()
