"""Benchmark: p99 latency of a live workload while `migrate` changes its tables, safe against naive.

An index and a foreign key, a backfill, a column behind a reader, a type change: each safe form
against its naive form, in the same run.

Run as ``.venv/bin/python bench/safe_migrations.py``. It starts its own Postgres
(sovren_db.services), writes a small sovren-db project whose first revision
creates an ``operations``-like table and ``accounts``, loads 2,000,000
operations with INSERT ... SELECT generate_series, then, with pgbench running a
fixed-rate mix of inserts and reads (bounded by -T), measures:

- baseline: the workload alone;
- safe:     ``sovren_db.commands.migrate`` applying a revision written the way
            autogenerate writes it for an existing table: CREATE INDEX
            CONCURRENTLY in an autocommit block, the foreign key NOT VALID, then
            VALIDATE CONSTRAINT in its own transaction;
- naive:    the same change as plain ``op.create_index`` / ``op.create_foreign_key``
            in the revision's transaction (after downgrading the safe one).

Further scenarios, each a safe form against its naive form in the same round
(``--scenarios`` picks some; default all): ``blocked``, the foreign key while a
transaction holds a row lock on accounts for ``--hold`` seconds; ``backfill``,
every operation updated by ``op.backfill`` (throttled by the same probe as
``type``) against one UPDATE (rows/s); ``reader``, a column added while a
transaction that read operations stays open ``--hold`` seconds (the lock-wait guard against a plain ALTER TABLE queueing
for its lock); ``type``, confidence numeric(5,2) -> float by
``op.expand_column`` then ``op.contract_column`` against ``ALTER TYPE`` (the
expand's backfill throttled by a probe of the workload's read, 20 ms).
``backfill`` and ``type`` phases last ``--long`` seconds.

The phases repeat ``--rounds`` times (default 3; the safe and the naive
revision are downgraded after each). For each migration it prints the median
over the rounds of the p99 (and max) latency of the transactions that
overlapped the migration, the added p99 against the baseline, and how long the
migration took. Target: the architecture document's sub-4 ms budget, i.e. the
safe forms add under 4 ms to the p99. The server is stopped at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import psycopg

from smoke import parse_with_smoke

from sovren_db import commands, services
from sovren_db.core.config import load_settings
from sovren_db.services.local import find_pg_bin

REPO = Path(__file__).resolve().parent.parent
TARGET_MS = 4.0
BLOCKED_TARGET_MS = 20.0

INITIAL = '''
def upgrade() -> None:
    op.create_table("accounts", sa.Column("account_id", sa.BigInteger, primary_key=True),
                    sa.Column("name", sa.Text, nullable=False))
    op.create_table("operations", sa.Column("operation_id", sa.UUID, primary_key=True),
                    sa.Column("account_id", sa.BigInteger, nullable=False),
                    sa.Column("parameters", postgresql.JSONB),
                    sa.Column("confidence", sa.Numeric(5, 2)),
                    sa.Column("executed_at", sa.TIMESTAMP, nullable=False, server_default=sa.text("now()")))


def downgrade() -> None:
    op.drop_table("operations")
    op.drop_table("accounts")
'''
KEY_UP = '''    op.create_foreign_key_not_valid("operations_account_fkey", "operations", "accounts",
                                    ["account_id"], ["account_id"])
    with op.get_context().autocommit_block():
        op.validate_constraint("operations_account_fkey", "operations")
'''
KEY_NAIVE_UP = '''    op.create_foreign_key("operations_account_fkey", "operations", "accounts", ["account_id"], ["account_id"])
'''
KEY_DOWN = '''    op.drop_constraint("operations_account_fkey", "operations", type_="foreignkey")
'''
SAFE = f'''
def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.create_index_concurrently("ix_operations_confidence", "operations", ["confidence"])
{KEY_UP}

def downgrade() -> None:
{KEY_DOWN}    with op.get_context().autocommit_block():
        op.drop_index_concurrently("ix_operations_confidence", "operations")
'''
NAIVE = f'''
def upgrade() -> None:
    op.create_index("ix_operations_confidence", "operations", ["confidence"])
{KEY_NAIVE_UP}

def downgrade() -> None:
{KEY_DOWN}    op.drop_index("ix_operations_confidence", table_name="operations")
'''
FILL_SAFE = '''
def upgrade() -> None:
    with op.get_context().autocommit_block():
        op.backfill("operations", "confidence = confidence + 0", batch_size=2000, max_probe_ms=20,
                    probe="SELECT name FROM accounts WHERE account_id = 1"{pace})


def downgrade() -> None:
    op.execute("DELETE FROM sovren_db.backfill_progress")
'''
FILL_NAIVE = '''
def upgrade() -> None:
    op.execute("UPDATE operations SET confidence = confidence + 0")


def downgrade() -> None:
    pass
'''
COLUMN = '''
def upgrade() -> None:
    op.add_column("operations", sa.Column("note", sa.Text))


def downgrade() -> None:
    op.drop_column("operations", "note")
'''
TYPE_EXPAND = '''
def upgrade() -> None:
    op.expand_column("operations", "confidence", type_=sa.Float(), version="b5", batch_size=2000,
                     throttle={"max_probe_ms": 20, "probe": "SELECT name FROM accounts WHERE account_id = 1"})


def downgrade() -> None:
    op.undo_expand_column("operations", "confidence", type_=sa.Float(), version="b5")
'''
TYPE_CONTRACT = '''
def upgrade() -> None:
    op.contract_column("operations", "confidence", type_=sa.Float(), version="b5")


def downgrade() -> None:
    op.alter_column("operations", "confidence", type_=sa.Numeric(5, 2))
'''
TYPE_NAIVE = '''
def upgrade() -> None:
    op.alter_column("operations", "confidence", type_=sa.Float())


def downgrade() -> None:
    op.alter_column("operations", "confidence", type_=sa.Numeric(5, 2))
'''
KEY_SAFE = f"\ndef upgrade() -> None:\n{KEY_UP}\n\ndef downgrade() -> None:\n{KEY_DOWN}"
KEY_NAIVE = f"\ndef upgrade() -> None:\n{KEY_NAIVE_UP}\n\ndef downgrade() -> None:\n{KEY_DOWN}"
HEADER = '''"""{doc}"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None
'''
WORKLOAD = """\\set aid random(1, {accounts})
INSERT INTO operations (operation_id, account_id, parameters, confidence) VALUES (gen_random_uuid(), :aid, '{{"k": 1}}', random() * 99);
SELECT name FROM accounts WHERE account_id = :aid;
UPDATE accounts SET name = 'account ' || :aid WHERE account_id = :aid;
"""


def write_project(root: Path, pace: str = "") -> None:
    versions = root / "migrations" / "versions"
    versions.mkdir(parents=True)
    shutil.copy2(REPO / "migrations" / "env.py", root / "migrations" / "env.py")
    shutil.copy2(REPO / "migrations" / "script.py.mako", root / "migrations" / "script.py.mako")
    (root / "postgres").mkdir()
    (root / "postgres" / "schema.py").write_text("from sovren_db.postgres import Schema\n\nschema = Schema()\n")
    (root / "pyproject.toml").write_text('[tool.sovren-db]\nstores = ["postgres"]\nlock_timeout = "5s"\n'
                                         'statement_timeout = "15min"\n')
    for rev, down, doc, body in (("b0", None, "operations and accounts", INITIAL),
                                 ("b1safe", "b0", "index and foreign key, safe forms", SAFE),
                                 ("b1naive", "b0", "index and foreign key, naive forms", NAIVE),
                                 ("b2safe", "b0", "foreign key, safe form", KEY_SAFE),
                                 ("b2naive", "b0", "foreign key, naive form", KEY_NAIVE),
                                 ("b3safe", "b0", "backfill in batches", FILL_SAFE.format(pace=pace)),
                                 ("b3naive", "b0", "backfill in one UPDATE", FILL_NAIVE),
                                 ("b4safe", "b0", "a column added through the lock-wait guard", COLUMN),
                                 ("b5expand", "b0", "confidence to float, expand", TYPE_EXPAND),
                                 ("b5safe", "b5expand", "confidence to float, contract", TYPE_CONTRACT),
                                 ("b5naive", "b0", "confidence to float, ALTER TYPE", TYPE_NAIVE)):
        (versions / f"{rev}.py").write_text(HEADER.format(doc=doc, rev=rev, down=down) + body)


def load(url: str, operations: int, accounts: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"INSERT INTO accounts SELECT i, 'account ' || i FROM generate_series(0, {accounts}) i")
        conn.execute(f"INSERT INTO operations (operation_id, account_id, parameters, confidence, executed_at) "
                     f"SELECT gen_random_uuid(), 1 + i % {accounts}, '{{\"k\": 1}}', (i % 10000) / 100.0, "
                     f"now() - i * interval '1 second' FROM generate_series(1, {operations}) i")
        conn.execute("VACUUM ANALYZE")


@dataclass
class Sample:
    end: float       # epoch seconds when the transaction completed
    latency: float   # milliseconds, from its scheduled start (pgbench --rate)

    @property
    def start(self) -> float:
        return self.end - self.latency / 1000


def pgbench(server, script: Path, prefix: Path, seconds: int, args) -> subprocess.Popen:
    command = [find_pg_bin("pgbench"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "sovren", "-n",
               "-f", str(script), "-c", str(args.clients), "-j", str(min(args.clients, 2)), "-R", str(args.rate),
               "-T", str(seconds), "-l", f"--log-prefix={prefix}", "sovren_ai"]
    env = dict(os.environ, PGPASSWORD=urlsplit(server.url).password)
    return subprocess.Popen(command, cwd=prefix.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def samples(prefix: Path) -> list[Sample]:
    found = []
    for path in prefix.parent.glob(prefix.name + ".*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 6 and fields[2].isdigit():
                found.append(Sample(int(fields[4]) + int(fields[5]) / 1e6, int(fields[2]) / 1000))
    return found


def slices(found: list[Sample], width: float = 10.0) -> str:
    """The p99 of each ``width`` seconds of the window: a burst shows as one slice, a steady cost as all."""
    first, buckets = min(s.end for s in found), {}
    for sample in found:
        buckets.setdefault(int((sample.end - first) // width), []).append(sample.latency)
    return " ".join(f"{p99(buckets[k]):.0f}" for k in sorted(buckets))


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


def add_column_naive(url: str) -> None:
    """The same column added the way plain Alembic does it: one ALTER TABLE that queues for its lock."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '5s'")
        conn.execute("ALTER TABLE operations ADD COLUMN note text")


def drop_column(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("ALTER TABLE operations DROP COLUMN IF EXISTS note")


WAITS = """
SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity
WHERE application_name = 'pgbench' AND state = 'active' AND backend_type = 'client backend'
"""


class WaitSampler(threading.Thread):
    """What the workload's sessions wait on while a migration runs: ``pg_stat_activity`` read every
    ``every`` seconds, each active pgbench session counted under its wait event ('CPU' when none)."""

    def __init__(self, url: str, every: float = 0.01):
        super().__init__(daemon=True)
        self.url, self.every, self.stop = url, every, threading.Event()
        self.counts: dict[str, int] = {}
        self.samples = 0

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name="bench-wait-sampler") as conn:
            while not self.stop.wait(self.every):
                self.samples += 1
                for (event,) in conn.execute(WAITS):
                    self.counts[event] = self.counts.get(event, 0) + 1

    def summary(self) -> str:
        top = sorted(self.counts.items(), key=lambda kv: -kv[1])[:6]
        return ", ".join(f"{event} {count / max(self.samples, 1):.3f}" for event, count in top) or "none"


def phase(server, work: Path, name: str, seconds: int, args, migration=None) -> dict:
    prefix = work / name
    bench = pgbench(server, work / "workload.sql", prefix, seconds, args)
    window, sampler = None, WaitSampler(server.url) if args.waits else None
    try:
        if sampler:
            sampler.start()
        if migration is not None:
            time.sleep(args.warmup)
            started = time.time()
            migration()
            window = (started, time.time())
        out, err = bench.communicate(timeout=seconds + 120)
    finally:
        if sampler and sampler.is_alive():
            sampler.stop.set()
            sampler.join()
            print(f"  {name}: workload sessions per sample by wait event: {sampler.summary()}")
        if bench.poll() is None:
            bench.kill()
    if bench.returncode != 0:
        raise RuntimeError(f"pgbench failed in phase {name}: {err.strip() or out.strip()}")
    found = samples(prefix)
    if window is not None:
        found = [s for s in found if s.end >= window[0] and s.start <= window[1]]
    latencies = [s.latency for s in found]
    if args.waits and found:
        print(f"  {name}: p99 per 10 s of the window: " + slices(found) + f"; load {os.getloadavg()[0]:.1f}")
    return {"p99": p99(latencies), "max": max(latencies, default=float("nan")), "n": len(latencies),
            "seconds": (window[1] - window[0]) if window else float(seconds)}


ROW_LOCK = "UPDATE accounts SET name = name WHERE account_id = 0"
READER = "SELECT count(*) FROM (SELECT 1 FROM operations LIMIT 1000) AS o"


def blocked(url: str, hold: float, migration, holding: str = ROW_LOCK) -> Callable[[], None]:
    """``migration`` started while a forgotten transaction (any web request that forgets to commit)
    keeps what ``holding`` took for ``hold`` seconds: by default a row lock on accounts (account 0,
    which the workload never touches); ``READER``: a read of operations."""

    def run_blocked() -> None:
        blocker = psycopg.connect(url, application_name="bench-forgetful-request")
        blocker.execute(holding)
        timer = threading.Timer(hold, blocker.commit)
        timer.start()
        try:
            migration()
        finally:
            timer.join()
            blocker.close()

    return run_blocked


def run(args) -> int:
    work = Path(tempfile.mkdtemp(prefix="sovren-bench-safe-"))
    server = services.start_postgres(work / "pg")
    try:
        root = work / "project"
        write_project(root, "".join(f", {k}={v}" for k, v in (("batch_ms", args.batch_ms), ("nice", args.nice))
                                    if v is not None))
        os.environ.update(POSTGRES_URL=server.url, SOVREN_DB_STORES="postgres")
        for var in ("CI", "MONGO_URL", "REDIS_URL", "SOVREN_ENV"):
            os.environ.pop(var, None)
        settings = load_settings(root)
        commands.migrate(settings, "b0")
        t0 = time.perf_counter()
        load(server.url, args.rows, args.accounts)
        print(f"loaded {args.rows:,} operations and {args.accounts:,} accounts in {time.perf_counter() - t0:.1f} s")
        (work / "workload.sql").write_text(WORKLOAD.format(accounts=args.accounts))

        rounds = []
        for number in range(1, args.rounds + 1):
            row = {"baseline": phase(server, work, f"baseline{number}", args.baseline, args)}
            for scenario in args.scenarios:
                for form in ("safe", "naive"):
                    seconds = args.long if scenario in LONG else args.seconds
                    migration = SCENARIOS[scenario](server.url, settings, form, args)
                    row[f"{scenario} {form}"] = phase(server, work, f"{scenario}{form}{number}", seconds, args,
                                                      migration)
                    commands.downgrade(settings, "b0")
                    drop_column(server.url)
            rounds.append(row)
            print(f"round {number}: p99 " + ", ".join(f"{k} {v['p99']:.2f} ms" for k, v in row.items()))
        report(rounds, args)
    finally:
        services.stop(server)
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _migrate(revision: str) -> Callable:
    return lambda url, settings, form, args: lambda: commands.migrate(settings, f"{revision}{form}")


def _reader(url, settings, form, args) -> Callable[[], None]:
    add = (lambda: commands.migrate(settings, "b4safe")) if form == "safe" else (lambda: add_column_naive(url))
    return blocked(url, args.hold, add, holding=READER)


def _blocked(url, settings, form, args) -> Callable[[], None]:
    return blocked(url, args.hold, _migrate("b2")(url, settings, form, args))


# scenario -> (url, settings, "safe" | "naive", args) -> the migration one phase runs
SCENARIOS = {
    "index": _migrate("b1"),     # an index and a foreign key
    "blocked": _blocked,         # the foreign key behind a row lock held for --hold seconds
    "backfill": _migrate("b3"),
    "reader": _reader,           # a column added while a reader of operations stays open --hold seconds
    "type": _migrate("b5"),      # confidence numeric -> float: expand then contract, against ALTER TYPE
}
LONG = {"backfill", "type"}      # phases of --long seconds: the migration walks the whole table
TITLES = {
    "index": "an index and a foreign key, no other transaction open",
    "blocked": "a transaction holding a row lock on accounts for {hold:.1f} s while the foreign key alone is added",
    "backfill": "a backfill of all {rows:,} operations (confidence = confidence + 0)",
    "reader": "a transaction reading operations for {hold:.1f} s while a column is added to it",
    "type": "confidence numeric(5,2) -> float on all {rows:,} operations: expand then contract, against ALTER TYPE",
}


def median_of(rounds: list[dict], phase_name: str, key: str) -> float:
    return statistics.median(r[phase_name][key] for r in rounds)


def report(rounds: list[dict], args) -> None:
    base = median_of(rounds, "baseline", "p99")
    print(f"workload: pgbench, {args.clients} clients at {args.rate} tx/s (an insert into operations, "
          f"a read and an update of accounts per tx); medians of {len(rounds)} round(s)")
    print(f"baseline (no migration): p99 {base:.2f} ms, max {median_of(rounds, 'baseline', 'max'):.2f} ms")
    for scenario in args.scenarios:
        print(f"{TITLES[scenario].format(rows=args.rows, hold=args.hold)}:")
        for form in ("safe", "naive"):
            name = f"{scenario} {form}"
            p99_ms, seconds = median_of(rounds, name, "p99"), median_of(rounds, name, "seconds")
            rate = f", {args.rows / seconds:,.0f} rows/s" if scenario in LONG else ""
            print(f"  {form:>5}: migration {seconds:.1f} s{rate}; p99 {p99_ms:.2f} ms (added {p99_ms - base:+.2f} ms), "
                  f"max {median_of(rounds, name, 'max'):.2f} ms, {median_of(rounds, name, 'n'):.0f} tx during it")
        added = median_of(rounds, f"{scenario} safe", "p99") - base
        target = TARGET_MS if scenario == "index" else BLOCKED_TARGET_MS
        ratio = median_of(rounds, f"{scenario} naive", "p99") / median_of(rounds, f"{scenario} safe", "p99")
        print(f"  target: safe adds < {target:.0f} ms to p99 -> {'met' if added < target else 'MISSED'} "
              f"({added:+.2f} ms); naive/safe p99 ratio {ratio:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=200, help="pgbench transactions per second")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="baseline, safe and naive phases, repeated")
    parser.add_argument("--baseline", type=int, default=8, help="seconds of each no-migration phase")
    parser.add_argument("--seconds", type=int, default=15, help="seconds of each migration phase")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--hold", type=float, default=3.0, help="seconds the blocking transaction stays open")
    parser.add_argument("--long", type=int, default=120, help="seconds of the backfill and type change phases")
    parser.add_argument("--batch-ms", type=float, help="the backfill's target batch duration (default op.backfill's)")
    parser.add_argument("--nice", type=float, help="the backfill's rest per batch second (default op.backfill's)")
    parser.add_argument("--waits", action="store_true",
                        help="sample the workload's wait events (pg_stat_activity) during each migration")
    parser.add_argument("--scenarios", type=lambda v: v.split(","), default=list(SCENARIOS),
                        help=f"comma-separated, from {', '.join(SCENARIOS)} (default: all)")
    args = parse_with_smoke(parser, rows=2_000, accounts=100, rounds=1, baseline=1, seconds=1, warmup=0.2, hold=0.3,
                            long=1)
    unknown = sorted(set(args.scenarios) - set(SCENARIOS))
    if unknown:
        sys.exit(f"unknown scenario {unknown[0]!r} in --scenarios (known: {', '.join(SCENARIOS)})")
    if not find_pg_bin("pgbench"):
        sys.exit("pgbench not found (PostgreSQL client binaries); install postgresql to run this benchmark")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
