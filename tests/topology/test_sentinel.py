"""Redis behind Sentinel: the redis+sentinel:// URL for migrate, check, audit against a replica;
the master killed with kill -9, Sentinel promotes the replica, a plain migrate converges."""

from __future__ import annotations

import pytest
import redis as redis_py
from click.testing import CliRunner

from sovren_db.cli.main import cli
from tests.topology.conftest import promoted

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
REGISTRY = "{sovren-db}:registry"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_migrate_check_and_a_replica_audit_through_sentinel(sentinel_project, sentinel_group, monkeypatch):
    group = sentinel_group
    result = run("migrate")
    assert result.exit_code == 0, result.output
    assert "sentinelpass" not in result.output
    master = redis_py.Redis(port=group.master.port, password=group.password)
    assert master.hlen(REGISTRY) > 0
    assert run("check").exit_code == 0
    master.execute_command("WAIT", 1, 5000)
    monkeypatch.setenv("REDIS_URL", group.url + "?role=replica")
    audited = run("redis", "audit")
    assert audited.exit_code in (0, 1) and "error" not in audited.output.lower(), audited.output


def test_after_the_master_is_killed_and_the_replica_promoted_a_plain_rerun_converges(sentinel_project,
                                                                                     sentinel_group):
    group = sentinel_group
    assert run("migrate").exit_code == 0
    redis_py.Redis(port=group.master.port, password=group.password).execute_command("WAIT", 1, 5000)
    promoted(group)
    # CONFIG SET is not replicated: the promoted replica has the data and the position but not the
    # server configuration the chain set; check reports it, migrate (no --resync) sets it again
    drifted = run("check")
    assert drifted.exit_code == 1 and "maxmemory-policy" in drifted.output
    again = run("migrate")
    assert again.exit_code == 0 and "the server had lost what the chain set" in again.output, again.output
    checked = run("check")
    assert checked.exit_code == 0, checked.output
    assert redis_py.Redis(port=group.replica.port, password=group.password).hlen(REGISTRY) > 0


def test_a_master_name_no_sentinel_knows_is_one_sentence_naming_redis(sentinel_project, sentinel_group,
                                                                      monkeypatch):
    monkeypatch.setenv("REDIS_URL", sentinel_group.url.replace("/sovren/", "/nosuch/"))
    result = run("migrate")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: redis server at redis+sentinel://:***@"), lines
    assert "no sentinel names a master for 'nosuch' that it sees up" in lines[0]
    assert "sentinelpass" not in result.output and "Traceback" not in result.output
