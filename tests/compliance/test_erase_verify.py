"""Erasure reaches the shared streams and proves it: `erase --verify` sweeps every store for what is left."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
import redis
from click.testing import CliRunner

from sovren_db.cli.main import cli
from sovren_db.compliance.sweep import SEPARATORS, Needles, _WORDS, word_hash

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

STREAMS = (b"{comms}:outbox", b"{comms}:dead")


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def entries_of(client: redis.Redis, subject: str) -> dict[bytes, int]:
    """Per stream: how many entries name ``subject`` in userId, and (key None) how many entries there are."""
    found = {}
    for stream in STREAMS:
        entries = client.xrange(stream)
        found[stream] = sum(1 for _, fields in entries if fields.get(b"userId") == subject.encode())
        found[stream + b" total"] = len(entries)
    return found


@pytest.fixture
def streamed(triad) -> tuple[str, str]:
    """A seeded subject with entries in both streams (and its email), on the seeded triad."""
    client = redis.Redis.from_url(triad.redis_url)
    dead = {fields[b"userId"].decode() for _, fields in client.xrange(b"{comms}:dead")}
    outbox = {fields[b"userId"].decode() for _, fields in client.xrange(b"{comms}:outbox")}
    client.close()
    subject = sorted(dead & outbox)[0]
    with psycopg.connect(triad.pg_url) as conn:
        email = conn.execute("SELECT email FROM users WHERE user_id = %s", (subject,)).fetchone()[0]
    return subject, email


def test_erasure_removes_the_subjects_stream_entries_and_the_sweep_proves_it(triad, streamed):
    subject, email = streamed
    client = redis.Redis.from_url(triad.redis_url)
    before = entries_of(client, subject)
    assert before[b"{comms}:outbox"] and before[b"{comms}:dead"]

    found = run("erase", "--verify", "--subject", subject, "--format", "json")
    assert found.exit_code == 1, found.output
    places = {f["object"] for f in json.loads(found.output)["findings"]}
    assert {"column users.email", "column users.user_id", "key {comms}:outbox (stream)",
            "key {comms}:dead (stream)"} <= places

    dry = json.loads(run("erase", "--dry-run", "--subject", subject, "--format", "json").output)
    counts = {s["step"]: s["count"] for s in dry["steps"]}
    assert counts["redis:comms_outbox"] == before[b"{comms}:outbox"]
    assert counts["redis:comms_dead"] == before[b"{comms}:dead"]
    assert entries_of(client, subject) == before  # the dry run only counted

    assert run("erase", "--subject", subject).exit_code == 0
    after = entries_of(client, subject)
    assert after[b"{comms}:outbox"] == after[b"{comms}:dead"] == 0
    for stream in STREAMS:  # everyone else's entries stay
        assert after[stream + b" total"] == before[stream + b" total"] - before[stream]

    clean = run("erase", "--verify", "--subject", subject)
    assert clean.exit_code == 0, clean.output
    assert "no trace of the subject" in clean.output and "retained by declaration" in clean.output
    client.close()


def test_the_sweep_finds_copies_nobody_declared_even_once_the_row_is_gone(triad, streamed):
    subject, email = streamed
    assert run("erase", "--subject", subject).exit_code == 0
    client = redis.Redis.from_url(triad.redis_url)
    client.hset("unacked", "delivery-7", json.dumps({"to": email.upper(), "body": "hello"}))  # the email, shouted
    client.sadd("_kombu.binding.reports", f"route|{subject}")
    client.set(f"celery-task-meta-{uuid.uuid4()}", f"mail sent to <{email}>", ex=600)
    with psycopg.connect(triad.pg_url, autocommit=True) as conn:
        other = conn.execute("SELECT operation_id FROM operations WHERE user_id IS NOT NULL LIMIT 1").fetchone()[0]
        conn.execute("UPDATE operations SET parameters = jsonb_build_object('cc', %s::text) WHERE operation_id = %s",
                     (email, other))
    client.close()

    result = run("erase", "--verify", "--subject", subject, "--format", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert {f["object"] for f in report["findings"]} == {
        "key unacked (hash)", "key _kombu.binding.reports (set)", "column operations.parameters",
        *(f["object"] for f in report["findings"] if f["object"].startswith("key celery-task-meta-"))}
    assert len(report["findings"]) == 4 and report["identifying_hashes"] == 2
    assert subject not in result.output and email not in result.output


def test_a_stream_larger_than_a_page_is_erased_entirely(triad, streamed):
    """XRANGE pages of 1000 with XDEL in between: nothing is skipped, nothing else goes."""
    subject, _ = streamed
    client = redis.Redis.from_url(triad.redis_url)
    other = str(uuid.uuid4())
    pipe = client.pipeline(transaction=False)
    for i in range(2500):
        pipe.xadd(b"{comms}:dead", {"userId": subject if i % 3 == 0 else other, "reason": "timeout"})
    pipe.execute()
    before = entries_of(client, subject)
    assert run("erase", "--subject", subject).exit_code == 0
    after = entries_of(client, subject)
    assert after[b"{comms}:dead"] == 0
    assert after[b"{comms}:dead total"] == before[b"{comms}:dead total"] - before[b"{comms}:dead"]
    client.close()


def test_words_are_split_the_same_in_python_and_in_postgres(pg_url):
    text = 'Mail "Bob" <Bob.Smith+x@example.com>; user=u1f2e3 [ops]{a:b}|c, ok'
    with psycopg.connect(pg_url) as conn:
        words = [w for (w,) in conn.execute("SELECT regexp_split_to_table(lower(%s), %s)", (text, SEPARATORS))]
    assert [w for w in words if w] == [w for w in _WORDS.split(text.lower()) if w]
    assert "bob.smith+x@example.com" in words


def test_needles_match_plain_values_and_hashed_words():
    salt = b"salt"
    needles = Needles(["5eed0000-0000-8000-8000-000000000001"], {word_hash(salt, "ann@x.io")}, salt)
    assert needles.found_in('{"userId": "5EED0000-0000-8000-8000-000000000001"}')
    assert needles.found_in("reply to <Ann@X.io> today")
    assert not needles.found_in("reply to <hannah@x.io> today")


@pytest.mark.parametrize("args, says", [
    (("--subject", "not-a-uuid"), "--subject must be a UUID"),
    (("--subject", "5eed0000-0000-8000-8000-000000000001", "--dry-run"), "--verify erases nothing already"),
])
def test_bad_input_to_the_sweep_is_one_sentence_and_exit_2(triad, args, says):
    result = run("erase", "--verify", *args)
    assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output


def test_the_sweep_reads_every_mongo_document(project, pg_url, mongo_url, monkeypatch):
    """On a real mongod (skipped without one): a copy of the email in an undeclared field is found."""
    import pymongo

    from sovren_db import commands
    from sovren_db.core.config import load_settings

    from .conftest import seed_ci

    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,mongo")
    monkeypatch.setenv("MONGO_URL", mongo_url)
    settings = load_settings(project)
    commands.migrate(settings)
    seed_ci(settings)
    client = pymongo.MongoClient(mongo_url)
    db = client[settings.mongo_database]
    subject = db.communications.find_one({}, {"userId": 1})["userId"]
    with psycopg.connect(pg_url) as conn:
        email = conn.execute("SELECT email FROM users WHERE user_id = %s", (subject,)).fetchone()[0]
    assert run("erase", "--subject", subject).exit_code == 0
    assert run("erase", "--verify", "--subject", subject).exit_code == 0
    db.scratch_notes.insert_one({"note": {"forwarded": [f"Fwd: {email.upper()}"]}})
    result = run("erase", "--verify", "--subject", subject, "--format", "json")
    assert result.exit_code == 1
    assert [f["object"] for f in json.loads(result.output)["findings"]] == ["collection scratch_notes"]
    client.close()
