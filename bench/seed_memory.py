"""Benchmark: the seed's peak memory at --scale 10 against --scale 1, in the same run (issue 12.6: at most 1.5x).

Starts its own PostgreSQL and redis-server, migrates Sovren's schema once,
then runs ``sovren-db seed -p PROFILE --scale S --reset`` in a child process
per scale; each child reports its peak resident set (``VmHWM``) at exit: the
whole process as the operating system counts it, interpreter and imports
included. The baseline is the same command at ``--scale 1``; a third child
that only imports the CLI shows the fixed part (what no streaming can reduce).

With ``--trigger-free`` the audit triggers are disabled first: the audit trail stages a transaction's
events as one jsonb value (at most 256 MB), so dev at --scale 10 and perf at --scale 1 (about a million
audited rows in the seed's one transaction) cannot be seeded with them on; the seed process's own memory
is what this measures, and the bounded COPY queue keeps it from depending on the server's speed.

    .venv/bin/python bench/seed_memory.py [--profile ci] [--small 1] [--large 10] [--trigger-free] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from smoke import parse_with_smoke  # noqa: E402

from sovren_db import commands, services  # noqa: E402
from sovren_db.core.config import load_settings  # noqa: E402
from sovren_db.core.urls import with_database  # noqa: E402
from sovren_db.seeds.snapshots import create_database  # noqa: E402


# The child reports its own high-water mark at exit: wait4's ru_maxrss cannot serve, as Linux carries the
# parent's resident set at fork (90 MiB here: this script imported sovren-db) across exec into the child's.
CHILD = """
import atexit, os, sys
def report():
    hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    with open(os.environ["SEED_MEMORY_OUT"], "w") as out:
        out.write(hwm.split()[1])
atexit.register(report)
sys.argv = ["sovren-db", *sys.argv[1:]]
if len(sys.argv) > 1:
    from sovren_db.cli.main import main
    main()
else:
    import sovren_db.cli.main, sovren_db.cli.seed, sovren_db.seeds.engine
"""


def peak_kib(args: list[str], env: dict[str, str], out: Path) -> int:
    """Run the CLI with ``args`` (none: only its imports); its peak resident set in KiB (VmHWM)."""
    done = subprocess.run([sys.executable, "-c", CHILD, *args], cwd=ROOT, env={**env, "SEED_MEMORY_OUT": str(out)},
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"sovren-db {' '.join(args)} exited {done.returncode}: {done.stderr[-500:]}")
    return int(out.read_text())


AUDIT_TRIGGERS = """SELECT format('ALTER TABLE %I.%I DISABLE TRIGGER %I', n.nspname, c.relname, t.tgname)
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND t.tgname LIKE '%\\_audit\\_%'"""


def disable_audit(url: str) -> int:
    """Disable every audit trigger of the database; how many."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        statements = [row[0] for row in conn.execute(AUDIT_TRIGGERS)]
        for statement in statements:
            conn.execute(statement)
    return len(statements)


def project_env(postgres_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL") and k not in ("SOVREN_ENV", "CI")}
    env.update(POSTGRES_URL=postgres_url, REDIS_URL=redis_url, SOVREN_DB_STORES="postgres,redis")
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="ci")
    parser.add_argument("--small", type=float, default=1.0)
    parser.add_argument("--large", type=float, default=10.0)
    parser.add_argument("--trigger-free", action="store_true", help="disable the audit triggers first")
    args = parse_with_smoke(parser, small=0.1, large=1.0)
    with tempfile.TemporaryDirectory(prefix="sovren-bench-seedmem-") as tmp:
        postgres = services.start_postgres(Path(tmp) / "postgres")
        redis_server = services.start_redis(Path(tmp) / "redis")
        try:
            url = with_database(postgres.url, "bench_seed_memory")
            create_database(with_database(postgres.url, "postgres"), "bench_seed_memory")
            env = project_env(url, redis_server.url)
            commands.migrate(load_settings(ROOT, environ=env))
            if args.trigger_free and not disable_audit(url):
                raise SystemExit("--trigger-free: no audit trigger found to disable")
            seed, out = ["seed", "-p", args.profile, "--reset", "--scale"], Path(tmp) / "peak"
            fixed = peak_kib([], env, out)
            small = peak_kib(seed + [str(args.small)], env, out)
            large = peak_kib(seed + [str(args.large)], env, out)
        finally:
            services.stop(postgres)
            services.stop(redis_server)
            shutil.rmtree(Path(postgres.data_dir).parent, ignore_errors=True)
    print(f"seed -p {args.profile}{' (audit triggers off)' if args.trigger_free else ''}: peak RSS --scale {args.small:g} {small / 1024:.0f} MiB, --scale {args.large:g} "
          f"{large / 1024:.0f} MiB (imports alone {fixed / 1024:.0f} MiB): {large / small:.2f}x (target <= 1.5); "
          f"above the imports {(large - fixed) / max(small - fixed, 1):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
