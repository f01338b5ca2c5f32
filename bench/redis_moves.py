"""Benchmark: a Redis family move on a live keyspace against SCAN + pipelined RENAME by hand.

Starts its own redis-server on a free loopback port, loads 1,000,000 string
keys ``sess:<id>`` through `redis-cli --pipe` and a small ``probe:<n>`` family,
and runs a probe in a separate process: GET and SET of probe keys at 2,000
ops/s, each timed. In the same run it measures:

- idle: the probe alone, as long as the hand move took;
- hand: SCAN MATCH sess:* COUNT 500 + one pipeline of RENAME per batch (sess -> mid);
- sovren-db: ``redis_rename_family`` (mid -> session:v2), the same keys, batch 500, no rate limit;

and prints each one's duration, the probe's p99 and max, and the ratios
(targets: p99 no worse than the hand move's, duration at most 1.3 x the hand move's).

    .venv/bin/python bench/redis_moves.py [--keys 1000000] [--rate 2000] [--smoke]
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sovren_db import services  # noqa: E402
from sovren_db.core.config import load_settings  # noqa: E402
from sovren_db.redis import ops  # noqa: E402
from sovren_db.redis.backend import RedisBackend  # noqa: E402
from sovren_db.redis.scan import encode  # noqa: E402
from sovren_db.redis.state import KeyFamily  # noqa: E402

PROBE_KEYS = 1000
MID = KeyFamily("mid", "mid:{user_id}", "string").to_json()
NEW = KeyFamily("session", "session:v2:{user_id}", "string").to_json()


def load_keyspace(port: int, keys: int) -> None:
    payload = b"".join(encode(b"SET", b"sess:%032x" % i, b"tok-%d" % i) for i in range(keys))
    payload += b"".join(encode(b"SET", b"probe:%d" % i, b"p") for i in range(PROBE_KEYS))
    done = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=payload, capture_output=True)
    if done.returncode != 0:
        raise SystemExit(f"redis-cli --pipe failed: {done.stdout.decode()[-300:]}")


def probe(port: int, rate: float) -> None:
    """GET or SET a probe key ``rate`` times a second until stdin closes; prints p99 and max in ms."""
    import select

    client, rng, samples = redis.Redis(port=port), random.Random(3), []
    print("ready", flush=True)
    start, n = time.perf_counter(), 0
    while not select.select([sys.stdin], [], [], 0)[0]:
        key = b"probe:%d" % rng.randrange(PROBE_KEYS)
        began = time.perf_counter()
        client.set(key, b"p") if n % 2 else client.get(key)
        samples.append(time.perf_counter() - began)
        n += 1
        ahead = start + n / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    samples.sort()
    print(f"{samples[int(len(samples) * 0.99)] * 1000:.3f} {samples[-1] * 1000:.3f} {len(samples)}")


def probed(port: int, rate: float, run) -> tuple[float, float, float, int]:
    """(seconds of ``run()``, probe p99 ms, probe max ms, probe ops) with the probe running."""
    prober = subprocess.Popen([sys.executable, __file__, "--probe", str(port), "--rate", str(rate)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    prober.stdout.readline()
    started = time.perf_counter()
    try:
        run()
    finally:
        seconds = time.perf_counter() - started
        prober.stdin.close()
        p99, worst, count = prober.stdout.read().split()
        prober.wait(timeout=30)
    return seconds, float(p99), float(worst), int(count)


def by_hand(port: int, pattern: bytes, command) -> None:
    """SCAN MATCH ``pattern`` COUNT 500 and one pipeline of ``command(pipe, key)`` a batch: the hand reference."""
    client = redis.Redis(port=port)
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, match=pattern, count=500)
        pipe = client.pipeline(transaction=False)
        for key in keys:
            command(pipe, key)
        pipe.execute()
        if cursor == 0:
            break


def move_with_sovren(settings) -> None:
    backend = RedisBackend(settings)
    backend.connect()
    try:
        backend.execute(ops.DeclareKeyFamilyOp(MID))
        backend.execute(ops.RenameKeyFamilyOp(MID, NEW))
    finally:
        backend.close()


def backfill_with_sovren(settings) -> None:
    backend = RedisBackend(settings)
    backend.connect()
    try:
        backend.execute(ops.BackfillTtlOp(NEW, 3600))
    finally:
        backend.close()


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def run_bench(server, keys: int, rate: float) -> int:
    port, client = server.port, redis.Redis(port=server.port)
    with tempfile.TemporaryDirectory(prefix="sovren-bench-project-") as root:
        (Path(root) / "pyproject.toml").write_text('[project]\nname = "bench"\n')
        settings = load_settings(Path(root), environ={"REDIS_URL": server.url})
        print(f"loading {keys:,} keys ...", flush=True)
        load_keyspace(port, keys)
        to_mid = lambda pipe, key: pipe.rename(key, b"mid:" + key[5:])  # noqa: E731
        hand = probed(port, rate, lambda: by_hand(port, b"sess:*", to_mid))
        assert client.exists(b"mid:%032x" % 0) and not client.exists(b"sess:%032x" % 0)
        idle = probed(port, rate, lambda: time.sleep(hand[0]))
        ours = probed(port, rate, lambda: move_with_sovren(settings))
        assert client.exists(b"session:v2:%032x" % (keys - 1)) and not list(client.scan_iter("mid:*", count=1000))
        expire_nx = lambda pipe, key: pipe.expire(key, 7200, nx=True)  # noqa: E731
        hand_backfill = timed(lambda: by_hand(port, b"session:v2:*", expire_nx))
        by_hand(port, b"session:v2:*", lambda pipe, key: pipe.persist(key))  # the same work for the next run
        backfill = timed(lambda: backfill_with_sovren(settings))
        assert client.ttl(b"session:v2:%032x" % 0) > 0
    for name, (seconds, p99, worst, count) in (("idle", idle), ("hand SCAN+RENAME", hand), ("sovren-db", ours)):
        print(f"{name:18} {seconds:7.2f} s   probe p99 {p99:6.3f} ms  max {worst:7.3f} ms  ({count} ops)")
    print(f"TTL backfill: by hand (SCAN + pipelined EXPIRE NX) {hand_backfill:.2f} s, sovren-db {backfill:.2f} s "
          f"({backfill / hand_backfill:.2f}x; it also cuts TTLs above the family's maximum)")
    duration, p99_ratio = ours[0] / hand[0], ours[1] / hand[1]
    print(f"sovren-db / hand: duration {duration:.2f}x (target <= 1.3), probe p99 {p99_ratio:.2f}x "
          f"(target <= 1.0, within noise), max {ours[2] / hand[2]:.2f}x; p99 vs idle {ours[1] / idle[1]:.2f}x")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--rate", type=float, default=2000, help="probe operations a second")
    parser.add_argument("--smoke", action="store_true", help="a tiny run (20,000 keys) that only checks it works")
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(args.probe, args.rate)
        return 0
    with tempfile.TemporaryDirectory(prefix="sovren-bench-") as folder:
        server = services.start_redis(Path(folder) / "redis")
        try:
            return run_bench(server, 20_000 if args.smoke else args.keys, args.rate)
        finally:
            services.stop(server)


if __name__ == "__main__":
    sys.exit(main())
