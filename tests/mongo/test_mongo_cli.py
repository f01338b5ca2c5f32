"""``sovren-db mongo ...`` through click's CliRunner: output and exit codes 0, 1, 2."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner
from mongo_support import COMMUNICATION as GOOD
from mongo_support import SOVREN_MONGO_DIR, write_declarations

from sovren_db.cli.main import cli

NO_SERVERS = {"MONGO_URL": None, "POSTGRES_URL": None, "REDIS_URL": None, "CI": None, "SOVREN_ENV": None}


@pytest.fixture
def project(tmp_path):
    """A project whose mongo/ holds Sovren's declarations."""
    write_declarations(tmp_path, {})
    for path in SOVREN_MONGO_DIR.iterdir():
        shutil.copy(path, tmp_path / "mongo" / path.name)
    return tmp_path


def run(project, *args, env=None):
    return CliRunner().invoke(
        cli, ["--root", str(project), "mongo", *args], env={**NO_SERVERS, **(env or {})}
    )


def documents_file(project, *documents, lines=False):
    path = project / ("docs.jsonl" if lines else "docs.json")
    path.write_text("\n".join(json.dumps(d) for d in documents) if lines else json.dumps(list(documents)))
    return path


def test_validate_accepts_good_documents_with_exit_0(project):
    result = run(
        project, "validate", "--collection", "communications", str(documents_file(project, GOOD, GOOD))
    )
    assert result.exit_code == 0, result.output
    assert "2 document(s) checked against communications: 0 rejected" in result.output


def test_validate_reports_each_rejected_document_with_exit_1(project):
    bad = {**GOOD, "status": "queued"}
    path = documents_file(project, GOOD, bad, {k: v for k, v in GOOD.items() if k != "timestamp"}, lines=True)
    result = run(project, "validate", "-c", "communications", str(path))
    assert result.exit_code == 1
    assert (
        "mongo: document 1: /status: 'queued' is not one of ['sent', 'delivered', 'failed'] [rejected]"
        in result.output
    )
    assert "mongo: document 2: 'timestamp' is a required property [rejected]" in result.output


def test_validate_json_and_github_formats(project):
    path = documents_file(project, {**GOOD, "messageId": 7}, lines=True)
    result = run(project, "validate", "-c", "communications", "--format", "json", str(path))
    payload = json.loads(result.output)
    assert result.exit_code == 1
    assert (payload["collection"], payload["documents"], payload["rejected"]) == ("communications", 1, 1)
    assert payload["findings"][0]["line"] == 1
    github = run(project, "validate", "-c", "communications", "--format", "github", str(path))
    assert github.output.startswith(
        f"::error file={path},line=1,title=mongo rejected::document 0: /messageId"
    )


@pytest.mark.parametrize("content", ['[{"a": 1}', '{"a": }\n'])
def test_validate_bad_input_exits_2_with_one_sentence(project, content):
    path = project / "broken.json"
    path.write_text(content)
    result = run(project, "validate", "-c", "communications", str(path))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}") and "not valid Extended JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_unknown_collection_is_a_usage_error(project):
    result = run(project, "validate", "-c", "payments", str(documents_file(project, GOOD)))
    assert result.exit_code == 2 and "no collection 'payments' is declared" in result.stderr


def test_a_bad_declaration_exits_2_naming_file_and_pointer(project):
    (project / "mongo" / "communications.toml").write_text(
        "[[indexes]]\nkey = { a = 1, b = 1 }\nexpireAfterSeconds = 60\n"
    )
    result = run(project, "validate", "-c", "communications", str(documents_file(project, GOOD)))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: mongo/communications.toml at /indexes/0/expireAfterSeconds: ")


def test_show_prints_declared_collections_as_json(project):
    result = run(project, "show", "communications")
    assert result.exit_code == 0
    shown = json.loads(result.output)["communications"]
    assert shown["shard_key"] == {"key": [["userId", "hashed"]], "unique": False}
    assert run(project, "show", "nope").exit_code == 2


def test_diff_without_a_server_url_exits_2(project):
    result = run(project, "diff")
    assert result.exit_code == 2 and "MONGO_URL is not set" in result.stderr


def test_diff_against_an_unreachable_server_exits_2_without_the_password(project, monkeypatch):
    from sovren_db.mongo.backend import MongoBackend

    monkeypatch.setattr(MongoBackend, "server_timeout_ms", 200)
    result = run(project, "diff", env={"MONGO_URL": "mongodb://sovren:s3cret-pw@127.0.0.1:1/sovren_ai"})
    assert result.exit_code == 2
    assert "mongo server at mongodb://sovren:***@127.0.0.1:1/sovren_ai is not usable" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.output
