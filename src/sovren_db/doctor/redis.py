"""Redis examined on every master: latency, slow commands, memory, evictions, cluster slots.

Commands sent per master and examination, whatever the size of the keyspace
(the bound stated in the docs and asserted by a test): ``redis_ping_samples``
PINGs timed one by one, then ``CONFIG GET``, ``INFO``, ``LATENCY LATEST`` and
``SLOWLOG GET 32``, and ``CLUSTER INFO`` on a cluster. Slow commands are
named by their command word only: their arguments (keys, values) are never read.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import redis

from ..redis.state import RedisState
from .model import Examination, percentile
from .thresholds import Thresholds

SLOWLOG_ENTRIES = 32
CLUSTER_SLOTS = 16384
SCALE_STEP = "scale the cluster or move the hot keys (runbook H.4)"

if TYPE_CHECKING:
    from ..redis.backend import RedisBackend


def commands_per_master(limits: Thresholds, cluster: bool) -> int:
    """The fixed number of commands one examination sends to each master."""
    return limits.redis_ping_samples + 4 + (1 if cluster else 0)


def examine_masters(backend: "RedisBackend", exam: Examination, limits: Thresholds,
                    declared: RedisState | None) -> None:
    round_trips: list[float] = []
    evicted = 0
    for name, client in backend.masters():
        with exam.probe(f"master {name}"):
            round_trips += ping_times(client, limits.redis_ping_samples)
            config = _config(client)
            info = client.info("memory", "stats")
            latency_events(name, client, config, exam, limits)
            slow_commands(name, client, exam, limits)
            memory(name, info, config, exam, limits, declared)
            evicted += int(info.get("evicted_keys", 0))
            if backend.cluster:
                cluster_slots(name, client, exam)
    _round_trip(round_trips, exam, limits)
    exam.sample("redis_evicted_keys_total", evicted)


def ping_times(client: redis.Redis, samples: int) -> list[float]:
    """``samples`` round trips timed by this tool, one PING each."""
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        client.ping()
        times.append(time.perf_counter() - began)
    return times


def _round_trip(times: list[float], exam: Examination, limits: Thresholds) -> None:
    p50, p99 = percentile(times, 0.5), percentile(times, 0.99)
    exam.sample("redis_round_trip_p50_seconds", p50)
    exam.sample("redis_round_trip_p99_seconds", p99)
    if p99 > limits.redis_latency_seconds:
        exam.finding("round trip", f"p99 {p99 * 1000:.2f} ms (p50 {p50 * 1000:.2f} ms) over {len(times)} PINGs, "
                                   f"above {limits.redis_latency_ms:g} ms: {SCALE_STEP}", code="redis-latency")


def _config(client: redis.Redis) -> dict[str, str]:
    raw = client.config_get("latency-monitor-threshold", "maxmemory-policy")
    return {str(k): str(v) for k, v in raw.items()}


def latency_events(name: str, client: redis.Redis, config: dict, exam: Examination, limits: Thresholds) -> None:
    """LATENCY LATEST: events of the last latency_window_seconds (findings above redis_latency_ms)."""
    if config.get("latency-monitor-threshold", "0") == "0":
        exam.finding(f"master {name}", "latency-monitor-threshold is 0, so the server records no latency events: "
                                       "CONFIG SET latency-monitor-threshold 2 (and keep it in the server's "
                                       "configuration)", code="redis-latency-monitor", severity="warning")
    now = time.time()
    worst = 0.0
    for event, stamp, latest_ms, max_ms in client.latency_latest():
        event = event.decode() if isinstance(event, bytes) else str(event)
        if now - int(stamp) > limits.latency_window_seconds:
            continue
        worst = max(worst, int(latest_ms) / 1000)  # the metric is the measure; the alert rule holds its threshold
        if int(latest_ms) <= limits.redis_latency_ms:
            continue
        exam.finding(f"master {name} latency event {event}",
                     f"{int(latest_ms)} ms {now - int(stamp):.0f} s ago (max {int(max_ms)} ms), above "
                     f"{limits.redis_latency_ms:g} ms: read 'redis-cli latency doctor', then {SCALE_STEP}; "
                     "LATENCY RESET once handled", code="redis-latency-event")
    exam.sample("redis_latency_event_seconds", worst)


def slow_commands(name: str, client: redis.Redis, exam: Examination, limits: Thresholds) -> None:
    """SLOWLOG: commands of the last latency_window_seconds slower than redis_latency_ms, by name."""
    now = time.time()
    names: dict[str, int] = {}
    for entry in client.slowlog_get(SLOWLOG_ENTRIES):
        if now - entry["start_time"] > limits.latency_window_seconds:
            continue
        if entry["duration"] / 1_000_000 > limits.redis_latency_seconds:
            command = entry["command"]
            word = (command.split(b" ", 1)[0] if isinstance(command, bytes) else command.split(" ", 1)[0])
            word = (word.decode(errors="replace") if isinstance(word, bytes) else word).upper()
            names[word] = names.get(word, 0) + 1
    exam.sample("redis_slow_commands", sum(names.values()))
    if names:
        listed = ", ".join(f"{count} {word}" for word, count in sorted(names.items(), key=lambda i: -i[1]))
        exam.finding(f"master {name} slowlog", f"{sum(names.values())} commands above {limits.redis_latency_ms:g} ms "
                                               f"in the last {limits.latency_window_seconds:g} s ({listed}): "
                                               "replace them with bounded ones (SCAN, not KEYS; paged ranges)",
                     code="redis-slowlog")


def memory(name: str, info: dict, config: dict, exam: Examination, limits: Thresholds,
           declared: RedisState | None) -> None:
    """INFO memory and stats: memory against maxmemory, evictions, and the eviction policy."""
    used, limit = int(info.get("used_memory", 0)), int(info.get("maxmemory", 0))
    exam.sample("redis_memory_used_bytes", used, node=name)
    exam.sample("redis_memory_max_bytes", limit, node=name)
    ratio = used / limit if limit else 0.0
    if limit and ratio > limits.redis_memory_ratio:
        exam.finding(f"master {name} memory", f"{used:,} of maxmemory {limit:,} bytes used ({ratio:.0%}), above "
                                              f"{limits.redis_memory_ratio:.0%}: add memory or shards (runbook H.4)",
                     code="redis-memory")
    evicted = int(info.get("evicted_keys", 0))
    if evicted:
        exam.finding(f"master {name} evictions", f"{evicted:,} keys evicted since the server started: the data set "
                                                 "does not fit; add memory or shards", code="redis-evictions")
    if declared is not None:
        _eviction_policy(name, config.get("maxmemory-policy", ""), declared, exam, ratio > limits.redis_memory_ratio)


def _eviction_policy(name: str, policy: str, declared: RedisState, exam: Examination, pressed: bool) -> None:
    """The policy against the families' TTL rules: allkeys-* evicts keys declared never to expire;
    volatile-* never evicts keys without a TTL, so memory they fill cannot be reclaimed."""
    families = [f for f in declared.families.values() if not f.foreign]
    if policy.startswith("allkeys-"):
        lasting = sorted(f.name for f in families if f.ttl.policy == "none")
        if lasting:
            exam.finding(f"master {name} maxmemory-policy", f"{policy} evicts keys of families declared without TTL "
                                                            f"({', '.join(lasting)}): set a volatile-* policy",
                         code="redis-eviction-policy")
    elif policy.startswith("volatile-"):
        lasting = sorted(f.name for f in families if f.ttl.policy != "required")
        if lasting:
            exam.finding(f"master {name} maxmemory-policy",
                         f"{policy} never evicts the keys of families declared without TTL ({', '.join(lasting)}): "
                         "under memory pressure writes fail with OOM instead; watch their size",
                         code="redis-eviction-policy", severity="error" if pressed else "warning")


def cluster_slots(name: str, client: redis.Redis, exam: Examination) -> None:
    """CLUSTER INFO: every one of the 16384 slots served by a node that answers."""
    text = client.execute_command("CLUSTER INFO")
    info = dict(line.split(":", 1) for line in _text(text).splitlines() if ":" in line)
    served = int(info.get("cluster_slots_ok", 0))
    exam.sample("redis_cluster_slots_uncovered", CLUSTER_SLOTS - served, node=name)
    if served < CLUSTER_SLOTS or info.get("cluster_state") != "ok":
        exam.finding(f"cluster seen from {name}", f"state {info.get('cluster_state', '?')}, {served} of "
                                                  f"{CLUSTER_SLOTS} slots served: replace the failed node; Sentinel "
                                                  "or the cluster promotes a replica (runbook H.2)",
                     code="redis-cluster-slots")


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, dict):  # redis-py may parse CLUSTER INFO itself
        return "\n".join(f"{k}:{v}" for k, v in value.items())
    return str(value)
