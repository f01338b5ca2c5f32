"""Benchmark: `sovren-db inspect` of the 300-table schema of bench/big_schema.py against `check` on it.

(Not bench/inspect.py: a script of that name shadows the standard library's inspect.)

Run as ``.venv/bin/python bench/adopt_inspect.py`` (``--smoke``: 20 tables, two runs).
It starts its own Postgres, applies the schema as bench/postgres_check.py does
(tables, policies, RLS, triggers, partitions; ANALYZE), then times in turns, in
the same run, ``commands.inspect`` (reading the database and writing
postgres/tables.py and schema.py into a temporary folder) and
``commands.check`` of the project on the same database. It prints the best
wall seconds of each and the ratio inspect/check. Targets: inspect under 5 s
on 300 tables, ratio <= 3.

Then Redis: its own redis-server loaded with bench/redis_audit.py's mixed
keyspace (1,000,000 keys; 20,000 with --smoke), family inference at 10%
sampling against `redis-cli --scan` of the same keyspace, best of --runs in
turns: keys/s of each and the ratio. Target: inference >= 100,000 keys/s.
The servers are stopped at the end.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from big_schema import generate, write_project  # noqa: E402
from smoke import parse_with_smoke  # noqa: E402
from redis_audit import load_keyspace, timed  # noqa: E402
from postgres_check import analyze, apply_sovren_objects, create_database, create_tables  # noqa: E402

from sovren_db import commands, services  # noqa: E402
from sovren_db.core.config import load_settings  # noqa: E402
from sovren_db.postgres.declared import load_schema  # noqa: E402


def best_of(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def run(server_url: str, tmp: Path, args: argparse.Namespace) -> bool:
    project = tmp / "project"
    write_project(project, generate(args.seed, args.tables, args.partitioned))
    url = create_database(server_url, "bench_inspect")
    schema = load_schema(project / "postgres")
    create_tables(url, schema.metadata)
    apply_sovren_objects(url, schema)
    analyze(url)
    settings = load_settings(project, environ={"POSTGRES_URL": url}, strict=False)
    out = tmp / "inspected"
    inspect_s = check_s = float("inf")
    # in turns, so that other load on the machine hits both alike; each inspect overwrites the last one's files
    for _ in range(args.runs):
        inspect_s = min(inspect_s, best_of(lambda: commands.inspect(settings, out=out, force=True), 1))
        check_s = min(check_s, best_of(lambda: commands.check(settings), 1))
    tables = (out / "postgres" / "tables.py").read_text().count("sa.Table(")
    ratio = inspect_s / check_s
    print(f"{args.tables} tables ({args.partitioned} partitioned), {tables} written; best of {args.runs}:")
    print(f"  inspect {inspect_s:.2f} s, check {check_s:.2f} s, ratio inspect/check {ratio:.2f} "
          "(targets: inspect < 5 s on 300 tables, ratio <= 3)")
    return inspect_s < 5 and ratio <= 3


def run_redis(server, args: argparse.Namespace) -> bool:
    import redis

    from sovren_db.adopt.redis_infer import KeyspaceInference, render_toml

    load_keyspace(server.port, args.redis_keys)
    client = redis.Redis.from_url(server.url)
    total = client.dbsize()
    infer_s = scan_s = float("inf")
    for _ in range(args.runs):
        result = KeyspaceInference(fraction=0.1).run([("redis", client)])
        assert result.scanned == total, f"inference saw {result.scanned} of {total} keys"
        infer_s = min(infer_s, result.elapsed)
        scan_s = min(scan_s, timed(["redis-cli", "-p", str(server.port), "--scan"]))
    families = render_toml(result).count("[families.")
    print(f"redis: {total:,} keys, {families} families inferred at 10% sampling; best of {args.runs}:")
    print(f"  inference {total / infer_s:,.0f} keys/s, redis-cli --scan {total / scan_s:,.0f} keys/s, "
          f"ratio {scan_s / infer_s:.2f} (target: inference >= 100,000 keys/s)")
    return total / infer_s >= 100_000


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=300)
    parser.add_argument("--partitioned", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--redis-keys", type=int, default=1_000_000)
    return parse_with_smoke(parser, tables=20, partitioned=3, runs=2, redis_keys=20_000)


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="sovren-bench-") as tmp:
        server = services.start_postgres(Path(tmp) / "postgres")
        try:
            ok = run(server.url, Path(tmp), args)
        finally:
            services.stop(server)
            shutil.rmtree(Path(server.data_dir).parent, ignore_errors=True)
        server = services.start_redis(Path(tmp) / "redis")
        try:
            ok = run_redis(server, args) and ok
        finally:
            services.stop(server)
    return 0 if ok or args.smoke else 1


if __name__ == "__main__":
    raise SystemExit(main())
