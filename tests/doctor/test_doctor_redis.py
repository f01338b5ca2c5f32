"""doctor on a real Redis: latency events, slow commands, eviction policy, keys outside the conventions,
and the bounded number of commands one examination sends."""

from __future__ import annotations

import redis

from sovren_db.core.config import load_settings
from sovren_db.doctor import collect, load_thresholds
from sovren_db.doctor.redis import commands_per_master
from tests.doctor.conftest import CALM, run_doctor, set_thresholds


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


def test_a_latency_event_and_a_slow_command_are_named_without_arguments(doctor_project, redis_url):
    set_thresholds(doctor_project, **{**CALM, "redis_latency_ms": 2})
    client = _client(redis_url)
    client.config_set("latency-monitor-threshold", 1)
    try:
        client.execute_command("DEBUG", "SLEEP", "0.02")
        outcome = run_doctor(doctor_project)
    finally:
        client.config_set("latency-monitor-threshold", 0)
        client.execute_command("LATENCY", "RESET")
    by_code = {f.code: f for f in outcome.findings}
    event = by_code["redis-latency-event"]
    assert event.object.endswith("latency event command") and "latency doctor" in event.message
    assert "DEBUG" in by_code["redis-slowlog"].message and "0.02" not in by_code["redis-slowlog"].message
    assert outcome.exit_code == 1


def test_latency_monitor_off_is_a_warning_that_does_not_fail(doctor_project):
    outcome = run_doctor(doctor_project)
    warning = [f for f in outcome.findings if f.code == "redis-latency-monitor"]
    assert warning and warning[0].severity == "warning" and outcome.exit_code == 0


def test_an_allkeys_policy_contradicts_families_declared_without_ttl(doctor_project, redis_url):
    client = _client(redis_url)
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        outcome = run_doctor(doctor_project)
    finally:
        client.config_set("maxmemory-policy", "volatile-lru")
    policy = [f for f in outcome.findings if f.code == "redis-eviction-policy"]
    assert policy and policy[0].severity == "error" and "allkeys-lru evicts" in policy[0].message
    assert outcome.exit_code == 1


def test_unknown_keys_are_counted_by_prefix_never_named(doctor_project, redis_url):
    client = _client(redis_url)
    client.mset({f"scratch:alice-{i}": "x" for i in range(30)})
    outcome = run_doctor(doctor_project)
    unknown = [f for f in outcome.findings if f.code == "redis-unknown-keys"]
    assert unknown and "30 of" in unknown[0].message and "scratch" in unknown[0].message
    assert "alice" not in unknown[0].message and outcome.exit_code == 1


def _calls(client: redis.Redis) -> dict[str, int]:
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def test_one_examination_sends_a_bounded_number_of_commands_whatever_the_keyspace(doctor_project, redis_url):
    client = _client(redis_url)
    settings = load_settings(doctor_project)
    limits = load_thresholds(doctor_project)
    sent = []
    for keys in (10, 20_000):
        client.flushdb()
        pipe = client.pipeline(transaction=False)
        for i in range(keys):
            pipe.set(f"scratch:{i}", "x")
        pipe.execute()
        client.config_resetstat()
        collect("redis", settings, limits)
        calls = _calls(client)
        calls.pop("config|resetstat", None)
        sent.append(calls)
    # redis-py connecting: HELLO or CLIENT SETINFO, then the backend's PING, INFO cluster and INFO
    # (the master's run_id and replicas, redis/replication.py)
    handshake = {"hello": 1, "client|setinfo": 2, "ping": 1, "info": 2}
    for calls in sent:
        examined = sum(calls.values()) - sum(handshake.get(name, 0) for name in calls)
        assert examined == commands_per_master(limits, cluster=False)
    assert sent[0] == sent[1]


def test_the_keyspace_sample_is_bounded_by_key_sample(doctor_project, redis_url):
    set_thresholds(doctor_project, **{**CALM, "key_sample": 500})
    client = _client(redis_url)
    pipe = client.pipeline(transaction=False)
    for i in range(20_000):
        pipe.set(f"scratch:{i}", "x")
    pipe.execute()
    client.config_resetstat()
    exam = collect("schema", load_settings(doctor_project), load_thresholds(doctor_project))
    scans = _calls(client).get("scan", 0)
    sampled = [s.value for s in exam.samples if s.name == "redis_keys_sampled"]
    # it stops within the SCAN batch (COUNT 300) that crosses key_sample, out of 20,000 keys
    assert sampled and 500 <= sampled[0] < 500 + 300 and scans <= 500 // 100
