"""The pytest plugin, used by a sample test module of a project, in a pytest subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points

import psycopg
import pytest

from tests.integration.conftest import copy_project

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

SAMPLE = '''
    import pytest

    from sovren_db import commands
    from sovren_db.seeds.engine import seed

    SEEDED_KEYS = []


    def test_a_seeded_triad_at_head(sovren_triad):
        assert sovren_triad.seed.profile == "ci"
        users = sovren_triad.seed.stores["postgres"].counts["users"]
        with sovren_triad.postgres() as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == users == 120
            conn.execute("DELETE FROM payments")          # a test that changes things...
        status = commands.status(sovren_triad.settings).data
        assert status["stores"]["postgres"]["pending"] == []
        assert status["stores"]["redis"]["revision"] == status["head"]
        client = sovren_triad.redis()
        SEEDED_KEYS.extend(sorted(client.scan_iter(match="session:*")))
        assert SEEDED_KEYS and client.ttl(SEEDED_KEYS[0]) > 0
        client.flushdb()
        client.set("scratch", "1")


    def test_the_next_test_gets_the_seeded_state_back(sovren_triad):
        status = commands.status(sovren_triad.settings).data
        assert status["stores"]["redis"]["revision"] == status["head"]   # the position key came back too
        with sovren_triad.postgres() as conn:
            assert conn.execute("SELECT count(*) FROM payments").fetchone()[0] > 0
            assert conn.execute("SELECT current_database()").fetchone()[0].startswith("sovren_t_")
        client = sovren_triad.redis()
        assert sorted(client.scan_iter(match="session:*")) == SEEDED_KEYS
        assert client.get("scratch") is None


    def test_each_test_has_its_own_database_already_seeded(sovren_triad):
        assert seed(sovren_triad.settings, "ci").status == "already seeded"
        with sovren_triad.postgres() as conn:
            assert conn.execute("SELECT count(*) FROM audit_log WHERE hash != "
                                "encode(digest(event_payload || event_id::text, 'sha256'), 'hex')").fetchone()[0] == 0
'''


def plugin_is_installed() -> bool:
    return any(ep.value == "sovren_db.testing.plugin" for ep in entry_points(group="pytest11"))


def test_the_plugin_gives_each_test_a_seeded_isolated_triad(tmp_path, repo_root, postgres_server_url,
                                                           redis_server_url):
    root = copy_project(repo_root, tmp_path / "app")
    (root / "tests").mkdir()
    (root / "tests" / "test_sample.py").write_text(textwrap.dedent(SAMPLE))
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "SOVREN_ENV", "SOVREN_DB_STORES", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env.update(POSTGRES_URL=postgres_server_url, REDIS_URL=redis_server_url.rsplit("/", 1)[0] + "/11")
    plugin = [] if plugin_is_installed() else ["-p", "sovren_db.testing.plugin"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin,
                           "tests/test_sample.py"], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    with psycopg.connect(postgres_server_url.rsplit("/", 1)[0] + "/postgres") as conn:
        left = conn.execute("SELECT count(*) FROM pg_database WHERE datname LIKE 'sovren_t%'").fetchone()[0]
    assert left == 0   # the template and every clone were dropped


BARE = '''
    import pytest


    def test_no_seed_and_only_namespaced_fixtures(sovren_triad, request):
        assert sovren_triad.seed is None
        with sovren_triad.postgres() as conn:
            assert conn.execute("SELECT count(*) FROM users").fetchone()[0] == 0   # migrated, nothing seeded
            assert conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] == 1
        for name in ("pg_url", "redis_url", "mongo_url", "redis_cluster", "postgres_server_url"):
            with pytest.raises(pytest.FixtureLookupError):
                request.getfixturevalue(name)
'''


def run_pytest(cwd, env, *args):
    plugin = [] if plugin_is_installed() else ["-p", "sovren_db.testing.plugin"]
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin, *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)


def test_a_mode_without_seeding_namespaced_fixtures_and_the_root_option(tmp_path, repo_root, postgres_server_url,
                                                                        redis_server_url):
    root = copy_project(repo_root, tmp_path / "app")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "test_bare.py").write_text(textwrap.dedent(BARE))
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "SOVREN_ENV", "SOVREN_DB_STORES", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env.update(POSTGRES_URL=postgres_server_url, REDIS_URL=redis_server_url.rsplit("/", 1)[0] + "/13")
    lost = run_pytest(elsewhere, env, "--sovren-db-no-seed", "test_bare.py")
    assert lost.returncode == 1, lost.stdout + lost.stderr      # one sentence, naming the option that exists
    assert "set sovren_db_root in the pytest configuration or pass --sovren-db-root PATH." in lost.stdout
    assert "Traceback" not in lost.stdout
    done = run_pytest(elsewhere, env, "--sovren-db-no-seed", "--sovren-db-root", str(root), "test_bare.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
