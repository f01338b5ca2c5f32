"""Benchmark: what the issue-14 guards cost and save, each against its baseline in the same run.

Starts its own PostgreSQL on a free loopback port and applies Sovren's schema (for
``sovren_has_card_number``), then measures, best of --repeat:

- PCI: COPY of --rows payment-like rows into a table whose three text columns carry
  ``CHECK (NOT sovren_has_card_number(...))`` and ``card_last4`` its four-digit check,
  against the same table without them: the price of refusing card data on every write;
- foreign key index: DELETE of --deletes parent rows, one statement each (as an
  application or ``seed --reset`` deletes), while a child table of --children rows
  references the parents, with and without an index on the referencing column: what
  ``fk-unindexed`` / PG401 save (each delete without it scans the child table).

Prints seconds and ratios. Stops its server.

    .venv/bin/python bench/schema_guards.py [--rows 200000] [--children 200000] [--deletes 300] [--repeat 3]
    .venv/bin/python bench/schema_guards.py --smoke      # tiny sizes, a few seconds
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from sovren_db import commands, services  # noqa: E402
from sovren_db.core.config import load_settings  # noqa: E402
from sovren_db.core.urls import with_database  # noqa: E402
from smoke import parse_with_smoke  # noqa: E402

PLAIN = "CREATE TABLE {name} (payment_id uuid PRIMARY KEY, provider varchar(50) NOT NULL, " \
        "provider_token text NOT NULL, card_last4 char(4), raw_card_number text)"
GUARDS = ("ALTER TABLE {name} ADD CHECK (NOT sovren_has_card_number(provider)), "
          "ADD CHECK (NOT sovren_has_card_number(provider_token)), "
          "ADD CHECK (NOT sovren_has_card_number(raw_card_number)), ADD CHECK (card_last4 ~ '^[0-9]{{4}}$')")


def payment_rows(count: int) -> list[tuple]:
    providers = ("stripe", "adyen", "braintree", "paypal")
    return [(uuid.uuid4(), providers[i % 4], "tok_" + base64.urlsafe_b64encode(os.urandom(18)).decode(),
             f"{i % 10000:04d}", None) for i in range(count)]


def time_copy(conn: psycopg.Connection, name: str, guarded: bool, rows: list[tuple]) -> float:
    conn.execute(f"DROP TABLE IF EXISTS {name}")
    conn.execute(PLAIN.format(name=name))
    if guarded:
        conn.execute(GUARDS.format(name=name))
    began = time.perf_counter()
    with conn.cursor().copy(f"COPY {name} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    return time.perf_counter() - began


def time_deletes(conn: psycopg.Connection, children: int, deletes: int, indexed: bool) -> float:
    conn.execute("DROP TABLE IF EXISTS bench_child, bench_parent")
    conn.execute("CREATE TABLE bench_parent (id uuid PRIMARY KEY)")
    conn.execute("CREATE TABLE bench_child (id uuid PRIMARY KEY, parent_id uuid REFERENCES bench_parent (id))")
    conn.execute("INSERT INTO bench_parent SELECT gen_random_uuid() FROM generate_series(1, %s)",
                 (children + deletes,))
    conn.execute("INSERT INTO bench_child SELECT gen_random_uuid(), id FROM bench_parent LIMIT %s", (children,))
    if indexed:
        conn.execute("CREATE INDEX ON bench_child (parent_id)")
    conn.execute("ANALYZE bench_parent, bench_child")
    victims = [r[0] for r in conn.execute("SELECT p.id FROM bench_parent p WHERE NOT EXISTS "
                                          "(SELECT 1 FROM bench_child c WHERE c.parent_id = p.id)")]
    began = time.perf_counter()
    for victim in victims:
        conn.execute("DELETE FROM bench_parent WHERE id = %s", (victim,))
    return time.perf_counter() - began


def run(url: str, rows: int, children: int, deletes: int, repeat: int) -> None:
    settings = load_settings(ROOT, environ={"POSTGRES_URL": url, "SOVREN_DB_STORES": "postgres"})
    commands.migrate(settings)
    data = payment_rows(rows)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET statement_timeout = 0")
        plain = min(time_copy(conn, "bench_plain", False, data) for _ in range(repeat))
        guarded = min(time_copy(conn, "bench_guarded", True, data) for _ in range(repeat))
        print(f"PCI checks: COPY {rows:,} rows  plain {plain:7.3f} s   guarded {guarded:7.3f} s   "
              f"ratio guarded / plain {guarded / plain:5.2f}  ({(guarded - plain) / rows * 1e6:.1f} us a row)")
        bare = min(time_deletes(conn, children, deletes, False) for _ in range(repeat))
        indexed = min(time_deletes(conn, children, deletes, True) for _ in range(repeat))
        print(f"FK index: {deletes:,} parent deletes, {children:,} child rows  no index {bare:7.3f} s   "
              f"indexed {indexed:7.3f} s   ratio no index / indexed {bare / indexed:7.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--children", type=int, default=200_000)
    parser.add_argument("--deletes", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parse_with_smoke(parser, rows=2_000, children=5_000, deletes=50, repeat=1)
    with tempfile.TemporaryDirectory(prefix="sovren-bench-guards-") as tmp:
        server = services.start_postgres(Path(tmp) / "postgres")
        try:
            run(with_database(server.url, "sovren_ai"), args.rows, args.children, args.deletes, args.repeat)
        finally:
            services.stop(server)


if __name__ == "__main__":
    main()
