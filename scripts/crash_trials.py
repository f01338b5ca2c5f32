"""Crash trials: kill -9 ``sovren-db`` at random (seeded) points, then check that the stores converge.

Five kinds of trial, each on a fresh Postgres database and a flushed Redis database:

- ``migrate``: killed during ``migrate`` from base;
- ``downgrade``: killed during ``downgrade base`` from head;
- ``downgrade-migrate``: killed during ``downgrade base`` followed by ``migrate``;
- ``seed``: killed during ``seed --profile ci`` (afterwards the seed is run again);
- ``erase``: killed during ``erase --subject`` of a seeded user (afterwards the erase is run again).

After the kill: ``migrate`` exits 0, ``check`` exits 0 and ``status`` exits 0 (every store in step
with Postgres). The kill point is drawn uniformly over the command's duration measured once per kind.
Servers are the project's own throwaway ones on loopback ports (``sovren_db.services``).

    python scripts/crash_trials.py [--trials 50] [--seed 1] [--kinds migrate,seed] [--smoke]

Prints, per kind, how many trials converged; exit 0 when all did, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "src"), str(REPO)]

from sovren_db import services  # noqa: E402
from sovren_db.core.urls import with_database  # noqa: E402
from sovren_db.seeds.snapshots import create_database, drop_database  # noqa: E402
from tests.integration.conftest import copy_project  # noqa: E402  (the test suite's project copy)

SOVREN_DB = str(Path(sys.executable).with_name("sovren-db"))
KINDS = ("migrate", "downgrade", "downgrade-migrate", "seed", "erase")


@dataclass
class Trials:
    """The servers, a project copy, and what each kind of trial needs before and during the kill."""

    pg_server: str
    redis_url: str
    project: Path
    durations: dict[str, float] = field(default_factory=dict)

    def env(self, pg_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("CI", "MONGO_URL", "SOVREN_ENV")}
        env.update(POSTGRES_URL=pg_url, REDIS_URL=self.redis_url, SOVREN_DB_STORES="postgres,redis")
        return env

    def run(self, pg_url: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([SOVREN_DB, *args], cwd=self.project, env=self.env(pg_url),
                              capture_output=True, text=True, timeout=600)

    def must(self, pg_url: str, *args: str) -> str:
        done = self.run(pg_url, *args)
        if done.returncode != 0:
            raise RuntimeError(f"sovren-db {' '.join(args)} exited {done.returncode}: {done.stderr.strip()[-400:]}")
        return done.stdout

    def prepare(self, kind: str, pg_url: str) -> list[str]:
        """Bring the fresh database to the kind's starting point; the shell command to kill."""
        if kind != "migrate":
            self.must(pg_url, "migrate")
        if kind in ("seed", "erase"):
            self.must(pg_url, "seed", "--profile", "ci")
        if kind == "erase":
            return [f"{SOVREN_DB} erase --subject {seeded_user(pg_url)}"]
        return {"migrate": [f"{SOVREN_DB} migrate"], "downgrade": [f"{SOVREN_DB} downgrade base"],
                "downgrade-migrate": [f"{SOVREN_DB} downgrade base && {SOVREN_DB} migrate"],
                "seed": [f"{SOVREN_DB} seed --profile ci --reset"]}[kind]

    def crash(self, command: list[str], pg_url: str, delay: float) -> bool:
        """Run ``command`` in its own process group and kill -9 the group after ``delay`` s; True if killed."""
        proc = subprocess.Popen(["sh", "-c", command[0]], cwd=self.project, env=self.env(pg_url),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            proc.wait(timeout=delay)
            return False
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True

    def converged(self, kind: str, pg_url: str, command: list[str]) -> tuple[bool, str]:
        """migrate, (the interrupted seed or erase again), check and status all exit 0."""
        steps = [["migrate"]]
        if kind in ("seed", "erase"):
            steps.append(command[0].split()[1:])
        steps += [["check"], ["status"]]
        for args in steps:
            done = self.run(pg_url, *args)
            if done.returncode != 0:
                return False, f"sovren-db {' '.join(args)} exited {done.returncode}: " + \
                              (done.stdout + done.stderr).strip()[-600:]
        return True, ""

    def trial(self, kind: str, rng: random.Random) -> tuple[bool, str]:
        name = f"crash_{uuid.uuid4().hex[:10]}"
        admin = with_database(self.pg_server, "postgres")
        create_database(admin, name)
        pg_url = with_database(self.pg_server, name)
        flush(self.redis_url)
        try:
            command = self.prepare(kind, pg_url)
            if kind not in self.durations:  # measured once, on a run that is not killed
                started = time.monotonic()
                self.crash(command, pg_url, 600)
                self.durations[kind] = time.monotonic() - started
                drop_database(admin, name)
                create_database(admin, name)
                flush(self.redis_url)
                command = self.prepare(kind, pg_url)
            delay = rng.uniform(0.05, 0.95) * self.durations[kind]
            killed = self.crash(command, pg_url, delay)
            ok, why = self.converged(kind, pg_url, command)
            return ok, f"killed at {delay:.2f}s{'' if killed else ' (finished first)'}" + (f": {why}" if why else "")
        finally:
            drop_database(admin, name)


def flush(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def seeded_user(pg_url: str) -> str:
    import psycopg

    with psycopg.connect(pg_url) as conn:
        return str(conn.execute("SELECT user_id FROM users ORDER BY user_id LIMIT 1").fetchone()[0])


def run_trials(base: Path, kinds: list[str], trials: int, seed: int, out=sys.stdout) -> dict[str, list[tuple]]:
    """``trials`` per kind on servers started under ``base``; per kind, (converged, killed mid-run) of each."""
    pg = services.start_postgres(base / "pg")
    redis_server = services.start_redis(base / "redis")
    results: dict[str, list[tuple]] = {kind: [] for kind in kinds}
    try:
        runner = Trials(pg.url, redis_server.url, copy_project(REPO, base / "project"))
        rng = random.Random(seed)
        for kind in kinds:
            for n in range(trials):
                ok, detail = runner.trial(kind, rng)
                results[kind].append((ok, "finished first" not in detail))
                print(f"{kind} #{n + 1}: {'converged' if ok else 'DID NOT CONVERGE'} ({detail})", file=out, flush=True)
    finally:
        services.stop(redis_server)
        services.stop(pg)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=10, help="trials per kind (default 10: 50 in all)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--smoke", action="store_true", help="one trial of migrate only")
    args = parser.parse_args()
    kinds = ["migrate"] if args.smoke else [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        print(f"crash_trials: unknown kind {unknown[0]!r} (one of {', '.join(KINDS)})", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="sovren-crash-") as tmp:
        results = run_trials(Path(tmp), kinds, 1 if args.smoke else args.trials, args.seed)
    for kind, outcomes in results.items():
        killed = [ok for ok, mid_run in outcomes if mid_run]
        print(f"{kind}: {sum(ok for ok, _ in outcomes)}/{len(outcomes)} converged "
              f"({sum(killed)}/{len(killed)} of those killed mid-run)")
    return 0 if all(ok for outcomes in results.values() for ok, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
