"""migrate, seed and erase as OpenTelemetry traces, read back with the SDK's in-memory exporter."""

from __future__ import annotations

import os
import subprocess
import sys

import psycopg
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sovren_db import commands, telemetry
from sovren_db.compliance.erase import erase
from sovren_db.core.config import load_settings
from sovren_db.seeds.engine import seed
from tests.integration.conftest import add_revision, use_project


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.configure(provider)
    yield exporter
    telemetry.configure(None)


@pytest.fixture
def traced_project(tmp_path, repo_root, pg_url, redis_url, monkeypatch):
    return use_project(repo_root, tmp_path / "project", monkeypatch, POSTGRES_URL=pg_url, REDIS_URL=redis_url,
                       SOVREN_DB_STORES="postgres,redis")


def _attrs(span) -> dict:
    return dict(span.attributes)


def test_migrate_is_one_trace_with_a_span_per_revision_and_store_step(traced_project, spans):
    commands.migrate(load_settings(traced_project))
    finished = spans.get_finished_spans()
    root = next(s for s in finished if s.name == "sovren-db migrate")
    assert {s.context.trace_id for s in finished} == {root.context.trace_id}
    assert _attrs(root)["sovren_db.outcome"] == "ok" and _attrs(root)["sovren_db.target"] == "head"
    assert "sovren_db.lock_wait_seconds" in _attrs(root)
    revisions = [s for s in finished if s.name.startswith("revision ")]
    assert revisions and all(s.parent.span_id == root.context.span_id for s in revisions)
    steps = [s for s in finished if s.name.startswith("redis ")]
    assert steps and all(s.parent.span_id in {r.context.span_id for r in revisions} for s in steps)
    assert all(_attrs(s)["sovren_db.outcome"] == "ok" and _attrs(s)["sovren_db.store"] == "redis" for s in steps)


def test_a_failing_revision_marks_its_spans_without_quoting_sql(traced_project, spans):
    commands.migrate(load_settings(traced_project))
    spans.clear()
    add_revision(traced_project, "0ff1ce000001", "    op.execute(\"SELECT 1/0 AS secret_4111111111111111\")")
    with pytest.raises(Exception):
        commands.migrate(load_settings(traced_project))
    root = next(s for s in spans.get_finished_spans() if s.name == "sovren-db migrate")
    assert _attrs(root)["sovren_db.outcome"] == "error" and _attrs(root)["error.type"] == "MigrationFailed"
    every = repr([(s.name, s.attributes, s.status.description, s.events) for s in spans.get_finished_spans()])
    assert "4111111111111111" not in every and "1/0" not in every


def test_seed_and_erase_carry_rows_touched_and_never_the_subject(traced_project, spans, pg_url):
    settings = load_settings(traced_project)
    commands.migrate(settings)
    seed(settings, "ci")
    with psycopg.connect(pg_url) as conn:
        subject = str(conn.execute("SELECT user_id FROM users ORDER BY user_id LIMIT 1").fetchone()[0])
    erase(settings, subject)
    finished = spans.get_finished_spans()
    seeded = {s.name: _attrs(s)["sovren_db.rows"] for s in finished if s.name.startswith("seed ")}
    assert seeded["seed postgres"] > 100 and seeded["seed redis"] > 0
    erased = [s for s in finished if s.name.startswith("erase ")]
    assert erased and sum(_attrs(s)["sovren_db.rows"] for s in erased) > 0
    root = next(s for s in finished if s.name == "sovren-db erase")
    assert _attrs(root) == {"sovren_db.dry_run": False, "sovren_db.outcome": "ok", "sovren_db.lock_wait_seconds": 0.0}
    assert subject not in repr([(s.name, s.attributes) for s in finished])


@pytest.mark.parametrize("endpoint", [None, "http://127.0.0.1:4318"])
def test_without_the_extra_migrate_runs_untraced(traced_project, endpoint):
    """The extra absent (opentelemetry made unimportable): migrate works; with the endpoint set it says why
    no trace is sent, in one sentence. (redis-py 8 imports opentelemetry itself where it is installed, so
    the test blocks the package rather than counting modules.)"""
    code = ("import sys\nsys.modules['opentelemetry'] = None\n"
            "from sovren_db import commands\nfrom sovren_db.core.config import load_settings\n"
            "print(commands.migrate(load_settings()).data['applied'])")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    if endpoint:
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("['")
    warned = [line for line in result.stderr.splitlines() if "otel extra is not installed" in line]
    assert len(warned) == (1 if endpoint else 0)
