"""doctor on the audit chain's signed checkpoints (audit seal): their age and signature (real Postgres, Redis)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import redis

from sovren_db.compliance.audit_seal import REDIS_LIST, Checkpoint
from sovren_db.compliance.audit_verify import seal
from sovren_db.core.config import load_settings
from sovren_db.core.errors import ConfigError
from sovren_db.doctor import load_thresholds
from tests.doctor.conftest import CALM, run_doctor, set_thresholds
from tests.doctor.test_metrics import _metrics, _series

KEY = "k" * 32


@pytest.fixture
def sealing(doctor_project, redis_url, monkeypatch):
    monkeypatch.setenv("SOVREN_AUDIT_SEAL_KEY", KEY)
    client = redis.Redis.from_url(redis_url)
    client.delete(REDIS_LIST)
    set_thresholds(doctor_project, **{**CALM, "audit_checkpoints": "redis", "audit_checkpoint_hours": 2})
    yield client
    client.delete(REDIS_LIST)
    client.close()


def checkpoint_findings(outcome):
    return [f for f in outcome.findings if f.code == "audit-checkpoint"]


def test_a_fresh_checkpoint_is_healthy_and_its_age_served(sealing, doctor_project):
    assert seal(load_settings(doctor_project), "redis").exit_code == 0
    outcome = run_doctor(doctor_project)
    assert checkpoint_findings(outcome) == [] and outcome.exit_code == 0
    assert 0 <= _series(_metrics())["sovren_db_audit_checkpoint_age_seconds"] < 600


def test_an_old_checkpoint_says_to_seal_again(sealing, doctor_project):
    sealed = (datetime.now(timezone.utc) - timedelta(hours=5)).isoformat(timespec="seconds")
    sealing.rpush(REDIS_LIST, Checkpoint(0, None, None, sealed).line(KEY.encode()))
    (finding,) = checkpoint_findings(run_doctor(doctor_project))
    assert "5.0 h ago" in finding.message and "audit_checkpoint_hours 2" in finding.message
    assert "sovren-db audit seal --to redis" in finding.message


def test_a_checkpoint_signed_with_another_key_is_an_incident(sealing, doctor_project):
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    sealing.rpush(REDIS_LIST, Checkpoint(0, None, None, now).line(b"another key, not ours"))
    (finding,) = checkpoint_findings(run_doctor(doctor_project))
    assert "does not carry a valid signature" in finding.message
    assert run_doctor(doctor_project).exit_code == 1


def test_no_checkpoint_yet_is_one_sentence_saying_how(sealing, doctor_project):
    outcome = run_doctor(doctor_project)
    (problem,) = [f for f in outcome.findings if f.object == "the audit checkpoint"]
    assert "holds no checkpoint" in problem.message and "audit seal --to redis" in problem.message
    assert outcome.exit_code == 2 and KEY not in problem.message


def test_a_checkpoint_setting_that_is_not_text_is_refused(doctor_project):
    set_thresholds(doctor_project, **{**CALM, "audit_checkpoints": 3})
    with pytest.raises(ConfigError, match="audit_checkpoints must name where"):
        load_thresholds(doctor_project)


def test_the_summary_line_says_what_the_exit_code_says(sealing, doctor_project):
    """It said 'healthy' whatever was found."""
    outcome = run_doctor(doctor_project)
    assert outcome.exit_code == 2 and outcome.lines[0].startswith("not examined: schema (the audit checkpoint)")
    seal(load_settings(doctor_project), "redis")
    assert run_doctor(doctor_project).lines[0].startswith("healthy: ")
    sealing.rpush(REDIS_LIST, Checkpoint(0, None, None, "2020-01-01T00:00:00+00:00").line(KEY.encode()))
    outcome = run_doctor(doctor_project)
    assert outcome.exit_code == 1 and outcome.lines[0].startswith("1 problem(s) found")
