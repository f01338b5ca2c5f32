"""Machine-readable output on every path: one JSON document per command, annotations with file and line,
plan's steps of every store, drift that names each field."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sovren_db.cli.main import cli
from sovren_db.redis.ops import DeclareKeyFamilyOp

pytestmark = pytest.mark.postgres


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def document(result) -> dict:
    return json.loads(result.stdout)  # one JSON document, nothing else on stdout


def test_every_command_prints_one_json_document_on_success(project):
    plan = document(run("plan", "--format", "json"))
    assert plan["exit_code"] == 1 and plan["pending"]
    assert document(run("migrate", "--format", "json"))["exit_code"] == 0
    for args in (["check"], ["status"], ["plan"], ["lint", "--base", "base"], ["partitions"],
                 ["revision", "-m", "nothing", "--autogenerate"], ["downgrade", "-1"]):
        out = document(run(*args, "--format", "json"))
        assert "exit_code" in out and "error" not in out, (args, out)


def test_plan_lists_every_step_of_every_store(project):
    steps = document(run("plan", "--format", "json"))["steps"]
    stores = {step["store"] for step in steps}
    assert stores == {"postgres", "mongo", "redis"}
    assert all({"store", "revision", "op", "target"} <= set(step) for step in steps)
    users = next(s for s in steps if s["op"] == "CREATE TABLE" and s["target"] == "users")
    assert users["sql"].startswith("CREATE TABLE users") and users["revision"]
    session = next(s for s in steps if s["op"] == "redis_declare_family" and s["target"] == "session")
    assert session["command"]["family"]["pattern"] == "session:{user_id}"
    assert any(s["op"] == "mongo_create_collection" and s["target"] == "executives" for s in steps)
    for revision in {s["revision"] for s in steps}:  # as migrate runs them: a revision's Postgres steps first
        own = [s for s in steps if s["revision"] == revision]
        first_store = next((i for i, s in enumerate(own) if s["store"] != "postgres"), len(own))
        assert all(s["store"] != "postgres" or s["op"] == "COMMIT" for s in own[first_store:]), revision


def test_mongo_and_redis_findings_carry_file_and_line(project):
    run("migrate")
    session = project / "redis" / "sessions.toml"
    session.write_text(session.read_text().replace('max_bytes = "4kb"', 'max_bytes = "8kb"', 1))
    executives = project / "mongo" / "executives.toml"
    executives.write_text(executives.read_text() + '\n[[indexes]]\nkey = { createdAt = 1 }\nname = "by_created"\n')
    out = run("check", "--format", "github")
    assert out.exit_code == 1
    lines = out.stdout.splitlines()
    header = session.read_text().splitlines().index("[families.session]") + 1
    assert any(line.startswith(f"::error file=redis/sessions.toml,line={header},") and
               "max_bytes: 4096 -> 8192" in line for line in lines), lines
    named = executives.read_text().splitlines().index('name = "by_created"') + 1
    assert any(line.startswith(f"::error file=mongo/executives.toml,line={named},") for line in lines), lines


def test_redis_drift_names_each_field_and_both_values():
    published = {"name": "cache", "pattern": "c:{id}", "max_elements": 128, "ttl": {"policy": "required", "max": 60}}
    declared = {**published, "max_elements": 256, "ttl": {"policy": "required", "max": 3600}}
    _, message = DeclareKeyFamilyOp(declared, published).drift()
    assert message == ("published with another declaration (published -> declared: max_elements: 128 -> 256; "
                       "ttl.max: 1m -> 1h)")


def test_check_says_per_store_what_it_compared_with(project, pg_url, redis_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", redis_url)
    run("migrate")
    out = document(run("check", "--format", "json"))
    assert out["compared"]["postgres"]["with"] == "live server"
    assert out["compared"]["redis"] == {"with": "live server", "url": redis_url, "stored_data": False}
    assert out["compared"]["mongo"]["with"] == "revision chain"  # MongoDB was never contacted: it says so
    text = run("check")
    assert text.exit_code == 0 and text.stdout.startswith("no drift; each store's declarations:"), text.output
    assert "mongo     compared with the revision chain's recorded steps" in text.stdout
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres")
    assert "mongo     not compared: not one of this project's stores" in run("check").stdout
