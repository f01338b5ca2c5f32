"""monitoring/: the alert rules pass promtool, and every metric a panel or an alert uses is one the exporter serves."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from sovren_db.cli.main import cli
from sovren_db.doctor.model import Examination
from sovren_db.doctor.mongo import judge_balancer, judge_chunks, judge_index_stats, judge_operations, judge_page_faults
from sovren_db.doctor.thresholds import Thresholds
from sovren_db.metrics.catalog import METRICS, full_name
from sovren_db.metrics.exporter import families
from sovren_db.mongo.declared import load_declared
from tests.doctor import mongo_doctor_replies as r
from tests.doctor.test_metrics import NEEDS_PROMTOOL

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "monitoring" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "monitoring" / "grafana" / "sovren-db.json"
NAME = re.compile(r"\bsovren_db_[a-z0-9_]+")
# Served only where the topology has them; each is asserted by the test named.
CONDITIONAL = {
    "sovren_db_postgres_replication_lag_seconds": "a primary with streaming replicas (not started here)",
    "sovren_db_redis_cluster_slots_uncovered": "test_a_cluster_is_examined_on_every_master",
    "sovren_db_redis_sentinel_masters_seen": "tests/doctor/test_doctor_sentinel.py",
    "sovren_db_redis_sentinel_replicas_down": "tests/doctor/test_doctor_sentinel.py",
    "sovren_db_redis_sentinel_quorum": "tests/doctor/test_doctor_sentinel.py",
}


def _alert_exprs() -> list[str]:
    return [rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def _panel_exprs() -> list[str]:
    return [target["expr"] for panel in json.loads(DASHBOARD.read_text())["panels"] for target in panel["targets"]]


def _used() -> set[str]:
    return {name for expr in _alert_exprs() + _panel_exprs() for name in NAME.findall(expr)}


@NEEDS_PROMTOOL
def test_promtool_check_rules_accepts_the_alerts():
    result = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_alerts_carry_h4_thresholds_and_the_schema_alerts():
    alerts = {rule["alert"]: rule["expr"] for group in yaml.safe_load(ALERTS.read_text())["groups"]
              for rule in group["rules"]}
    assert alerts["SovrenDbPostgresSlowStatement"].endswith("> 0.2")
    assert alerts["SovrenDbRedisLatencyEvent"].endswith("> 0.002")
    assert alerts["SovrenDbMongoPageFaults"].endswith("> 1000")
    for name in ("SovrenDbDrift", "SovrenDbPendingRevisions", "SovrenDbAuditChainBroken", "SovrenDbStoreDown"):
        assert name in alerts


def test_every_used_metric_is_in_the_catalog():
    served = {full_name(name) for name in METRICS}
    assert _used() - served == set()
    assert len(_used()) >= 30


def _mongo_names() -> set[str]:
    """The metrics the Mongo collection serves, from its judgements of server-shaped replies."""
    exam, limits = Examination("mongo"), Thresholds()
    declared = load_declared(REPO / "mongo").collections
    judge_page_faults(100.0, exam, limits)
    judge_operations(r.current_op_reply(r.current_op(1, "COLLSCAN", {"userId": 1})), declared, "sovren_ai", exam,
                     limits)
    exam.sample("mongo_unused_indexes", judge_index_stats("communications", [], declared["communications"], exam))
    judge_balancer(r.BALANCER_ON, exam)
    judge_chunks(r.chunk_counts(r.COMMUNICATIONS_UUID, shard_eu=1), r.COLLECTIONS, r.SHARDS, exam, limits)
    return {metric.name for metric in families([("mongo", exam)], {})}


def test_every_used_metric_is_served(doctor_project, pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:  # drift_objects is served per drifted kind
        conn.execute("ALTER TABLE users ADD COLUMN nickname text")
    result = CliRunner().invoke(cli, ["metrics"])
    assert result.exit_code == 0, result.output
    served = {m.group(0) for m in NAME.finditer(result.output)} | _mongo_names()
    missing = _used() - served - set(CONDITIONAL)
    assert missing == set(), f"used by a panel or an alert, never served: {sorted(missing)}"


def test_the_compose_file_mounts_the_monitoring_files():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())["services"]
    mounts = " ".join(compose["prometheus"]["volumes"] + compose["grafana"]["volumes"])
    for path in ("monitoring/prometheus/alerts.yml", "monitoring/prometheus/prometheus.yml",
                 "monitoring/grafana/sovren-db.json", "monitoring/grafana/provisioning"):
        assert f"./{path}" in mounts and (REPO / path).exists()
    assert "shared_preload_libraries=pg_stat_statements" in " ".join(compose["postgres"]["command"])


@pytest.mark.cluster
def test_a_cluster_is_examined_on_every_master(doctor_project, redis_cluster, monkeypatch):
    from sovren_db.core.config import load_settings
    from sovren_db.doctor import collect, load_thresholds
    from sovren_db.doctor.redis import commands_per_master

    monkeypatch.setenv("REDIS_URL", redis_cluster.url)
    exam = collect("redis", load_settings(doctor_project), load_thresholds(doctor_project))
    uncovered = [s for s in exam.samples if s.name == "redis_cluster_slots_uncovered"]
    assert exam.up and len(uncovered) == len(redis_cluster.nodes) and all(s.value == 0 for s in uncovered)
    assert not [f for f in exam.findings if f.code == "redis-cluster-slots"]
    assert commands_per_master(load_thresholds(doctor_project), cluster=True) == 50 + 5
    served = {metric.name for metric in families([("redis", exam)], {})}
    assert "sovren_db_redis_cluster_slots_uncovered" in served
