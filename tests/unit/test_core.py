"""Pure tests of configuration, URL redaction, findings and rendering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sovren_db.core.config import load_settings
from sovren_db.core.errors import ConfigError, DeclarationError, StoreUnavailable
from sovren_db.core.findings import Finding, render_findings
from sovren_db.core.render import render_call
from sovren_db.core.urls import redact, redact_text


def write_project(tmp_path: Path, tool: str = "") -> Path:
    (tmp_path / "pyproject.toml").write_text(f"[project]\nname='x'\n[tool.sovren-db]\n{tool}\n")
    return tmp_path


@pytest.mark.parametrize("url, expected", [
    ("postgresql://sovren:securepass@localhost:5432/db", "postgresql://sovren:***@localhost:5432/db"),
    ("redis://:p%40ss@host:6379/0", "redis://:***@host:6379/0"),
    ("mongodb://localhost:27017/sovren_ai", "mongodb://localhost:27017/sovren_ai"),
    ("", ""),
])
def test_redact(url, expected):
    assert redact(url) == expected


def test_redact_text_removes_a_password_quoted_elsewhere():
    text = 'FATAL: password "s3cret" rejected for postgresql://u:s3cret@h/d'
    assert "s3cret" not in redact_text(text, "postgresql://u:s3cret@h/d")


def test_environment_wins_over_dotenv(tmp_path):
    root = write_project(tmp_path)
    (root / ".env").write_text("POSTGRES_URL=postgresql://a@dotenv/db\nREDIS_URL=redis://dotenv:6379/0\n")
    settings = load_settings(root, environ={"POSTGRES_URL": "postgresql://a@env/db"})
    assert settings.postgres_url == "postgresql://a@env/db"
    assert settings.redis_url == "redis://dotenv:6379/0"
    assert settings.url_sources == {"postgres": "environment", "redis": ".env"}
    assert settings.mongo_url is None


def test_strict_defaults_to_ci(tmp_path):
    root = write_project(tmp_path)
    assert load_settings(root, environ={"CI": "true"}).strict is True
    assert load_settings(root, environ={}).strict is False
    assert load_settings(root, environ={"CI": "true"}, strict=False).strict is False


def test_mongo_database_from_url(tmp_path):
    root = write_project(tmp_path)
    assert load_settings(root, environ={"MONGO_URL": "mongodb://h:1/tenantdb?w=1"}).mongo_database == "tenantdb"


def test_the_url_s_database_wins_over_the_project_s_and_the_project_s_over_the_default(tmp_path):
    root = write_project(tmp_path)
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'mongo_database = "fromproject"\n')
    assert load_settings(root, environ={"MONGO_URL": "mongodb://h:1/t_abc"}).mongo_database == "t_abc"
    assert load_settings(root, environ={"MONGO_URL": "mongodb://h:1/?w=1"}).mongo_database == "fromproject"
    assert load_settings(root, environ={}).mongo_database == "fromproject"


@pytest.mark.parametrize("tool, message", [
    ("colour = 'blue'", "unknown key 'colour'"),
    ("stores = ['postgres', 'cassandra']", "unknown store 'cassandra'"),
])
def test_bad_configuration_names_the_key(tmp_path, tool, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(write_project(tmp_path, tool), environ={})


def test_the_audit_capture_comes_from_the_environment_then_the_project(tmp_path):
    root = write_project(tmp_path, '[tool.sovren-db.audit]\ncapture = "plpgsql"')
    assert load_settings(root, environ={}).audit_capture == "plpgsql"
    assert load_settings(root, environ={"SOVREN_DB_AUDIT_CAPTURE": "native"}).audit_capture == "native"
    assert load_settings(write_project(tmp_path), environ={}).audit_capture == "auto"


@pytest.mark.parametrize("tool, environ, message", [
    ('[tool.sovren-db.audit]\ncapture = "fast"', {},
     r"audit.capture in \[tool.sovren-db\] must be one of auto, native, plpgsql, not 'fast'"),
    ('[tool.sovren-db.audit]\nkind = "c"', {}, r"unknown key 'kind' in \[tool.sovren-db.audit\] \(known: capture\)"),
    ("", {"SOVREN_DB_AUDIT_CAPTURE": "c"}, "SOVREN_DB_AUDIT_CAPTURE must be one of auto, native, plpgsql, not 'c'"),
])
def test_a_bad_audit_capture_is_one_sentence_naming_the_key(tmp_path, tool, environ, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(write_project(tmp_path, tool), environ=environ)


def test_bad_url_never_shows_the_password(tmp_path):
    root = write_project(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_settings(root, environ={"REDIS_URL": "redis://u:hunter2@host:port/0"})
    assert "hunter2" not in str(err.value) and "REDIS_URL" in str(err.value)


def test_broken_pyproject_is_one_sentence(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.sovren-db\n")
    with pytest.raises(ConfigError, match="pyproject.toml is not valid TOML"):
        load_settings(tmp_path, environ={})


def test_error_sentences():
    assert str(DeclarationError("mongo/x.toml", "/indexes/1/key", "declared twice")) == \
        "mongo/x.toml at /indexes/1/key: declared twice."  # one sentence, its full stop added
    err = StoreUnavailable("redis", "redis://:pw@h:1/0", "Connection refused")
    assert str(err) == "redis server at redis://:***@h:1/0 is not usable: Connection refused."


FINDINGS = [Finding("postgres", "policy p on users", "missing in database"),
            Finding("redis", "family session", "12 keys without TTL", code="RD201", severity="warning",
                    file="redis/sessions.toml", line=3)]


def test_render_text_json_github():
    text = render_findings(FINDINGS, "text")
    assert text.splitlines()[0] == "postgres: policy p on users: missing in database"
    data = json.loads(render_findings(FINDINGS, "json", summary={"exit_code": 1}))
    assert data["exit_code"] == 1 and data["findings"][1]["code"] == "RD201"
    github = render_findings(FINDINGS, "github").splitlines()
    assert github[0] == "::error title=postgres drift::policy p on users: missing in database"
    assert github[1] == "::warning file=redis/sessions.toml,line=3,title=redis RD201::family session: 12 keys without TTL"


def test_github_escapes_newlines_and_percent():
    line = render_findings([Finding("postgres", "x", "a%b\nc")], "github")
    assert line.endswith("x: a%25b%0Ac")


def test_render_call_round_trips():
    args = {"name": "f", "body": "BEGIN\n  RETURN 1;\nEND", "roles": ("a", "b"), "spec": {"k": [1, 2]}}
    source = render_call("thing", args)
    captured = {}

    class Op:
        def thing(self, **kw):
            captured.update(kw)

    exec(source, {"op": Op()})
    assert captured == args


def test_first_line_of_an_error_or_its_type_name():
    from sovren_db.core.errors import first_line

    assert first_line(ValueError("  bad value\nDETAIL: more")) == "bad value"
    assert first_line(ValueError("")) == "ValueError"  # an empty driver message still says something
    assert first_line("", "") == "" and first_line(RuntimeError(" "), "none") == "none"
