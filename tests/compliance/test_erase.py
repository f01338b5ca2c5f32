"""Erasure across the seeded triad: nothing of the subject left, everyone else intact, resumable."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
import redis
from click.testing import CliRunner

from sovren_db.cli.main import cli
from sovren_db.compliance.erase import erase
from sovren_db.compliance.ledger import ensure_tables
from sovren_db.compliance.audit_verify import verify
from sovren_db.core.config import load_settings
from sovren_db.core.errors import Refused

from .support import (
    erase_events, last_event, login_role, others_fingerprint, redis_fingerprint, redis_keys, subject_counts,
    subject_with_everything,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def subject(triad) -> str:
    chosen = subject_with_everything(triad.pg_url, triad.redis_url)
    client = redis.Redis.from_url(triad.redis_url)
    client.set(f"ratelimit:user:{chosen}:1700000000", 3, ex=600)   # not seeded: one for the subject...
    client.set(f"ratelimit:user:{uuid.uuid4()}:1700000000", 5, ex=600)  # ...and one of someone else
    client.close()
    return chosen


def state(triad, subject: str, audit_up_to: list[int]) -> tuple:
    return (others_fingerprint(triad.pg_url, subject, audit_up_to), redis_fingerprint(triad.redis_url, subject))


def subject_keys(redis_url: str, subject: str) -> list[bytes]:
    return [k for k in redis_keys(redis_url) if subject.encode() in k]


def test_dry_run_lists_per_store_with_counts_and_changes_nothing(triad, subject):
    before_counts = subject_counts(triad.pg_url, subject)
    before = state(triad, subject, last_event(triad.pg_url))
    result = run("erase", "--subject", subject, "--dry-run", "--format", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    steps = {s["step"]: s for s in report["steps"]}
    for table in ("users", "subscriptions", "transactions", "payments", "operations"):
        assert steps[f"postgres:{table}"]["count"] == before_counts[table]
    assert steps["postgres:operations"]["action"] == "anonymise"
    assert steps["redis:session"]["count"] == 1 and steps["redis:session_devices"]["count"] == 1
    assert steps["redis:ratelimit_user"]["count"] == 1
    assert report["retained"][0]["location"] == "audit_log" and report["retained"][0]["count"] > 0
    assert subject_counts(triad.pg_url, subject) == before_counts
    assert state(triad, subject, last_event(triad.pg_url)) == before
    assert len(subject_keys(triad.redis_url, subject)) == 3
    assert subject not in result.output  # the report names the subject by its salted hash only


def test_erasure_leaves_nothing_of_the_subject_and_everything_else(triad, subject):
    operations = subject_counts(triad.pg_url, subject)["operations"]
    audit_before = last_event(triad.pg_url)
    before = state(triad, subject, audit_before)
    result = run("erase", "--subject", subject)
    assert result.exit_code == 0, result.output
    assert "erased" in result.output and subject not in result.output
    assert set(subject_counts(triad.pg_url, subject).values()) == {0}
    assert subject_keys(triad.redis_url, subject) == []
    assert state(triad, subject, audit_before) == before  # other subjects and the old audit trail untouched
    with psycopg.connect(triad.pg_url) as conn:
        kept = conn.execute("SELECT count(*) FROM operations WHERE user_id IS NULL AND parameters IS NULL "
                            "AND result IS NULL").fetchone()[0]
        ledger = conn.execute("SELECT string_agg(subject_hash || step || counts::text, '') "
                              "FROM sovren_db.erasures").fetchone()[0]
    assert kept == operations  # anonymised, not deleted: statistics remain
    assert subject not in ledger
    events = erase_events(triad.pg_url)
    assert len(events) == 1
    event_id, user_id, payload, query = events[0]
    assert user_id is None and subject not in payload and subject not in (query or "")
    assert json.loads(payload)["details"]["erased"]["postgres:users"] == 1
    assert verify(triad.settings).exit_code == 0  # the chain is intact after the erasure


def test_erasure_survives_an_interruption_and_a_rerun_finishes_it(triad, subject):
    audit_before = last_event(triad.pg_url)
    before = state(triad, subject, audit_before)
    done = []

    def interrupt_after_the_first_table(step: str) -> None:
        done.append(step)
        if step == "postgres:operations":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        erase(triad.settings, subject, after_step=interrupt_after_the_first_table)
    assert all(step.startswith("redis:") for step in done[:-1]) and len(done) == 9
    left = subject_counts(triad.pg_url, subject)
    assert subject_keys(triad.redis_url, subject) == [] and left["operations"] == 0
    assert left["users"] == 1 and left["payments"] > 0  # the rest is still there, still consistent
    assert erase_events(triad.pg_url) == []

    rerun = erase(triad.settings, subject, after_step=done.append)
    assert rerun.exit_code == 0
    assert done[9:] == ["postgres:payments", "postgres:transactions", "postgres:subscriptions", "postgres:users"]
    states = {s["step"]: s["state"] for s in rerun.data["steps"]}
    assert states["postgres:operations"] == "erased earlier" and states["postgres:users"] == "erased"
    assert set(subject_counts(triad.pg_url, subject).values()) == {0}
    assert state(triad, subject, audit_before) == before
    assert len(erase_events(triad.pg_url)) == 1


def test_erasing_again_changes_nothing_and_records_no_second_event(triad, subject):
    assert erase(triad.settings, subject).exit_code == 0
    again = erase(triad.settings, subject)
    assert again.exit_code == 0 and again.data["status"] == "already erased"
    assert len(erase_events(triad.pg_url)) == 1
    dry = run("erase", "--subject", subject, "--dry-run")
    assert dry.exit_code == 0 and "already erased" in dry.output


def test_erasure_acts_as_the_bypassrls_role_not_by_disabling_row_security(triad, subject, pg_url):
    with login_role(pg_url, "compliance_officer", member_of="sovren_migrator") as officer:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            ensure_tables(conn)  # created once by the owner; the officer only writes to them
            conn.execute("GRANT USAGE ON SCHEMA sovren_db TO compliance_officer")
            conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA sovren_db TO compliance_officer")
        settings = load_settings(triad.root, environ={"POSTGRES_URL": officer, "REDIS_URL": triad.redis_url,
                                                      "SOVREN_DB_STORES": "postgres,redis"})
        assert erase(settings, subject).exit_code == 0
    assert set(subject_counts(pg_url, subject).values()) == {0}
    with psycopg.connect(pg_url) as conn:
        forced = conn.execute("SELECT bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class "
                              "WHERE relname IN ('users', 'payments', 'operations', 'transactions')").fetchone()[0]
    assert forced is True


def test_a_login_that_may_not_act_as_the_role_is_refused(triad, subject, pg_url):
    with login_role(pg_url, "intern") as intern:
        settings = load_settings(triad.root, environ={"POSTGRES_URL": intern, "SOVREN_DB_STORES": "postgres"})
        with pytest.raises(Refused, match="may not act as 'sovren_migrator'"):
            erase(settings, subject)
    assert subject_counts(pg_url, subject)["users"] == 1


@pytest.mark.parametrize("args, says", [
    (("--subject", "not-a-uuid"), "must be a UUID"),
    (("--subject", "5eed0000-0000-8000-8000-000000000000", "--format", "yaml"), "Invalid value for '--format'"),
])
def test_bad_input_is_one_sentence_and_exit_2(triad, args, says):
    result = run("erase", *args)
    assert result.exit_code == 2
    assert says in result.output and "Traceback" not in result.output


def test_protected_environment_needs_allow_protected(triad, subject, monkeypatch):
    monkeypatch.setenv("SOVREN_ENV", "production")
    refused = run("erase", "--subject", subject)
    assert refused.exit_code == 2 and "protected" in refused.output
    assert subject_counts(triad.pg_url, subject)["users"] == 1
    assert run("erase", "--subject", subject, "--allow-protected").exit_code == 0
    assert subject_counts(triad.pg_url, subject)["users"] == 0


def test_a_declared_store_that_is_not_configured_refuses_the_erasure(migrated, monkeypatch):
    subject = subject_with_everything(migrated.pg_url)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,mongo")  # Mongo declared, MONGO_URL unset
    refused = run("erase", "--subject", subject)
    assert refused.exit_code == 2 and "mongo holds personal data" in refused.output
    assert subject_counts(migrated.pg_url, subject)["users"] == 1
    dry = run("erase", "--subject", subject, "--dry-run")
    assert dry.exit_code == 1 and "mongo: not configured" in dry.output


@pytest.mark.mongo
def test_erasure_reaches_mongo_documents(project, pg_url, mongo_url, monkeypatch):
    import pymongo

    from sovren_db import commands

    from .conftest import seed_ci

    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,mongo")
    monkeypatch.setenv("MONGO_URL", mongo_url)
    settings = load_settings(project)
    commands.migrate(settings)
    seed_ci(settings)
    client = pymongo.MongoClient(mongo_url)
    db = client[settings.mongo_database]
    subject = next(d["userId"] for d in db.executives.find({}, {"userId": 1}).sort("userId", 1)
                   if db.communications.count_documents({"userId": d["userId"]}))
    names = ("executives", "communications", "scenario_simulations", "analytics_payloads")
    others = {n: sorted(str(d["_id"]) for d in db[n].find({"userId": {"$ne": subject}}, {"_id": 1})) for n in names}
    assert erase(load_settings(project), subject).exit_code == 0
    assert all(db[n].count_documents({"userId": subject}) == 0 for n in names)
    assert {n: sorted(str(d["_id"]) for d in db[n].find({}, {"_id": 1})) for n in names} == others
    client.close()
