"""Benchmark: `sovren-db check` on a large schema against plain `alembic check` on its bare tables.

Run as ``.venv/bin/python bench/postgres_check.py``. It starts its own
Postgres (sovren_db.services), generates 300 tables of 8-15 columns
(bench/big_schema.py, seeded) as a sovren-db project with a tenant policy,
row-level security and an audit trigger on every table and 40 tables
range-partitioned into 30 partitions each, applies it, and then times, in the
same run:

- sovren:  ``sovren_db.commands.check`` (tables, columns, indexes, constraints,
  policies, triggers, functions, RLS, partitions);
- plain:   ``alembic check`` with a plain env.py (target_metadata only, Alembic's
  default comparators) on a second database holding the same 300 tables
  without policies, triggers and partitions.

Each is timed once right after the schema is applied (the catalog has no
statistics yet, as in CI after a migrate) and then, after ANALYZE, ``--runs``
times in turns after a warm-up. It prints the best and median wall seconds,
the best CPU seconds of this process (the figure other load on a shared machine
disturbs least), the queries each check issued and the ratio sovren/plain
(target: 1.0 or less). Last, in a process of its own, it times alembic-utils'
comparison of 20 and 40 functions + triggers (bench/alembic_utils_cost.py), the
way sovren-db does not compare them. The server is stopped at the end.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import io
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from alembic import command as alembic_command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import NullPool

sys.path.insert(0, str(Path(__file__).resolve().parent))

from big_schema import generate, write_project  # noqa: E402
from smoke import parse_with_smoke  # noqa: E402

from sovren_db import commands, services  # noqa: E402
from sovren_db.core.config import load_settings  # noqa: E402
from sovren_db.core.urls import with_database  # noqa: E402
from sovren_db.env import sqlalchemy_url  # noqa: E402
from sovren_db.postgres.declared import load_schema  # noqa: E402
from sovren_db.postgres.diff import diff_schema  # noqa: E402
from sovren_db.postgres.live import read_catalog  # noqa: E402

HERE = Path(__file__).resolve().parent


class QueryCounter:
    """Counts the statements every SQLAlchemy engine in this process sends."""

    def __init__(self) -> None:
        self.count = 0
        event.listen(Engine, "before_cursor_execute", self._seen)

    def _seen(self, *args, **kwargs) -> None:
        self.count += 1


def create_database(server_url: str, name: str) -> str:
    with psycopg.connect(with_database(server_url, "postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


def create_tables(url: str, metadata) -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    with engine.begin() as conn:
        metadata.create_all(conn)
    engine.dispose()


def apply_sovren_objects(url: str, schema) -> int:
    """Create what sovren-db's diff says is missing (policies, triggers, partitions...); returns ops applied."""
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    with engine.connect() as conn:
        ops = diff_schema(schema, read_catalog(conn, schema.declared_roles))
    engine.dispose()
    with psycopg.connect(url, autocommit=True) as conn:
        for op in ops:
            for statement in op.statements():
                conn.execute(statement)
    return len(ops)


def analyze(url: str) -> None:
    """Statistics for the freshly filled catalogs, as autovacuum would soon gather on any server."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ANALYZE")


def partition_counts(url: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT count(i.inhrelid) FROM pg_class c LEFT JOIN pg_inherits i ON i.inhparent = c.oid "
            "WHERE c.relkind = 'p' GROUP BY c.oid")]


def plain_project(root: Path, url: str, tables_file: Path) -> Config:
    migrations = root / "migrations"
    (migrations / "versions").mkdir(parents=True)
    shutil.copy2(HERE / "plain_env.py", migrations / "env.py")
    shutil.copy2(HERE.parent / "migrations" / "script.py.mako", migrations / "script.py.mako")
    config = Config(stdout=io.StringIO())
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(url))
    config.set_main_option("tables_file", str(tables_file))
    return config


def load_plain_metadata(tables_file: Path):
    spec = importlib.util.spec_from_file_location("bench_plain_tables", tables_file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules["bench_plain_tables"] = module  # plain_env.py reuses it, as sovren-db caches its schema
    return module.metadata


def timed(fn, counter: QueryCounter) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds of this process (what other load on the machine disturbs least), queries."""
    gc.collect()  # neither run pays for the other's garbage
    before = counter.count
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu, counter.count - before


def sovren_check(settings) -> None:
    out = commands.check(settings)
    if out.exit_code != 0:
        raise SystemExit(f"sovren-db check is not clean: {[f.sentence() for f in out.findings][:5]}")


def plain_check(config: Config) -> None:
    alembic_command.check(config)  # raises AutogenerateDiffsDetected on any difference


def measure(checks: dict, counter: QueryCounter, runs: int, *, warm_up: bool = True) -> list[tuple]:
    """(best, median wall seconds, best CPU seconds, queries) of each check, run in turns."""
    for fn in checks.values() if warm_up else ():
        timed(fn, counter)  # imports, declaration loading, first connections
    results: dict[str, list[tuple[float, float, int]]] = {label: [] for label in checks}
    for _ in range(runs):
        for label, fn in checks.items():
            results[label].append(timed(fn, counter))
    figures = []
    for label, runs_ in results.items():
        wall, cpu = [r[0] for r in runs_], [r[1] for r in runs_]
        figures.append((min(wall), statistics.median(wall), min(cpu), runs_[-1][2]))
        print(f"  {label:<32} best {min(wall):6.3f} s  median {statistics.median(wall):6.3f} s  "
              f"(CPU {min(cpu):5.3f} s)  {runs_[-1][2]:4d} queries")
    return figures


def read_catalog_cost(url: str, schema, counter: QueryCounter) -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    with engine.connect() as conn:
        seconds, _, queries = timed(lambda: read_catalog(conn, schema.declared_roles), counter)
    engine.dispose()
    print(f"  {'read_catalog (policies, triggers...)':<32} {seconds:6.3f} s on a new connection  "
          f"{queries:4d} queries")


def set_up(server_url: str, tmp: Path, args: argparse.Namespace) -> tuple[Path, Path, str, str]:
    """Both databases in step with their declarations: the project, its tables file and the two URLs."""
    specs = generate(args.seed, args.tables, args.partitioned)
    project = tmp / "project"
    tables_file = write_project(project, specs)
    sovren_url = create_database(server_url, "bench_sovren")
    plain_url = create_database(server_url, "bench_plain")
    started = time.perf_counter()
    schema = load_schema(project / "postgres")
    create_tables(sovren_url, schema.metadata)
    applied = apply_sovren_objects(sovren_url, schema)
    create_tables(plain_url, load_plain_metadata(tables_file))
    counts = partition_counts(sovren_url)
    columns = sum(len(s.columns) + len(s.foreign_keys) + 3 for s in specs)
    print(f"schema: {len(specs)} tables, {columns} columns, {len(counts)} of them partitioned with "
          f"{sorted(set(counts))} partitions each; {applied} sovren-db objects (policies, RLS, triggers, "
          f"function, partitions) applied; set up in {time.perf_counter() - started:.1f} s")
    return project, tables_file, sovren_url, plain_url


def alembic_utils_cost(server_url: str, counts: list[int], timeout: float) -> None:
    """alembic-utils' comparison of N functions + N triggers, in a process of its own (see alembic_utils_cost.py)."""
    command = [sys.executable, str(HERE / "alembic_utils_cost.py"), server_url, *map(str, counts)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=True)
    except subprocess.TimeoutExpired:
        print(f"  alembic-utils: not done after {timeout:.0f} s")
        return
    except subprocess.CalledProcessError as exc:
        hint = ": pip install -e '.[bench]'" if "alembic_utils" in exc.stderr else ""
        print(f"  alembic-utils: skipped ({(exc.stderr.strip().splitlines() or ['failed'])[-1]}{hint})")
        return
    print(done.stdout.rstrip())
    seconds = [float(line.split(":")[-1].split()[0]) for line in done.stdout.splitlines()]
    if len(seconds) >= 2 and seconds[-2] > 0:
        power = math.log(seconds[-1] / seconds[-2]) / math.log(counts[-1] / counts[-2])
        estimate = seconds[-1] * (300 / counts[-1]) ** power
        print(f"  grows as N^{power:.1f}: about {estimate:.0f} s for 300 functions + 300 triggers")


def run(server_url: str, tmp: Path, args: argparse.Namespace) -> float:
    project, tables_file, sovren_url, plain_url = set_up(server_url, tmp, args)
    counter = QueryCounter()
    settings = load_settings(project, environ={"POSTGRES_URL": sovren_url}, strict=False)
    config = plain_project(tmp / "plain", plain_url, tables_file)
    checks = {"sovren-db check (full schema)": lambda: sovren_check(settings),
              "alembic check (bare tables)": lambda: plain_check(config)}
    print("right after the schema is applied (catalog statistics not yet gathered, as in CI):")
    fresh = measure(checks, counter, 1)
    analyze(sovren_url)
    analyze(plain_url)
    print(f"after ANALYZE, {args.runs} runs each in turns:")
    (sovren, plain) = measure(checks, counter, args.runs, warm_up=False)
    read_catalog_cost(sovren_url, load_schema(project / "postgres"), counter)
    ratio = sovren[0] / plain[0]
    print(f"ratio sovren/plain: {ratio:.2f} best, {sovren[1] / plain[1]:.2f} median, "
          f"{sovren[2] / plain[2]:.2f} CPU ({fresh[0][0] / fresh[1][0]:.2f} before ANALYZE); target <= 1.0")
    if args.alembic_utils:
        print("why not alembic-utils for functions and triggers:")
        alembic_utils_cost(server_url, args.alembic_utils, timeout=300)
    return ratio


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=300)
    parser.add_argument("--partitioned", type=int, default=40)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=20260101)
    parser.add_argument("--alembic-utils", type=lambda v: [int(n) for n in v.split(",") if n], default=[20, 40],
                        metavar="N,N", help="sizes for alembic-utils' comparison ('' to skip)")
    return parse_with_smoke(parser, tables=12, partitioned=2, runs=1, alembic_utils=[2, 4])


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="sovren-bench-") as tmp:
        server = services.start_postgres(Path(tmp) / "postgres")
        try:
            ratio = run(server.url, Path(tmp), args)
        finally:
            services.stop(server)
            shutil.rmtree(Path(server.data_dir).parent, ignore_errors=True)
    return 0 if ratio <= 1.0 or args.smoke else 1


if __name__ == "__main__":
    sys.exit(main())
