"""The postgres collection's checkpoint samples, on a real server, as the superuser and as a plain role."""

from __future__ import annotations

import time
import psycopg

from sovren_db.core.config import load_settings
from sovren_db.doctor import collect, load_thresholds
from sovren_db.doctor.model import UNEXAMINED
from tests.doctor.conftest import login_role


def samples(root) -> tuple[dict[str, float], list]:
    exam = collect("postgres", load_settings(root), load_thresholds(root))
    return {s.name: s.value for s in exam.samples}, [f for f in exam.findings if f.code == UNEXAMINED]


def test_a_checkpoint_is_counted_and_its_age_restarts(doctor_project, pg_url):
    time.sleep(1.1)
    before, problems = samples(doctor_project)
    assert problems == [] and before["postgres_checkpoint_age_seconds"] >= 1
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CHECKPOINT")
    after, _ = samples(doctor_project)
    assert after["postgres_checkpoints_requested_total"] >= before["postgres_checkpoints_requested_total"] + 1
    assert after["postgres_checkpoint_age_seconds"] < before["postgres_checkpoint_age_seconds"]


def test_a_role_without_privileges_reads_them_too(doctor_project, pg_url, monkeypatch):
    monkeypatch.setenv("POSTGRES_URL", login_role(pg_url, "checkpoint_reader", "reader-pw"))
    try:
        values, problems = samples(doctor_project)
        assert "postgres_checkpoint_age_seconds" in values and "postgres_checkpoints_timed_total" in values
        assert not [p for p in problems if p.object == "checkpoints"]
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP ROLE checkpoint_reader")
