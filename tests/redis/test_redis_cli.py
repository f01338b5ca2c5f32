"""The CLI (`sovren-db redis ...`) and bad input: exit codes, one sentence, no password."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from sovren_db import services
from sovren_db.cli.main import cli
from sovren_db.redis import ops
from sovren_db.redis.declared import load_declarations

from redis_helpers import SMALL, connect, write_project

pytestmark = pytest.mark.redis

PASSWORD = "s3cret-Pw-42"


def run(root, url, *args):
    env = {"REDIS_URL": url} if url else {"REDIS_URL": ""}
    return CliRunner().invoke(cli, ["--root", str(root), "redis", *args], env=env)


def migrate(root, url):
    """What `sovren-db migrate` would do for the SMALL project: publish, create groups, set config."""
    backend = connect(root, url)
    declared = load_declarations(root / "redis")
    for family in declared.families.values():
        backend.execute(ops.DeclareKeyFamilyOp(family.to_json()))
    for channel in declared.channels.values():
        backend.execute(ops.DeclareChannelOp(channel.to_json()))
    backend.execute(ops.CreateGroupOp("{q}:outbox", "workers"))
    backend.close()


@pytest.fixture(scope="module")
def password_server(tmp_path_factory):
    server = services.start_redis(tmp_path_factory.mktemp("auth"), password=PASSWORD)
    yield server
    services.stop(server)


def test_audit_exit_codes_and_formats(project, redis_url, client):
    assert run(project, redis_url, "audit").exit_code == 1  # nothing published yet
    migrate(project, redis_url)
    client.set("session:1", "t", ex=60)
    clean = run(project, redis_url, "audit")
    assert clean.exit_code == 0, clean.output
    assert "session" in clean.stdout and "Audited 3 keys on 1 node(s)" in clean.stdout

    client.set("session:2", "no ttl")
    client.set("legacy:1", "?")
    found = run(project, redis_url, "audit", "--format", "json", "--count", "50", "--rate", "100000")
    assert found.exit_code == 1
    payload = json.loads(found.stdout)
    assert {f["code"] for f in payload["findings"]} == {"redis-missing-ttl", "redis-unknown-keys"}
    assert payload["audit"]["families"]["session"]["missing_ttl"] == 1
    assert payload["audit"]["unknown"]["legacy:*"] == {"keys": 1, "examples": ["legacy:1"]}

    github = run(project, redis_url, "audit", "--format", "github", "--sample", "50%")
    assert github.exit_code in (0, 1)
    assert all(line.startswith(("::error", "::notice")) for line in github.stdout.splitlines())


def test_audit_sample_option(project, redis_url, client):
    for i in range(30):
        client.set(f"session:{i}", "t", ex=60)
    sampled = run(project, redis_url, "audit", "--sample", "10", "--count", "10", "--format", "json")
    assert json.loads(sampled.stdout)["audit"]["complete"] is False
    bad = run(project, redis_url, "audit", "--sample", "150%")
    assert bad.exit_code == 2 and "at most 100%" in bad.output


def test_families_needs_no_server(project):
    listed = run(project, None, "families")
    assert listed.exit_code == 0
    assert "session:{user_id}" in listed.stdout and "channel live: live:{user_id}" in listed.stdout
    data = json.loads(run(project, None, "families", "--format", "json").stdout)
    assert data["families"]["outbox"]["groups"] == ["workers"]


def test_registry_command(project, redis_url):
    before = run(project, redis_url, "registry")
    assert before.exit_code == 1 and "family session: declared, not published" in before.stdout
    migrate(project, redis_url)
    after = run(project, redis_url, "registry")
    assert after.exit_code == 0 and "family session: published" in after.stdout


def test_erase_a_data_subject(project, redis_url, client):
    client.set("session:42", "t")
    client.hset("profile:42", "a", 1)
    client.set("session:420", "t")
    dry = run(project, redis_url, "erase", "user_id", "42", "--dry-run")
    assert dry.exit_code == 0 and sorted(dry.stdout.split()) == ["profile:42", "session:42"]
    assert client.exists("session:42")
    done = run(project, redis_url, "erase", "user_id", "42")
    assert done.exit_code == 0 and "Deleted 2 key(s)" in done.stderr
    assert not client.exists("session:42", "profile:42") and client.exists("session:420")
    unknown = run(project, redis_url, "erase", "email", "x")
    assert unknown.exit_code == 2 and "subjects are: user_id" in unknown.stderr


def one_sentence_error(result, *absent: str) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    for text in absent:
        assert text not in result.output
    return lines[0]


def test_unreachable_server(project):
    port = services.free_port()
    line = one_sentence_error(run(project, f"redis://:{PASSWORD}@127.0.0.1:{port}/0", "audit"), PASSWORD)
    assert f"redis server at redis://:***@127.0.0.1:{port}/0 is not usable" in line
    assert "Connection refused" in line


def test_wrong_or_missing_password(project, password_server):
    wrong = password_server.url.replace(PASSWORD, "not-the-Pw-99")
    line = one_sentence_error(run(project, wrong, "audit"), "not-the-Pw-99", PASSWORD)
    assert "authentication failed" in line
    missing = password_server.url.replace(f":{PASSWORD}@", "")
    assert "the server requires a password and the URL gives none" in one_sentence_error(
        run(project, missing, "registry"), PASSWORD)
    right = run(project, password_server.url, "registry")
    assert right.exit_code == 1 and PASSWORD not in right.output


def test_not_configured(project):
    line = one_sentence_error(run(project, None, "audit"))
    assert "REDIS_URL is not set" in line


def test_malformed_declarations_send_nothing(tmp_path, redis_url, client):
    root = write_project(tmp_path, {**SMALL, "bad.toml": '[families.x]\npattern = "x:{"\ntype = "string"\n'})
    line = one_sentence_error(run(root, redis_url, "audit"))
    assert "bad.toml at families.x: malformed pattern 'x:{'" in line
    assert client.dbsize() == 0  # nothing written
