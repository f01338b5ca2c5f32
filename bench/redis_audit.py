"""Benchmark: the Redis keyspace audit against `redis-cli --scan` and `redis-cli --bigkeys`.

Starts its own redis-server on a free loopback port, loads a keyspace of
mixed Sovren families (1,000,000 keys by default) through `redis-cli --pipe`,
then measures in the same run, best of --repeat:

- the audit (type and TTL of every key, sizes where declared, MEMORY USAGE on a sample),
- `redis-cli --scan` alone,
- `redis-cli --bigkeys`,

prints keys/s of each and the ratios (targets: audit >= 0.7 x scan, >= 2 x bigkeys),
and how long the server was held: the slowest commands in SLOWLOG and the PING
round trips seen by a separate process, idle, during `redis-cli --scan` and
during the audit. Stops its server.

    .venv/bin/python bench/redis_audit.py [--keys 1000000] [--repeat 3] [--count 300] [--smoke]
"""

from __future__ import annotations

import argparse
import random
import select
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from smoke import parse_with_smoke  # noqa: E402

from sovren_db import services  # noqa: E402
from sovren_db.redis.audit import AuditOptions  # noqa: E402
from sovren_db.redis.backend import RedisBackend  # noqa: E402
from sovren_db.redis.checks import run_audit  # noqa: E402
from sovren_db.redis.declared import load_declarations  # noqa: E402
from sovren_db.redis.scan import encode  # noqa: E402
from sovren_db.core.config import load_settings  # noqa: E402

TIMEOUT = 600  # seconds, for any one measured command


def key_commands(i: int, rng: random.Random) -> bytes:
    """The commands that create key number ``i`` of the mixed keyspace."""
    kind = i % 20
    uid = b"%032x" % i
    if kind < 6:
        return encode(b"SET", b"session:" + uid, b"tok-%d" % i, b"EX", b"%d" % rng.randint(600, 86400))
    if kind < 8:
        return encode(b"SET", b"cache:analytics:" + uid, b"r" * rng.randint(50, 400), b"EX", b"1800")
    if kind == 8:
        return encode(b"SADD", b"session:devices:" + uid, b"phone", b"laptop")
    if kind < 11:
        return encode(b"SET", b"ratelimit:user:%d:%d" % (i, 1700000000 + i % 60), b"%d" % (i % 50), b"EX", b"3000")
    if kind == 11:
        return encode(b"HSET", b"cache:executive:" + uid, b"role", b"CSO", b"name", b"Ada", b"active", b"1") + \
            encode(b"EXPIRE", b"cache:executive:" + uid, b"1800")
    if kind < 14:
        return encode(b"HSET", b"comms:status:" + uid, b"status", b"sent") + \
            encode(b"EXPIRE", b"comms:status:" + uid, b"172800")
    if kind < 17:
        return encode(b"SET", b"celery-task-meta-" + uid, b'{"status": "SUCCESS"}', b"EX", b"86400")
    if kind == 17:
        return encode(b"SET", b"session:" + uid + b"x", b"tok")  # a session without TTL: a finding
    return encode(b"SET", b"legacy:report:%d" % i, b"?")          # unknown keys


def load_keyspace(port: int, keys: int) -> float:
    rng = random.Random(7)
    payload = b"".join(key_commands(i, rng) for i in range(keys))
    started = time.perf_counter()
    done = subprocess.run(["redis-cli", "-p", str(port), "--pipe"], input=payload, capture_output=True,
                          timeout=TIMEOUT)
    if done.returncode != 0:
        raise SystemExit(f"redis-cli --pipe failed: {done.stdout.decode()[-300:]}")
    return time.perf_counter() - started


def timed(argv: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=TIMEOUT, check=True)
    return time.perf_counter() - started


def start_probe(port: int) -> subprocess.Popen:
    """A separate process that PINGs every millisecond until its stdin closes."""
    return subprocess.Popen([sys.executable, __file__, "--probe", str(port)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def probe(port: int) -> None:
    sock = socket.create_connection(("127.0.0.1", port))
    print("ready", flush=True)
    worst, samples = 0.0, []
    while not select.select([sys.stdin], [], [], 0)[0]:  # readable: closed by the parent
        started = time.perf_counter()
        sock.sendall(b"PING\r\n")
        sock.recv(64)
        elapsed = time.perf_counter() - started
        samples.append(elapsed)
        worst = max(worst, elapsed)
        time.sleep(0.001)
    samples.sort()
    p99 = samples[int(len(samples) * 0.99)] if samples else 0.0
    print(f"{worst * 1000:.2f} {p99 * 1000:.2f} {len(samples)}")


def measure_audit(settings, declared, options: AuditOptions) -> tuple[float, int]:
    backend = RedisBackend(settings)
    backend.connect()
    try:
        report = run_audit(backend, declared, options)
    finally:
        backend.close()
    return report.elapsed, report.scanned


def watched(port: int, run) -> str:
    """Run ``run()`` while SLOWLOG keeps commands over 0.5 ms and another process PINGs every ms."""
    client = redis.Redis(port=port)
    client.config_set("slowlog-log-slower-than", 500)
    client.config_set("slowlog-max-len", 10000)
    client.slowlog_reset()
    prober = start_probe(port)
    prober.stdout.readline()  # connected
    try:
        run()
    finally:
        prober.stdin.close()
        worst_ping, p99_ping, pings = prober.stdout.read().split()
        prober.wait(timeout=30)
    slow = client.slowlog_get(10000)
    client.close()
    by_command = Counter(entry["command"].split()[0].decode() for entry in slow)
    slowest = max((entry["duration"] for entry in slow), default=0)
    return (f"PING worst {worst_ping} ms, p99 {p99_ping} ms ({pings} pings); slowest command "
            f"{slowest / 1000:.2f} ms; over 0.5 ms: {dict(by_command) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs of each")
    parser.add_argument("--count", type=int, default=AuditOptions().count, help="the audit's SCAN COUNT")
    parser.add_argument("--probe", type=int, help=argparse.SUPPRESS)
    args = parse_with_smoke(parser, keys=5_000, repeat=1)
    if args.probe:
        return probe(args.probe)
    with tempfile.TemporaryDirectory(prefix="sovren-bench-") as folder:
        server = services.start_redis(Path(folder) / "redis")
        try:
            run_bench(server, args.keys, args.repeat, AuditOptions(count=args.count))
        finally:
            services.stop(server)


def run_bench(server, keys: int, repeat: int, options: AuditOptions) -> None:
    port = server.port
    settings = load_settings(ROOT, environ={"REDIS_URL": server.url})
    declared = load_declarations(ROOT / "redis")
    print(f"loading {keys:,} keys of mixed families ...", flush=True)
    seconds = load_keyspace(port, keys)
    total = redis.Redis(port=port).dbsize()
    print(f"loaded {total:,} keys in {seconds:.1f} s")

    audit_runs, scan_runs, bigkeys_runs = [], [], []
    for _ in range(repeat):  # interleaved, best of each: the machine's other load varies
        elapsed, scanned = measure_audit(settings, declared, options)
        assert scanned == total, f"the audit saw {scanned} of {total} keys"
        audit_runs.append(elapsed)
        scan_runs.append(timed(["redis-cli", "-p", str(port), "--scan"]))
        bigkeys_runs.append(timed(["redis-cli", "-p", str(port), "--bigkeys"]))
    held = {
        "idle (2 s)": watched(port, lambda: time.sleep(2)),
        "redis-cli --scan": watched(port, lambda: timed(["redis-cli", "-p", str(port), "--scan"])),
        "audit": watched(port, lambda: measure_audit(settings, declared, options)),
    }
    report(*(total / min(runs) for runs in (audit_runs, scan_runs, bigkeys_runs)), held)


def report(audit: float, scan: float, bigkeys: float, held: dict[str, str]) -> None:
    print(f"audit               {audit:>10,.0f} keys/s")
    print(f"redis-cli --scan    {scan:>10,.0f} keys/s")
    print(f"redis-cli --bigkeys {bigkeys:>10,.0f} keys/s")
    print(f"audit / scan    = {audit / scan:.2f}  (target >= 0.7)")
    print(f"audit / bigkeys = {audit / bigkeys:.2f}  (target >= 2)")
    print("how long the server was held (a busy 2-core machine adds its own scheduling delays):")
    for what, stats in held.items():
        print(f"  {what:<18} {stats}")


if __name__ == "__main__":
    main()
