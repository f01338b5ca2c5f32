"""``sovren-db lint``: exit codes 0 / 1 / 2, the three formats, the default base from the database."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from sovren_db import commands
from sovren_db.cli.main import cli
from sovren_db.core.config import load_settings
from tests.lint.conftest import CHAIN, INITIAL, line_of


def one_error_line(result) -> str:
    lines = [line for line in result.output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_clean_revision_exits_0_in_every_format(lint_project):
    lint_project.add_revision("op.add_column('users', sa.Column('nickname', sa.Text()))")
    text = lint_project.lint()
    assert text.exit_code == 0, text.output
    assert "linted 1 revision(s)" in text.output and "0 finding(s)" in text.output
    data = json.loads(lint_project.lint("--format", "json").output)
    assert data["findings"] == [] and data["exit_code"] == 0 and data["revisions"] == [lint_project.head]
    github = lint_project.lint("--format", "github")
    assert github.exit_code == 0 and "::error" not in github.output


def test_findings_exit_1_in_every_format(lint_project):
    path = lint_project.add_revision("op.mongo_drop_collection(collection='executives')")
    line = line_of(path, "mongo_drop_collection")
    text = lint_project.lint()
    assert text.exit_code == 1
    assert f"mongo: migrations/versions/{path.name}:{line}: collection executives: dropped" in text.output
    assert "[MG101]" in text.output
    data = json.loads(lint_project.lint("--format", "json").output)
    assert data["exit_code"] == 1
    assert data["findings"][0] | {"message": ""} == {
        "store": "mongo", "object": f"migrations/versions/{path.name}:{line}", "message": "", "code": "MG101",
        "severity": "error", "file": f"migrations/versions/{path.name}", "line": line}
    github = lint_project.lint("--format", "github")
    assert github.exit_code == 1
    assert re.match(rf"::error file=migrations/versions/{path.name},line={line},title=mongo MG101::",
                    github.output)


def test_warnings_alone_exit_0(lint_project):
    lint_project.add_revision("op.mongo_create_collection(collection='briefings')",
                              comment="# sovren-db: accept MG101 because nothing")
    github = lint_project.lint("--format", "github")
    assert github.exit_code == 0
    assert github.output.startswith("::warning file=")


def test_every_revision_after_base_is_linted(lint_project):
    first = lint_project.add_revision("op.mongo_drop_collection(collection='executives')")
    second = lint_project.add_revision("op.redis_delete_family(family={'name': 's', 'pattern': 's:{id}', "
                                       "'type': 'string'})")
    data = json.loads(lint_project.lint("--format", "json").output)
    assert data["revisions"] == [first.name.split("_")[0], second.name.split("_")[0]]
    assert [f["code"] for f in data["findings"]] == ["MG101", "RD101"]
    later = CliRunner().invoke(cli, ["lint", "--base", first.name.split("_")[0], "--format", "json"])
    assert [f["code"] for f in json.loads(later.output)["findings"]] == ["RD101"]


def test_nothing_after_head_is_clean(lint_project):
    result = CliRunner().invoke(cli, ["lint", "--base", "head"])
    assert result.exit_code == 0
    assert "no revisions to lint after head" in result.output


def test_unknown_base_exits_2(lint_project):
    result = CliRunner().invoke(cli, ["lint", "--base", "feedface0000"])
    assert result.exit_code == 2
    assert "feedface0000" in one_error_line(result)


def test_revision_that_needs_a_database_offline_exits_2_naming_it(lint_project):
    path = lint_project.add_revision("rows = op.get_bind().execute(sa.text('SELECT 1')).all()")
    result = lint_project.lint()
    assert result.exit_code == 2
    line = one_error_line(result)
    assert f"migrations/versions/{path.name}:{line_of(path, 'get_bind')}" in line


def test_malformed_lint_toml_exits_2_naming_it(lint_project):
    (lint_project.root / "lint.toml").write_text('[[links]]\npostgres = "users"\nmongo = ["executives.userId"]\n')
    lint_project.add_revision("op.mongo_create_collection(collection='briefings')")
    result = lint_project.lint()
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "lint.toml" in line and "links[0].postgres" in line


def test_missing_squawk_exits_2(lint_project, monkeypatch, tmp_path):
    monkeypatch.setattr("sovren_db.lint.squawk.sys.executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    lint_project.add_revision("op.add_column('users', sa.Column('nickname', sa.Text()))")
    result = lint_project.lint()
    assert result.exit_code == 2
    assert "pip install squawk-cli" in one_error_line(result)


def test_list_rules_names_every_code(lint_project):
    result = CliRunner().invoke(cli, ["lint", "--list-rules", "--format", "json"])
    rules = {r["code"]: r for r in json.loads(result.output)}
    assert {"MG101", "MG102", "MG103", "MG201", "MG301", "MG302", "RD101", "RD102", "RD201", "RD301",
            "XS101", "XS102", "PG401", "LN001", "LN002"} == set(rules)
    assert rules["MG302"]["family"] == "safety" and rules["XS101"]["store"] == "cross-store"


@pytest.mark.postgres
def test_default_base_is_what_the_database_has_not_applied(lint_project, pg_url, monkeypatch):
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres")
    run = CliRunner().invoke(cli, ["lint", "--format", "json"])
    assert run.exit_code == 0, run.output  # an empty database: the initial revision is pending too
    report = json.loads(run.output)
    assert report["revisions"] == CHAIN
    assert report["findings"] == [] and {a["code"] for a in report["accepted"]} >= \
        {"prefer-text-field", "prefer-timestamp-tz", "ban-char-field"}  # accepted in the revision, with a reason
    commands.migrate(load_settings(lint_project.root))
    path = lint_project.add_revision("op.mongo_drop_collection(collection='executives')")
    data = json.loads(CliRunner().invoke(cli, ["lint", "--format", "json"]).output)
    assert data["revisions"] == [path.name.split("_")[0]]
    assert [f["code"] for f in data["findings"]] == ["MG101"]
    lint_project.versions.joinpath(path.name).unlink()
    clean = CliRunner().invoke(cli, ["lint"])
    assert clean.exit_code == 0 and "the database is at head" in clean.output


@pytest.mark.postgres
def test_default_base_needs_a_reachable_database(lint_project, monkeypatch):
    monkeypatch.setenv("POSTGRES_URL", "postgresql://sovren:pw@127.0.0.1:1/sovren_ai")
    result = CliRunner().invoke(cli, ["lint"])
    assert result.exit_code == 2
    assert "postgres server" in one_error_line(result)
