"""sovren-db metrics: the exposition passes promtool, names are Prometheus's, nothing secret is served;
metrics serve answers from cache, on loopback, and a port in use is exit 2 naming it."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from urllib.parse import urlsplit

import psycopg
import pytest
from click.testing import CliRunner

from sovren_db.cli.main import cli
from sovren_db.core.config import load_settings
from sovren_db.services import free_port
from sovren_db.doctor import load_thresholds
from sovren_db.metrics import METRICS, PREFIX, Exporter
from sovren_db.metrics.serve import serve

NEEDS_PROMTOOL = pytest.mark.skipif(not shutil.which("promtool"), reason="promtool (Debian package prometheus) "
                                                                         "is not installed")


def _metrics(*args: str) -> str:
    result = CliRunner().invoke(cli, ["metrics", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _series(text: str) -> dict[str, float]:
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


def test_the_exposition_names_every_store_and_measure(doctor_project, pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE payments NO FORCE ROW LEVEL SECURITY")
    series = _series(_metrics())
    assert series['sovren_db_store_up{store="postgres"}'] == 1 and series['sovren_db_store_up{store="redis"}'] == 1
    assert series["sovren_db_pending_revisions"] == 0
    assert series["sovren_db_postgres_tables_without_forced_rls"] == 1
    assert series['sovren_db_drift_objects{kind="row",store="postgres"}'] >= 1
    assert series["sovren_db_audit_chain_intact"] == 1
    assert series["sovren_db_redis_round_trip_p99_seconds"] > 0
    assert 'sovren_db_collection_duration_seconds{collection="schema"}' in series
    names = {re.match(r"[a-z_0-9]+", key)[0] for key in series}
    assert all(name.startswith(PREFIX) for name in names)
    assert {n.removeprefix(PREFIX) for n in names} <= set(METRICS)


def test_no_secret_or_key_name_is_served(doctor_project, redis_url, pg_url, monkeypatch):
    import redis

    redis.Redis.from_url(redis_url).set("session:alice@example.com", "x")
    text = _metrics()
    assert "alice" not in text and urlsplit(pg_url).password not in text
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    down = _metrics()
    assert 'sovren_db_store_up{store="redis"} 0.0' in down and "hunter2" not in down


@NEEDS_PROMTOOL
def test_promtool_check_metrics_accepts_the_exposition(doctor_project):
    text = _metrics()
    result = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_scrape_never_waits_on_a_slow_collection(doctor_project):
    exporter = Exporter(load_settings(doctor_project), load_thresholds(doctor_project))
    exporter.run("postgres")
    entered, release = threading.Event(), threading.Event()

    def slow(name: str, *args, **kwargs):
        entered.set()
        release.wait(10)
        raise RuntimeError("released")

    import sovren_db.metrics.exporter as module

    original = module.collect
    module.collect = slow
    worker = threading.Thread(target=lambda: pytest.raises(RuntimeError, exporter.run, "schema"))
    try:
        worker.start()
        assert entered.wait(5)
        from prometheus_client import generate_latest

        text = generate_latest(exporter.registry()).decode()  # returns while the collection hangs
        assert 'sovren_db_store_up{store="postgres"} 1.0' in text
    finally:
        release.set()
        worker.join()
        module.collect = original


def test_serve_on_loopback_and_a_port_in_use_is_exit_2_naming_it(doctor_project):
    settings = load_settings(doctor_project)
    stop, ports = threading.Event(), []
    thread = threading.Thread(target=serve, args=(settings,), kwargs=dict(
        port=0, interval=60, expensive_interval=60, stop=stop, on_ready=ports.append))
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not ports and time.monotonic() < deadline:
            time.sleep(0.05)
        body = ""
        while 'store_up{store="postgres"}' not in body and time.monotonic() < deadline:
            body = urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/metrics", timeout=5).read().decode()
            time.sleep(0.1)
        assert 'sovren_db_store_up{store="postgres"} 1.0' in body
        with socket.socket() as probe:  # bound to loopback only
            assert probe.connect_ex((_outside_address(), ports[0])) != 0 or _outside_address() == "127.0.0.1"
        result = CliRunner().invoke(cli, ["metrics", "serve", "--port", str(ports[0])])
        assert result.exit_code == 2
        assert f"port {ports[0]} on 127.0.0.1 is already in use" in result.output
        assert len(result.output.strip().splitlines()) == 1
    finally:
        stop.set()
        thread.join(10)


def _outside_address() -> str:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("192.0.2.1", 9))  # TEST-NET: no packet is sent, the route picks the address
            return sock.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def test_a_redis_killed_and_restarted_goes_down_then_up_again(doctor_project, tmp_path, monkeypatch):
    import os
    import signal

    from sovren_db import services

    server = services.start_redis(tmp_path / "own-redis")
    monkeypatch.setenv("REDIS_URL", server.url)
    exporter = Exporter(load_settings(doctor_project), load_thresholds(doctor_project))
    try:
        assert exporter.run("redis").up
        os.kill(server.pid, signal.SIGKILL)
        time.sleep(0.2)
        down = exporter.run("redis")
        assert not down.up and exporter.down() == {"redis"}
        assert exporter.run("postgres").up  # the other stores are still collected
        schema = exporter.run("schema")  # skips the keyspace of the store that is down, checks the rest
        assert not [f for f in schema.findings if f.store == "redis" and f.code == "unexamined"]
        server = services.start_redis(tmp_path / "own-redis", port=server.port)
        assert exporter.run("redis").up
        from prometheus_client import generate_latest

        assert 'sovren_db_store_up{store="redis"} 1.0' in generate_latest(exporter.registry()).decode()
    finally:
        services.stop(server)


def test_the_command_line_server_serves_the_schema_from_its_worker_and_stops_on_sigterm(doctor_project):
    import signal
    import sys
    from pathlib import Path

    port = free_port()
    command = [str(Path(sys.executable).parent / "sovren-db"), "metrics", "serve", "--port", str(port),
               "--interval", "1", "--expensive-interval", "1"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, body = time.monotonic() + 90, ""
        while 'collection="schema"' not in body and time.monotonic() < deadline:
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            except OSError:
                pass
            time.sleep(0.2)
        assert "sovren_db_audit_chain_intact 1.0" in body and "sovren_db_drift_findings 0.0" in body
    finally:
        server.send_signal(signal.SIGTERM)
        _, err = server.communicate(timeout=30)
    assert server.returncode == 0, err
    assert f"serving http://127.0.0.1:{port}/metrics" in err
