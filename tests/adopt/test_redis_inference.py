"""Redis key families inferred from a keyspace written by a client library we did not write (Celery)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from sovren_db.adopt.redis_infer import KeyspaceInference, render_toml
from sovren_db.core.config import load_settings
from sovren_db.redis.audit import AuditOptions
from sovren_db.redis.backend import RedisBackend
from sovren_db.redis.checks import audit_findings, run_audit
from sovren_db.redis.declared import load_declarations

HERE = Path(__file__).resolve().parent
pytestmark = pytest.mark.redis


def _celery_keyspace(redis_url: str) -> None:
    """A worker (solo pool) runs a few seconds on loopback; 20 tasks, their results read, one group."""
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(HERE)}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo",
                               "--concurrency=1", "--loglevel=WARNING", "--without-mingle", "--without-gossip"],
                              env=env, cwd=HERE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        subprocess.run([sys.executable, "-c",
                        "from celery import group\nfrom celery_app import add\n"
                        "results = [add.delay(i, i) for i in range(20)]\n"
                        "assert [r.get(timeout=30) for r in results] == [2 * i for i in range(20)]\n"
                        "assert group(add.s(1, 1), add.s(2, 2))().get(timeout=30) == [2, 4]\n"
                        "add.apply_async((1, 2), countdown=3600)\n"],
                       env=env, cwd=HERE, check=True, timeout=60)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)


def test_celery_families_are_inferred_and_the_audit_is_clean(redis_url, tmp_path):
    _celery_keyspace(redis_url)
    client = redis.Redis.from_url(redis_url)
    client.publish("live:user:7", "hello")  # no subscriber: PUBSUB lists only subscribed channels
    pubsub = client.pubsub()
    pubsub.subscribe("live:user:42")
    result = KeyspaceInference().run([("redis", client)])
    text = render_toml(result)
    (tmp_path / "redis").mkdir()
    (tmp_path / "redis" / "inspected.toml").write_text(text)
    declared = load_declarations(tmp_path / "redis")
    patterns = {f.pattern: f for f in declared.families.values()}
    assert patterns["celery-task-meta-{uuid}"].type == "string"
    assert patterns["celery-task-meta-{uuid}"].ttl.policy == "required"
    assert patterns["celery"].type == "list" and patterns["celery"].ttl.policy == "none"   # the queue
    assert patterns["_kombu.binding.celery"].type == "set"
    assert {c.pattern for c in declared.channels.values()} >= {"live:user:{n}"}
    assert declared.server["maxmemory-policy"]
    (tmp_path / "pyproject.toml").write_text("[tool.sovren-db]\nstores = [\"postgres\", \"redis\"]\n")
    backend = RedisBackend(load_settings(tmp_path, environ={"REDIS_URL": redis_url}))
    backend.connect()
    try:
        report = run_audit(backend, declared, AuditOptions())
    finally:
        backend.close()
        pubsub.close()
    findings = audit_findings(load_settings(tmp_path, environ={"REDIS_URL": redis_url}), declared, report)
    assert [f.sentence() for f in findings if f.severity == "error"] == []
    assert not report.unknown, report.unknown
