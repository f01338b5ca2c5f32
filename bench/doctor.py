"""Benchmark: what watching costs. doctor and the exporter against the baselines they are held to.

Run as ``.venv/bin/python bench/doctor.py`` (``--smoke``: a tiny size, a few
seconds). It starts its own Postgres (pg_stat_statements preloaded) and Redis,
builds the 300-table project of bench/big_schema.py (40 tables x 30 monthly
partitions = 1,200 partitions) applied as postgres_check.py does, fills Redis
with 1,000,000 keys (DEBUG POPULATE), then measures in the same run:

1. drift in process against the bulk catalog read it needs
   (``read_catalog``), the two measured in turns: the full compare
   (``commands.check``) as a process that checks again runs it (the tables
   Alembic found in step at the same declared and live forms are skipped:
   postgres/table_forms.py; the connection of its last check kept, as the
   catalog read's is: env.kept_connection), and the exporter's drift collection on an
   unchanged catalog (a fingerprint of check's inputs, then its last answer:
   doctor/fingerprint.py): target at most 5x; for reference, the first compare
   of a process (every table through Alembic, what ``check --exact`` does);
   and the first check of a new process with the verdicts kept by an earlier
   one (.sovren/check-verdicts, postgres/table_forms.py): a child process
   times ``commands.check`` once, imports left out, against the same catalog
   read; beside it the same child with the file turned off, and the wall time
   of a whole ``sovren-db check`` command. Everything else runs with the file
   turned off (SOVREN_DB_CHECK_MEMORY=off), so that "first check" keeps meaning
   every table through Alembic;
2. ``commands.doctor`` against ``commands.check``, both as a new process runs
   them (nothing remembered: every table through Alembic): target at most 3x;
3. 1,000 scrapes of ``metrics serve``'s /metrics from 10 concurrent clients
   while drift collections run back to back, against prometheus_client
   serving the same metric families from a static collector: p99 target at
   most 2x; the collections in a thread and in a worker process (as
   ``metrics serve`` runs them), each on an unchanged catalog (the
   fingerprint's path) and as full compares (a declaration touched before
   each one, as after a deploy); the two sides alternate, best of ``--runs``;
4. the commands one Redis collection and one keyspace sample send, from
   INFO commandstats, at this keyspace size (bounded: see docs).

Figures are best of ``--runs``; ratios are printed with their targets.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
from prometheus_client.registry import CollectorRegistry
from sqlalchemy import create_engine
from sqlalchemy.pool import NullPool

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from big_schema import generate, write_project  # noqa: E402
from postgres_check import analyze, apply_sovren_objects, create_database, create_tables  # noqa: E402
from smoke import parse_with_smoke  # noqa: E402

from sovren_db import commands, services  # noqa: E402
from sovren_db.core.config import load_settings  # noqa: E402
from sovren_db.doctor import collect, load_thresholds  # noqa: E402
from sovren_db.env import forget_kept_connections, sqlalchemy_url  # noqa: E402
from sovren_db.metrics import Exporter  # noqa: E402
from sovren_db.metrics.serve import serve_registry  # noqa: E402
from sovren_db.postgres.declared import load_schema  # noqa: E402
from sovren_db.postgres import table_forms  # noqa: E402
from sovren_db.postgres.live import read_catalog  # noqa: E402


def best(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def _cpu(fn) -> float:
    """CPU seconds of this process: what other load on a shared machine disturbs least."""
    began = time.process_time()
    fn()
    return time.process_time() - began


def set_up(server_url: str, tmp: Path, args: argparse.Namespace) -> Path:
    specs = generate(args.seed, args.tables, args.partitioned)
    project = tmp / "project"
    write_project(project, specs)
    url = create_database(server_url, "bench_doctor")
    schema = load_schema(project / "postgres")
    create_tables(url, schema.metadata)
    apply_sovren_objects(url, schema)
    analyze(url)
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    print(f"schema: {len(specs)} tables, {sum(1 for s in specs if s.partitioned)} partitioned")
    return project, url


def first_check(settings) -> None:
    """check as a new process runs it: no table yet found in step, every one through Alembic, and no connection
    kept from an earlier check (env.kept_connection: a new one, its backend's catalog caches cold)."""
    table_forms.forget()
    forget_kept_connections()
    commands.check(settings)


# The first check of a new process, imports done before the clock starts.
_CHILD = """
import sys, time
from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.postgres import table_forms
settings = load_settings(sys.argv[1])
began = time.perf_counter()
if sys.argv[2] == "loaded":  # what any command of the process loads first: the declarations, the store plugins
    from sovren_db.plugin import install
    from sovren_db.postgres.declared import load_schema
    load_schema(settings.postgres_dir)
    install(settings.stores)
    began = time.perf_counter()
outcome = commands.check(settings)
print(time.perf_counter() - began, outcome.exit_code, table_forms.LAST["from_file"])
"""


def new_process_check(settings, url: str, catalog: float, runs: int) -> None:
    """The first check of a new process with the verdicts file an earlier process wrote, and without it."""
    env = {**os.environ, "POSTGRES_URL": url, "SOVREN_DB_STORES": "postgres",
           "PYTHONPATH": os.pathsep.join([str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")])}
    env.pop(table_forms.MEMORY_VARIABLE, None)
    off = {**env, table_forms.MEMORY_VARIABLE: "off"}
    (settings.state_dir / table_forms.FILE_NAME).unlink(missing_ok=True)

    def child(environ, what: str = "whole") -> tuple[float, int]:
        done = subprocess.run([sys.executable, "-c", _CHILD, str(settings.root), what], env=environ,
                              cwd=settings.root, capture_output=True, text=True, check=True)
        seconds, code, from_file = done.stdout.split()
        assert code == "0", done.stdout
        return float(seconds), int(from_file)

    def command(environ) -> None:
        subprocess.run([sys.executable, "-m", "sovren_db.cli.main", "check"], env=environ, cwd=settings.root,
                       capture_output=True, check=True)

    child(env)  # writes the file
    with_file = [child(env) for _ in range(runs)]
    assert all(n > 0 for _, n in with_file), with_file
    warm = min(t for t, _ in with_file)
    cold = min(child(off)[0] for _ in range(runs))
    loaded_warm = min(child(env, "loaded")[0] for _ in range(runs))
    loaded_cold = min(child(off, "loaded")[0] for _ in range(runs))
    cli_warm = best(lambda: command(env), runs)
    cli_cold = best(lambda: command(off), runs)
    print(f"1. a new process's first check with the verdicts file {warm:.3f} s: {warm / catalog:.1f}x the catalog "
          f"read, without it {cold:.3f} s: {cold / catalog:.1f}x; declarations and plugins loaded before the clock: "
          f"{loaded_warm:.3f} s: {loaded_warm / catalog:.1f}x with the file, {loaded_cold:.3f} s: "
          f"{loaded_cold / catalog:.1f}x without; the whole 'sovren-db check' command {cli_warm:.2f} s with the "
          f"file, {cli_cold:.2f} s without (Python start and imports included)")


def drift_vs_catalog(settings, url: str, runs: int) -> tuple[float, float]:
    """(check, the first check of a process), best of ``runs``, each run timing the catalog read and check in turn."""
    schema = load_schema(settings.postgres_dir)
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    catalogs, drifts = [], []
    with engine.connect() as conn:
        read_catalog(conn, schema.declared_roles)  # warm
        commands.check(settings)  # warm: imports, declarations, the tables found in step
        for _ in range(runs):
            catalogs.append(best(lambda: read_catalog(conn, schema.declared_roles), 1))
            drifts.append(best(lambda: commands.check(settings), 1))
    engine.dispose()
    catalog, drift = min(catalogs), min(drifts)
    cpu = min(_cpu(lambda: commands.check(settings)) for _ in range(runs))
    first = best(lambda: first_check(settings), runs)
    print(f"1. full compare (check) {drift:.3f} s (CPU {cpu:.3f} s), bulk catalog read {catalog:.3f} s: "
          f"{drift / catalog:.2f}x (target <= 5, aim <= 3); a process's first check (every table through Alembic) "
          f"{first:.3f} s: {first / catalog:.1f}x; load average {os.getloadavg()[0]:.1f}")
    new_process_check(settings, url, catalog, runs)
    drift_collection(settings, cached=False)  # the first collection compares in full and keeps the answer
    collection = best(lambda: drift_collection(settings, cached=True), runs)
    print(f"1. exporter's drift per interval, catalog unchanged (fingerprint, then the last answer) "
          f"{collection:.3f} s: {collection / catalog:.1f}x the catalog read (target <= 5)")
    return drift, first


def drift_collection(settings, cached: bool) -> None:
    from sovren_db.doctor.model import Examination
    from sovren_db.doctor.schema import drift

    exam = Examination("schema")
    drift(settings, exam, set())
    assert [s.value for s in exam.samples if s.name == "drift_from_cache"] == [int(cached)]


def doctor_vs_check(settings, check_seconds: float, runs: int) -> None:
    """``check_seconds``: check as a new process runs it, as doctor is run here."""
    from sovren_db.doctor.fingerprint import CACHE

    def cold_doctor():  # as the command runs: a new process, no answer kept, no table yet found in step
        CACHE.forget()
        table_forms.forget()
        forget_kept_connections()
        commands.doctor(settings)

    cold_doctor()
    doctor = best(cold_doctor, runs)
    print(f"2. doctor {doctor:.3f} s, check {check_seconds:.3f} s (each as a new process runs it): "
          f"{doctor / check_seconds:.1f}x (target <= 3)")


def scrape_p99(port: int, scrapes: int, clients: int) -> float:
    url = f"http://127.0.0.1:{port}/metrics"

    def one(_: int) -> float:
        began = time.perf_counter()
        urllib.request.urlopen(url, timeout=30).read()
        return time.perf_counter() - began

    with ThreadPoolExecutor(clients) as pool:
        times = sorted(pool.map(one, range(scrapes)))
    return times[max(0, int(len(times) * 0.99) - 1)]


def static_registry(exporter: Exporter) -> CollectorRegistry:
    """The exporter's metric families as they are now, served by prometheus_client with no collection behind."""
    frozen = list(exporter.collect())

    class Static:
        def collect(self):
            return iter(frozen)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Static())
    return registry


def during_drift(exporter: Exporter, port: int, scrapes: int, clients: int, touch: Path | None) -> tuple[float, int]:
    """(p99, collections started) of the scrapes while schema collections run back to back.

    ``touch``: a declaration file given a new mtime before each collection, so that its fingerprint
    differs and every collection compares in full (as after a deploy), instead of reusing the last answer.
    """
    stop = threading.Event()
    started = [0]

    def drift_loop() -> None:
        while not stop.is_set():
            if touch is not None:
                os.utime(touch)
            started[0] += 1
            exporter.run("schema")

    worker = threading.Thread(target=drift_loop, daemon=True)
    worker.start()
    try:
        return scrape_p99(port, scrapes, clients), started[0]
    finally:
        stop.set()
        worker.join()


def scrapes_under_drift(settings, args: argparse.Namespace, isolate: bool, full: bool) -> None:
    """Served with collections against served without, the two alternating, best p99 of --runs each."""
    exporter = Exporter(settings, load_thresholds(settings.root))
    exporter.run_all()
    if isolate:
        exporter.isolate()
        exporter.run("schema")  # as a serving exporter's worker is: spawned, imports done, an answer kept
    served, _ = serve_registry(exporter.registry(), 0)
    plain, _ = serve_registry(static_registry(exporter), 0)  # the same server: only the collections differ
    touch = settings.postgres_dir / "tables.py" if full else None
    sides: dict[str, list[float]] = {"served": [], "plain": []}
    collections = 0
    try:
        for _ in range(args.runs):
            p99, started = during_drift(exporter, served.server_address[1], args.scrapes, 10, touch)
            sides["served"].append(p99)
            collections += started
            sides["plain"].append(scrape_p99(plain.server_address[1], args.scrapes, 10))
    finally:
        exporter.close()
        served.shutdown()
        plain.shutdown()
    where = "in a worker process, as metrics serve runs them" if isolate else "in a thread"
    what = "full compares (a declaration touched before each)" if full else "drift collections (catalog unchanged)"
    best_served, best_plain = min(sides["served"]), min(sides["plain"])
    print(f"3. {args.scrapes} scrapes from 10 clients during {what}, {where}, {collections} collections "
          f"overlapping {args.runs} run(s): p99 {best_served * 1000:.1f} ms, prometheus_client alone "
          f"{best_plain * 1000:.1f} ms: {best_served / best_plain:.1f}x (target <= 2; "
          f"worst runs {max(sides['served']) * 1000:.1f} / {max(sides['plain']) * 1000:.1f} ms)")


def redis_commands(settings, redis_url: str, keys: int) -> None:
    """One redis collection, then one keyspace sample against Sovren's own conventions (redis/)."""
    from sovren_db.doctor.model import Examination
    from sovren_db.doctor.schema import redis_keys
    from sovren_db.redis.backend import RedisBackend
    from sovren_db.redis.declared import load_declarations

    client = redis.Redis.from_url(redis_url)
    client.execute_command("DEBUG", "POPULATE", keys, "bench")
    limits = load_thresholds(settings.root)
    backend = RedisBackend(settings)
    backend.connect()
    declared = load_declarations(HERE.parent / "redis")
    for what, run in (("redis collection", lambda: collect("redis", settings, limits)),
                      (f"keyspace sample (key_sample {limits.key_sample})",
                       lambda: redis_keys(backend, declared, limits, Examination("schema")))):
        client.config_resetstat()
        began = time.perf_counter()
        run()
        seconds = time.perf_counter() - began
        calls = sum(int(v["calls"]) for k, v in client.info("commandstats").items() if k != "cmdstat_config|resetstat")
        print(f"4. {what}: {calls} commands in {seconds:.3f} s at {client.dbsize():,} keys")
    backend.close()
    client.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, default=300)
    parser.add_argument("--partitioned", type=int, default=40)
    parser.add_argument("--keys", type=int, default=1_000_000)
    parser.add_argument("--scrapes", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20260101)
    return parse_with_smoke(parser, tables=12, partitioned=2, keys=5_000, scrapes=100, runs=1)


def main() -> int:
    args = parse_args()
    os.environ[table_forms.MEMORY_VARIABLE] = "off"  # on only where said (new_process_check)
    with tempfile.TemporaryDirectory(prefix="sovren-bench-doctor-") as tmp:
        postgres = services.start_postgres(Path(tmp) / "postgres")
        redis_server = services.start_redis(Path(tmp) / "redis")
        try:
            project, url = set_up(postgres.url, Path(tmp), args)
            postgres_only = load_settings(project, environ={"POSTGRES_URL": url}, strict=False)
            _, first = drift_vs_catalog(postgres_only, url, args.runs)
            doctor_vs_check(postgres_only, first, args.runs)
            for isolate, full in ((False, False), (True, False), (False, True), (True, True)):
                scrapes_under_drift(postgres_only, args, isolate, full)
            redis_commands(load_settings(project, environ={"POSTGRES_URL": url, "REDIS_URL": redis_server.url},
                                         strict=False), redis_server.url, args.keys)
        finally:
            services.stop(postgres)
            services.stop(redis_server)
            shutil.rmtree(Path(postgres.data_dir).parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
