"""doctor under Sentinel (runbook H.2): a real redis-sentinel monitoring a loopback master."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest
import redis

from sovren_db import services
from sovren_db.core.config import load_settings
from sovren_db.doctor import collect, load_thresholds
from tests.doctor.conftest import CALM, set_thresholds

pytestmark = pytest.mark.skipif(not shutil.which("redis-sentinel"), reason="redis-sentinel is not installed")


@pytest.fixture
def sentinel(tmp_path):
    """A master of its own and one sentinel monitoring it as 'mymaster' (quorum 1), both on loopback."""
    master = services.start_redis(tmp_path / "master")
    port = services.free_port()
    folder = tmp_path / "sentinel"
    folder.mkdir()
    config = folder / "sentinel.conf"
    config.write_text(f"port {port}\nbind 127.0.0.1\ndir {folder}\ndaemonize yes\npidfile {folder}/pid\n"
                      f"logfile {folder}/log\nsentinel monitor mymaster 127.0.0.1 {master.port} 1\n")
    subprocess.run(["redis-sentinel", str(config)], check=True)
    client = redis.Redis(port=port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if client.sentinel_get_master_addr_by_name("mymaster"):
                break
        except redis.ConnectionError:
            pass
        time.sleep(0.1)
    client.close()
    yield master, f"127.0.0.1:{port}"
    os.kill(int((folder / "pid").read_text()), signal.SIGTERM)
    services.stop(master)


def _redis_exam(root):
    return collect("redis", load_settings(root), load_thresholds(root))


def _values(exam, name):
    return [s.value for s in exam.samples if s.name == name]


def test_the_sentinels_view_agrees_with_redis_url(doctor_project, sentinel, monkeypatch):
    master, address = sentinel
    monkeypatch.setenv("REDIS_URL", master.url)
    set_thresholds(doctor_project, **CALM, sentinels=[address])
    exam = _redis_exam(doctor_project)
    assert not [f for f in exam.findings if f.code.startswith("redis-sentinel")]
    assert _values(exam, "redis_sentinel_masters_seen") == [1] and _values(exam, "redis_sentinel_quorum") == [1]


def test_a_master_other_than_redis_url_says_a_failover_happened(doctor_project, sentinel, redis_url):
    master, address = sentinel
    set_thresholds(doctor_project, **CALM, sentinels=[address])  # REDIS_URL: the session's server
    exam = _redis_exam(doctor_project)
    moved = [f for f in exam.findings if f.code == "redis-sentinel-master"]
    assert moved and f"127.0.0.1:{master.port}" in moved[0].message and "runbook H.2" in moved[0].message


def test_the_sentinels_are_asked_even_when_the_master_is_down(doctor_project, sentinel, monkeypatch):
    master, address = sentinel
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{services.free_port()}/0")
    set_thresholds(doctor_project, **CALM, sentinels=[address], sentinel_master="elsewhere")
    exam = _redis_exam(doctor_project)
    assert not exam.up
    unknown = [f for f in exam.findings if f.code == "redis-sentinel"]
    assert unknown and "does not monitor a master named elsewhere" in unknown[0].message


def test_bad_sentinel_settings_are_one_sentence():
    from sovren_db.core.errors import ConfigError
    from sovren_db.doctor.thresholds import thresholds_from

    with pytest.raises(ConfigError, match='sentinels must be a list of "host:port" addresses'):
        thresholds_from({"sentinels": "127.0.0.1"}, "here")
    with pytest.raises(ConfigError, match="sentinel_master must be"):
        thresholds_from({"sentinel_master": 3}, "here")
