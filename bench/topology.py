"""migrate and check through a transaction-pooling PgBouncer against direct, in the same run.

Starts a local Postgres and a PgBouncer (pool_mode = transaction) in front of
it, copies this project's declarations, then per round migrates a fresh
database to head and checks it, once directly and once through PgBouncer
(alternating which goes first). Prints the medians and the ratio pooled/direct
(the issue's bar: at most 1.2x). ``--smoke``: one round, for CI.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from sovren_db import commands, services  # noqa: E402
from sovren_db.core.config import load_settings  # noqa: E402
from sovren_db.core.urls import with_database  # noqa: E402
from sovren_db.seeds.snapshots import create_database, drop_database  # noqa: E402
from tests.integration.conftest import copy_project  # noqa: E402

def timed_round(root: Path, server_url: str, via: str) -> tuple[float, float]:
    """Seconds to migrate a fresh database to head, and to check it, reaching it by ``via``."""
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = with_database(server_url, "postgres")
    create_database(admin, name)
    try:
        os.environ["POSTGRES_URL"] = with_database(via, name)
        settings = load_settings(root)
        started = time.perf_counter()
        commands.migrate(settings)
        migrated = time.perf_counter()
        outcome = commands.check(settings)
        checked = time.perf_counter()
        if outcome.exit_code != 0:
            raise RuntimeError(f"check found drift after migrate through {urlsplit(via).port}: {outcome.findings}")
        return migrated - started, checked - migrated
    finally:
        drop_database(admin, name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--smoke", action="store_true", help="one round, for CI")
    args = parser.parse_args()
    rounds = 1 if args.smoke else args.rounds
    work = Path(tempfile.mkdtemp(prefix="sovren-bench-topology-"))
    for var in ("CI", "MONGO_URL", "REDIS_URL", "SOVREN_ENV"):
        os.environ.pop(var, None)
    os.environ["SOVREN_DB_STORES"] = "postgres"
    postgres = services.start_postgres(work / "pg")
    bouncer = services.start_pgbouncer(work / "pgbouncer", postgres.url)
    try:
        root = copy_project(REPO, work / "project")
        timed_round(root, postgres.url, postgres.url)  # warm-up: imports, catalog caches
        times: dict[str, list[tuple[float, float]]] = {"direct": [], "pgbouncer": []}
        for number in range(rounds):
            order = [("direct", postgres.url), ("pgbouncer", bouncer.url)]
            for label, via in order if number % 2 == 0 else reversed(order):
                times[label].append(timed_round(root, postgres.url, via))
        report(times, rounds)
    finally:
        services.stop(bouncer)
        services.stop(postgres)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def report(times: dict[str, list[tuple[float, float]]], rounds: int) -> None:
    print(f"migrate to head + check of a fresh database, medians of {rounds} round(s)")
    for step, index in (("migrate", 0), ("check", 1)):
        direct = statistics.median(t[index] for t in times["direct"])
        pooled = statistics.median(t[index] for t in times["pgbouncer"])
        print(f"{step:8s} direct {direct * 1000:8.1f} ms   pgbouncer (transaction) {pooled * 1000:8.1f} ms   "
              f"ratio {pooled / direct:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
