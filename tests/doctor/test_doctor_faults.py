"""doctor under faults: a store down, a server without pg_stat_statements, bad thresholds, the CLI's formats."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner

from sovren_db import services
from sovren_db.cli.main import cli
from sovren_db.core.errors import ConfigError
from sovren_db.doctor.thresholds import thresholds_from
from tests.doctor.conftest import run_doctor, set_thresholds


def _cli(*args: str):
    return CliRunner().invoke(cli, ["doctor", *args])


def test_redis_down_is_reported_and_postgres_still_examined(doctor_project, pg_url, monkeypatch):
    monkeypatch.setenv("REDIS_URL", f"redis://:hunter2@127.0.0.1:{services.free_port()}/0")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE payments NO FORCE ROW LEVEL SECURITY")
    result = _cli("--format", "json")
    report = json.loads(result.output)
    assert result.exit_code == 2
    assert report["stores"]["redis"]["up"] is False and report["stores"]["postgres"]["up"] is True
    down = [f for f in report["findings"] if f["store"] == "redis" and f["code"] == "unexamined"]
    assert len(down) == 1 and "not usable" in down[0]["message"]
    assert any(f["code"] == "rls-not-forced" for f in report["findings"])  # the schema was still examined
    assert "hunter2" not in result.output


def test_postgres_down_is_reported_and_redis_still_examined(doctor_project, redis_url, monkeypatch):
    monkeypatch.setenv("POSTGRES_URL", f"postgresql://sovren:securepass@127.0.0.1:{services.free_port()}/x")
    outcome = run_doctor(doctor_project)
    assert outcome.exit_code == 2
    assert outcome.data["stores"]["postgres"]["up"] is False and outcome.data["stores"]["redis"]["up"] is True
    assert [f.store for f in outcome.findings if f.code == "unexamined"] == ["postgres"]
    assert "securepass" not in " ".join(f.sentence() for f in outcome.findings)


@pytest.mark.parametrize("key, value, says", [
    ("statement_mean_ms", "'fast'", "statement_mean_ms must be a number, not \"fast\""),
    ("redis_latency_ms", "-2", "redis_latency_ms must be greater than 0, not -2"),
    ("connections_ratio", "1.5", "connections_ratio must be between 0 and 1"),
    ("redis_ping_samples", "2.5", "redis_ping_samples must be a whole number"),
    ("page_faults", "1000", "unknown threshold 'page_faults'"),
])
def test_a_bad_threshold_is_exit_2_and_one_sentence(doctor_project, key, value, says):
    path = doctor_project / "pyproject.toml"
    path.write_text(path.read_text().split("\n[tool.sovren-db.doctor]\n")[0] + f"\n[tool.sovren-db.doctor]\n{key} = {value}\n")
    result = _cli()
    assert result.exit_code == 2
    assert says in result.output and "[tool.sovren-db.doctor]" in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_thresholds_default_to_the_runbook():
    limits = thresholds_from({}, "here")
    assert (limits.statement_mean_ms, limits.redis_latency_ms, limits.mongo_page_faults_per_second) == (200, 2, 1000)
    with pytest.raises(ConfigError, match="true"):
        thresholds_from({"statement_mean_ms": True}, "here")


def test_formats_text_json_github(doctor_project, pg_url):
    set_thresholds(doctor_project, redis_latency_ms=1000, statement_mean_ms=50)
    with psycopg.connect(pg_url) as conn:
        conn.execute("SELECT pg_sleep(0.1)")
    text, as_json, github = _cli(), _cli("--format", "json"), _cli("--format", "github")
    assert text.exit_code == as_json.exit_code == github.exit_code == 1
    assert "postgres: statement " in text.output and "[slow-statement]" in text.output
    assert json.loads(as_json.output)["exit_code"] == 1
    assert "::error title=postgres slow-statement::" in github.output


def test_a_server_without_the_library_names_shared_preload_libraries(doctor_project, tmp_path, monkeypatch):
    server = services.start_postgres(tmp_path / "bare", preload="")
    try:
        with psycopg.connect(server.url, autocommit=True) as conn:
            assert conn.execute("SHOW shared_preload_libraries").fetchone()[0] == ""
            conn.execute("CREATE EXTENSION pg_stat_statements")  # created, yet not loaded
        monkeypatch.setenv("POSTGRES_URL", server.url)
        outcome = run_doctor(doctor_project)
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute("DROP EXTENSION pg_stat_statements")
        without = run_doctor(doctor_project)
    finally:
        services.stop(server)
    for report in (outcome, without):
        gap = [f for f in report.findings if f.object == "pg_stat_statements"]
        assert len(gap) == 1 and "add pg_stat_statements to shared_preload_libraries" in gap[0].message
        assert report.exit_code == 2
