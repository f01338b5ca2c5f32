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
