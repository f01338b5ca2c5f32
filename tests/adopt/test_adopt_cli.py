"""inspect, baseline and stamp on the command line: exit codes and one-sentence errors."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from sovren_db.cli.main import cli

from .roundtrip import empty_project, run_sql

pytestmark = pytest.mark.postgres


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_inspect_baseline_stamp_check_exit_codes(tmp_path, pg_url, monkeypatch):
    run_sql(pg_url, "CREATE TABLE person (id serial PRIMARY KEY, email text NOT NULL, nickname text)")
    root = empty_project(tmp_path / "p")
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    monkeypatch.chdir(root)
    inspected = run("inspect", "--format", "json")
    assert inspected.exit_code == 1, inspected.output   # a person must look at person.email
    assert '"code": "personal-data-candidate"' in inspected.output and "person.email" in inspected.output
    assert "sa.Column('id', sa.INTEGER(), autoincrement=True, nullable=False)" in (
        root / "postgres" / "tables.py").read_text()
    assert run("baseline").exit_code == 0
    again = run("baseline")
    assert again.exit_code == 2 and "already has revisions" in again.output
    unknown = run("stamp", "nope")
    assert unknown.exit_code == 2 and unknown.output.strip() == (
        f"error: Revision 'nope' is not in the revision chain of {root / 'migrations'}.")
    assert run("stamp", "head").exit_code == 0
    assert run("check").exit_code == 0
    run_sql(pg_url, "ALTER TABLE person ADD COLUMN phone text")
    assert run("check").exit_code == 1


def test_inspect_without_a_server_is_one_sentence(tmp_path, monkeypatch):
    root = empty_project(tmp_path / "p")
    monkeypatch.delenv("POSTGRES_URL", raising=False)
    monkeypatch.chdir(root)
    result = run("inspect")
    assert result.exit_code == 2
    assert result.output.startswith("error: POSTGRES_URL is not set") and "Traceback" not in result.output


def test_inspect_samples_redis_into_out(tmp_path, pg_url, redis_url, monkeypatch):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.mset({f"user:{n}:profile": "x" for n in range(200)})
    root = empty_project(tmp_path / "p")
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text().replace(
        'stores = ["postgres"]', 'stores = ["postgres", "redis"]'))
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.chdir(root)
    result = run("inspect", "--out", str(tmp_path / "out"), "--sample", "50%")
    assert result.exit_code == 1, result.output   # user:{n}:profile is a personal-data candidate
    assert "redis: key family user_profile: user:{n}:profile may hold personal data" in result.output
    written = (tmp_path / "out" / "redis" / "inspected.toml").read_text()
    assert 'pattern = "user:{n}:profile"' in written and "about 200 keys (100 sampled)" in written
    assert not (root / "redis").exists()
    bad = run("inspect", "--sample", "500")
    assert bad.exit_code == 2 and "give a fraction" in bad.output


def test_stamp_as_a_role_that_cannot_write_is_one_sentence(tmp_path, pg_url, monkeypatch):
    """Run as an application role (no CREATE on the schema): nothing half applied, exit 2, no password."""
    import uuid

    role = f"app_{uuid.uuid4().hex[:8]}"
    run_sql(pg_url, f"CREATE TABLE thing (id int PRIMARY KEY); CREATE ROLE {role} LOGIN PASSWORD 'hunter2';"
                    f"REVOKE CREATE ON SCHEMA public FROM PUBLIC; GRANT SELECT ON thing TO {role}")
    root = empty_project(tmp_path / "p")
    monkeypatch.chdir(root)
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    assert run("inspect").exit_code == 0
    assert run("baseline").exit_code == 0
    user, rest = pg_url.split("://", 1)[1].split("@", 1)
    monkeypatch.setenv("POSTGRES_URL", f"postgresql://{role}:hunter2@{rest}")
    inspected = run("inspect", "--out", str(tmp_path / "as_app"))
    assert inspected.exit_code == 0, inspected.output   # reading the catalog needs no privilege
    result = run("stamp", "head")
    assert result.exit_code == 2
    # the lease every runner takes first is where this role is refused: before anything is stamped
    assert result.output.startswith(f"error: Taking the migration lease sovren_db.migration_lease at "
                                    f"postgresql://{role}:***@"), result.output
    assert "permission denied" in result.output and "hunter2" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    run_sql(pg_url, f"DROP OWNED BY {role}; DROP ROLE {role}")


def test_inspect_never_overwrites_declarations_unasked(tmp_path, pg_url, monkeypatch):
    run_sql(pg_url, "CREATE TABLE thing (id int PRIMARY KEY)")
    root = empty_project(tmp_path / "p")
    (root / "postgres").mkdir()
    (root / "postgres" / "tables.py").write_text("# written by hand\n")
    monkeypatch.chdir(root)
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    refused = run("inspect")
    assert refused.exit_code == 2
    assert refused.output.strip() == (f"error: {root / 'postgres'} already holds declarations (tables.py): inspect "
                                      "into an empty folder with --out DIR, or pass --force to overwrite them.")
    assert (root / "postgres" / "tables.py").read_text() == "# written by hand\n"
    assert not (root / "postgres" / "schema.py").exists()
    assert run("inspect", "--force").exit_code == 0
    assert "thing = sa.Table(" in (root / "postgres" / "tables.py").read_text()


def test_a_project_of_only_a_pyproject_adopts_its_database(tmp_path, pg_url, monkeypatch):
    """A team's first steps: no revision directory yet; baseline creates it from the packaged templates."""
    run_sql(pg_url, "CREATE TABLE thing (id int PRIMARY KEY, label text)")
    root = tmp_path / "p"
    root.mkdir()
    (root / "pyproject.toml").write_text('[project]\nname = "p"\n\n[tool.sovren-db]\nstores = ["postgres"]\n')
    monkeypatch.chdir(root)
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    assert run("inspect").exit_code == 0
    baseline = run("baseline")
    assert baseline.exit_code == 0, baseline.output
    assert baseline.output.startswith("created migrations (env.py, script.py.mako)\nwrote migrations/versions/")
    assert run("stamp", "head").exit_code == 0
    assert run("check").exit_code == 0
    autogenerate = run("revision", "-m", "nothing", "--autogenerate")
    assert autogenerate.exit_code == 1 and "no differences found: no revision written" in autogenerate.output
    assert len(list((root / "migrations" / "versions").glob("*.py"))) == 1


def test_a_revision_directory_without_env_py_is_one_sentence_and_left_alone(tmp_path, pg_url, monkeypatch):
    root = empty_project(tmp_path / "p")
    (root / "migrations" / "env.py").unlink()
    monkeypatch.chdir(root)
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    result = run("baseline")
    assert result.exit_code == 2
    assert result.output.strip() == f"error: {root / 'migrations'} has no env.py: it is not a revision directory."
    assert not (root / "migrations" / "env.py").exists()


@pytest.mark.parametrize("name", ["env.py", "script.py.mako"])
def test_the_packaged_revision_templates_are_sovrens_own(repo_root, name):
    from importlib import resources

    packaged = resources.files("sovren_db") / "templates" / "revisions" / name
    assert packaged.read_text() == (repo_root / "migrations" / name).read_text()
