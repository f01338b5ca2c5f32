"""Without a Redis, check and autogenerate compare the declarations with the revision chain.

A copy of the project with a real Postgres (the harness's) and no REDIS_URL or MONGO_URL:
their steps are deferred by migrate, and the chain's replay stands in for both servers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from tests.integration.conftest import copy_project

pytestmark = pytest.mark.postgres

NOTE = "redis: no server; compared the declarations with the revision chain's redis steps."


@pytest.fixture
def project(tmp_path: Path, repo_root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project copied with POSTGRES_URL set and migrated; no Redis, no MongoDB."""
    root = copy_project(repo_root, tmp_path / "project")
    for var in ("CI", "MONGO_URL", "REDIS_URL", "SOVREN_ENV", "SOVREN_DB_STORES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("POSTGRES_URL", pg_url)
    monkeypatch.chdir(root)
    commands.migrate(load_settings(root))
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_the_declarations_match_the_chain_so_nothing_is_written(project, repo_root):
    clean = commands.check(load_settings(project))
    assert clean.exit_code == 0, [f.sentence() for f in clean.findings]
    assert NOTE in clean.notes
    versions = sorted((project / "migrations" / "versions").glob("*.py"))
    nothing = commands.revision(load_settings(project), "nothing", autogenerate=True)
    assert nothing.exit_code == 1 and nothing.lines == ["no differences found: no revision written"]
    assert NOTE in nothing.notes
    assert sorted((project / "migrations" / "versions").glob("*.py")) == versions


def calls(body: str) -> list[str]:
    """The operations a revision's upgrade() or downgrade() calls, in order."""
    return [line.strip().removeprefix("op.").split("(")[0] for line in body.splitlines() if line.startswith("    op.")]


CHANGES = {
    "family's TTL shortened": (
        "sessions.toml", 'max = "30d", default = "1d" }', 'max = "7d", default = "1d" }',
        ["key family session: published with another declaration (published -> declared: ttl.max: 30d -> 1w)",
         "key family session: keys need a TTL of 1d backfilled"],
        ["redis_declare_family", "redis_backfill_ttl"]),
    "stream added with a group": (
        "queues.toml", "[families.comms_dead]",
        '[families.comms_retry]\npattern = "{{comms}}:retry"\ntype = "stream"\nttl = "none"\n'
        'groups = ["retriers"]\n\n[families.comms_dead]',
        ["key family comms_retry: not published in the registry",
         "stream {comms}:retry: has no consumer group retriers"],
        ["redis_declare_family", "redis_create_group"]),
    "channel removed": (
        "channels.toml", '[channels.broadcast]\npattern = "live:broadcast"', '[channels.unused]\npattern = "unused"',
        ["channel unused: not published in the registry",
         "channel broadcast: published in the registry but no longer declared"],
        ["redis_declare_channel", "redis_retire_channel"]),
    "server configuration": (
        "server.toml", 'maxmemory-policy = "volatile-lru"', 'maxmemory-policy = "allkeys-lru"',
        ["server configuration maxmemory-policy: is 'volatile-lru', expected 'allkeys-lru'"],
        ["redis_set_config"]),
}


@pytest.mark.parametrize("change", CHANGES.values(), ids=list(CHANGES))
def test_a_changed_declaration_is_found_and_written_without_a_server(project, change):
    file, old, new, findings, op_names = change
    edit(project / "redis" / file, old, new)

    drift = commands.check(load_settings(project))
    assert drift.exit_code == 1
    assert [f.sentence() for f in drift.findings] == findings
    declared = [f for f in drift.findings if "no longer declared" not in f.message]
    assert all(f.file == f"redis/{file}" and f.line for f in declared), drift.findings  # for annotations
    assert NOTE in drift.notes

    written = commands.revision(load_settings(project), "redis change", autogenerate=True)
    source = Path(written.data["written"][0]).read_text()
    upgrade, downgrade = source.split("def upgrade")[1].split("def downgrade")
    assert calls(upgrade) == op_names  # that change and nothing else, in any store
    assert len(calls(downgrade)) == len(op_names) and all(c.startswith("redis_") for c in calls(downgrade))

    commands.migrate(load_settings(project))  # the Redis steps are deferred: no server
    after = commands.check(load_settings(project))
    assert after.exit_code == 0, [f.sentence() for f in after.findings]
