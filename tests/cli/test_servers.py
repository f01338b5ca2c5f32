"""``sovren-db up | env | down`` with real binaries, in a project folder of the test's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import redis

from sovren_db.services import local

SOVREN_DB = str(Path(sys.executable).parent / "sovren-db")


@pytest.fixture
def bare_project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    root.mkdir()
    root.chmod(0o755)
    tmp_path.chmod(0o755)
    (root / "pyproject.toml").write_text("[project]\nname = 'p'\n[tool.sovren-db]\n")
    return root


def sovren(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "POSTGRES_URL", "REDIS_URL", "MONGO_URL")}
    return subprocess.run([SOVREN_DB, "--root", str(root), *args], env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.mark.slow
def test_up_env_down(bare_project):
    up = sovren(bare_project, "up", "--store", "postgres", "--store", "redis")
    try:
        assert up.returncode == 0, up.stderr
        recorded = bare_project / ".sovren" / "servers.json"
        servers = json.loads(recorded.read_text())
        assert set(servers) == {"postgres", "redis"}
        assert recorded.stat().st_mode & 0o777 == 0o600  # it holds the URLs with their passwords
        first_pids = [info["pid"] for info in servers.values()]
        passwords = {store: urlsplit(info["url"]).password for store, info in servers.items()}
        assert all(len(p) >= 20 for p in passwords.values()), passwords  # drawn for this checkout
        assert not any(p in up.stdout + up.stderr for p in passwords.values())  # up prints redacted URLs
        assert "export POSTGRES_URL='postgresql://sovren:***@127.0.0.1:" in up.stdout
        assert "sovren-db env" in up.stdout  # says where the usable lines are
        env = sovren(bare_project, "env")
        assert all(p in env.stdout for p in passwords.values()) and "prints passwords" in env.stderr
        exports = dict(line.removeprefix("export ").split("=", 1) for line in env.stdout.splitlines()
                       if line.startswith("export "))
        pg_url = exports["POSTGRES_URL"].strip("'")
        with psycopg.connect(pg_url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert redis.Redis.from_url(exports["REDIS_URL"].strip("'")).ping()
        again = sovren(bare_project, "up", "--store", "redis")
        assert "already running" in again.stdout
        redis.Redis.from_url(exports["REDIS_URL"].strip("'")).set("kept", "1")
        sovren(bare_project, "down")
        restarted = sovren(bare_project, "up", "--store", "redis")
        assert "started" in restarted.stdout
        url = json.loads((bare_project / ".sovren" / "servers.json").read_text())["redis"]["url"]
        assert redis.Redis.from_url(url).get("kept") == b"1"  # development data survives down/up
    finally:
        down = sovren(bare_project, "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not (bare_project / ".sovren" / "servers.json").exists()
    for pid in first_pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.mark.skipif(bool(shutil.which("mongod")), reason="this machine has mongod; the absent case cannot be shown")
def test_up_without_mongod_says_how_to_provide_it(bare_project):
    result = sovren(bare_project, "up", "--store", "mongo")
    assert result.returncode == 0
    assert "mongo: No mongod on PATH: set MONGO_URL=" in result.stdout
    assert "# MONGO_URL is not set" in result.stdout


@pytest.mark.skipif(bool(shutil.which("mongod")), reason="this machine has mongod; the absent case cannot be shown")
def test_up_without_mongod_under_strict_is_an_error(bare_project):
    result = sovren(bare_project, "--strict", "up", "--store", "mongo")
    assert result.returncode == 2


def test_env_reports_unset_urls(bare_project):
    result = sovren(bare_project, "env")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "# POSTGRES_URL is not set: no postgres server configured",
        "# MONGO_URL is not set: no mongo server configured",
        "# REDIS_URL is not set: no redis server configured",
    ]


@pytest.mark.skipif(bool(shutil.which("mongod") and shutil.which("mongos")),
                    reason="this machine has mongod and mongos; the absent case cannot be shown")
def test_up_mongo_sharded_without_binaries_says_what_is_missing(bare_project):
    result = sovren(bare_project, "up", "--store", "mongo", "--mongo-sharded")
    assert result.returncode == 0, result.stderr
    assert "mongo: A sharded MongoDB cluster needs the mongod and mongos binaries on PATH" in result.stdout
    assert sovren(bare_project, "--strict", "up", "--store", "mongo", "--mongo-sharded").returncode == 2


def test_a_recorded_cluster_is_stopped_whole_by_down(tmp_path):
    # processes standing in for the mongos and the members behind it: this checks the bookkeeping
    from sovren_db.services.local import Server, stop

    procs = [subprocess.Popen(["sleep", "60"]) for _ in range(3)]
    members = [Server("mongo", "mongodb://m", 1, p.pid, str(tmp_path)).to_json() for p in procs[1:]]
    router = Server("mongo", "mongodb://127.0.0.1:1/sovren_ai", 1, procs[0].pid, str(tmp_path), members=members)
    recorded = Server.from_json(json.loads(json.dumps(router.to_json())))
    assert recorded.members == members
    assert stop(recorded, timeout=5)
    assert [p.wait(timeout=5) for p in procs] == [-15, -15, -15]  # each ended by SIGTERM


def test_the_cluster_has_a_shard_per_declared_zone(tmp_path):
    from sovren_db.core.config import load_settings
    from sovren_db.services.manager import declared_zones
    from sovren_db.services.mongo_cluster import DEFAULT_ZONES

    repo = Path(__file__).resolve().parents[2]
    assert declared_zones(load_settings(repo)) == ("eu", "us")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n[tool.sovren-db]\n")
    (tmp_path / "mongo").mkdir()
    (tmp_path / "mongo" / "c.toml").write_text(
        '[[indexes]]\nkey = { r = 1 }\n[shard]\nkey = { r = 1 }\n'
        '[[zones]]\nzone = "apac"\nmin = { r = "a" }\nmax = { r = "b" }\n'
    )
    assert declared_zones(load_settings(tmp_path)) == ("apac",)
    (tmp_path / "mongo" / "c.toml").unlink()
    assert declared_zones(load_settings(tmp_path)) == DEFAULT_ZONES


def redis_servers_in(directory: Path) -> list[int]:
    """Pids of the redis-server processes whose working directory (their --dir) is ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if (entry.name.isdigit() and (entry / "comm").read_text().strip() == "redis-server"
                    and Path(os.readlink(entry / "cwd")) == directory.resolve()):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def wait_gone(pid: int) -> None:
    import time

    for _ in range(200):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


def test_a_redis_killed_with_9_is_started_once_again_and_down_stops_whatever_serves_it(bare_project):
    import signal

    from sovren_db.core.config import load_settings
    from sovren_db.services.manager import down, read_servers, up, write_servers

    settings = load_settings(bare_project)
    data = settings.state_dir / "redis"
    try:
        up(settings, ("redis",))
        first = read_servers(settings)["redis"]
        os.kill(first.pid, signal.SIGKILL)   # its pidfile stays behind
        wait_gone(first.pid)
        assert [r.state for r in up(settings, ("redis",))] == ["started"]
        second = read_servers(settings)["redis"]
        assert redis_servers_in(data) == [second.pid]              # the pid recorded is the live one

        write_servers(settings, {"redis": read_servers(settings)["redis"].__class__(
            **{**second.to_json(), "pid": first.pid})})            # a stale pid recorded
        report = up(settings, ("redis",))
        assert report[0].state == "running" and str(second.pid) in report[0].message
        assert redis_servers_in(data) == [second.pid]              # never a second server on the directory

        (settings.state_dir / "servers.json").unlink()             # nothing recorded at all
        assert [r.state for r in down(settings)] == ["stopped"]
        wait_gone(second.pid)
        assert redis_servers_in(data) == []
    finally:
        for pid in redis_servers_in(data):
            os.kill(pid, signal.SIGKILL)


def test_every_checkout_draws_its_own_private_password(tmp_path):
    from sovren_db.services.local import local_password

    first, second = local_password(tmp_path / "a"), local_password(tmp_path / "b")
    assert first != second and len(first) >= 20
    assert local_password(tmp_path / "a") == first  # a restart finds the password its data was made with
    assert (tmp_path / "a" / "password").stat().st_mode & 0o777 == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="only as root does the server run as another account")
def test_a_data_folder_the_server_account_cannot_reach_is_found_again_and_removed_with_a_temporary_base(tmp_path):
    base = tmp_path / "unreachable" / "postgres"   # pytest's tmp_path is 0700: the server's account cannot enter
    base.mkdir(parents=True)
    user = local._pg_run_as()
    root = local._pg_data_root(base, user)
    assert root != base and (base / local.POINTER).resolve() == root
    assert local._pg_data_root(base, user) == root          # a restart finds the same data
    local._remove_orphan(base, root)
    assert root.is_dir()                                     # the base is still there: kept
    shutil.rmtree(base)
    local._remove_orphan(base, root)
    assert not root.exists()                                 # the base is gone: so is its data
