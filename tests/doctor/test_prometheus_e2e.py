"""End to end: Debian's Prometheus scrapes 'sovren-db metrics serve' on loopback and evaluates
monitoring/prometheus/alerts.yml; drift, a slow statement and a Redis latency event each fire their
alert, and each resolves once healed.

The rules are the shipped ones with their 'for:' waits set to 0s (a test cannot wait ten minutes);
the expressions are untouched.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
import redis

from sovren_db.core.config import load_settings
from sovren_db.metrics.serve import serve
from sovren_db.services import free_port

REPO = Path(__file__).resolve().parents[2]
WATCHED = ("SovrenDbDrift", "SovrenDbPostgresSlowStatement", "SovrenDbRedisLatencyEvent")

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not shutil.which("prometheus"), reason="the prometheus server (Debian package "
                                                                        "prometheus) is not installed")]


@pytest.fixture
def exporter_port(doctor_project):
    stop, ports = threading.Event(), []
    thread = threading.Thread(target=serve, args=(load_settings(doctor_project),), daemon=True, kwargs=dict(
        port=0, interval=1, expensive_interval=1, stop=stop, on_ready=ports.append))
    thread.start()
    deadline = time.monotonic() + 30
    while not ports and time.monotonic() < deadline:
        time.sleep(0.05)
    yield ports[0]
    stop.set()
    thread.join(15)


@pytest.fixture
def prometheus(tmp_path: Path, exporter_port: int):
    rules = re.sub(r"(?m)^(\s+)for: .*$", r"\1for: 0s", (REPO / "monitoring/prometheus/alerts.yml").read_text())
    (tmp_path / "alerts.yml").write_text(rules)
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"rule_files: [{tmp_path / 'alerts.yml'}]\n"
        f"scrape_configs: [{{job_name: sovren-db, static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]}}]\n")
    port = free_port()
    log = (tmp_path / "prometheus.log").open("w")
    process = subprocess.Popen(["prometheus", f"--config.file={tmp_path / 'prometheus.yml'}",
                                f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=log, stderr=subprocess.STDOUT)
    try:
        _until(lambda: _get(port, "/-/ready") is not None, 30, "Prometheus ready")
        yield port
    finally:
        process.terminate()
        process.wait(15)
        log.close()


def _get(port: int, path: str) -> bytes | None:
    try:
        return urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5).read()
    except OSError:
        return None


def _until(predicate, timeout: float, what) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def _firing(port: int) -> set[str]:
    body = _get(port, "/api/v1/alerts")
    alerts = json.loads(body)["data"]["alerts"] if body else []
    return {a["labels"]["alertname"] for a in alerts if a["state"] == "firing"}


def test_alerts_fire_on_drift_slow_statement_and_latency_then_resolve(doctor_project, pg_url, redis_url,
                                                                       prometheus):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # The harness's server is shared by the whole run: with thousands of statements behind it,
        # pg_stat_statements evicts the least used entries, and a statement called once is one.
        conn.execute("SELECT pg_stat_statements_reset()")
    _until(lambda: not set(WATCHED) & _firing(prometheus) and _get(prometheus, "/api/v1/query?query=up") is not None,
           30, "a quiet start")
    client = redis.Redis.from_url(redis_url)
    client.config_set("latency-monitor-threshold", 1)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE users ADD COLUMN nickname text")
        conn.execute("SELECT pg_sleep(0.4)")
    client.execute_command("DEBUG", "SLEEP", "0.05")
    try:
        _until(lambda: set(WATCHED) <= _firing(prometheus), 90,
               lambda: f"{WATCHED} to fire (firing: {sorted(_firing(prometheus))})")
    finally:  # heal: migrate's shape back, the statement forgotten once fixed, the latency event handled
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("ALTER TABLE users DROP COLUMN IF EXISTS nickname")
            conn.execute("SELECT pg_stat_statements_reset()")
        client.execute_command("LATENCY", "RESET")
        client.config_set("latency-monitor-threshold", 0)
    _until(lambda: not set(WATCHED) & _firing(prometheus), 90,
           lambda: f"{WATCHED} to resolve (firing: {sorted(_firing(prometheus))})")
    client.close()
