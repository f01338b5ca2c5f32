"""Benchmark: `sovren-db audit verify` against the plain G.2 query, on a large audit chain.

Starts its own PostgreSQL on a free loopback port, applies Sovren's schema,
then builds a hash chain of --rows events (2,000,000 by default) quickly: the
rows are generated client-side exactly as ``sovren_audit_chain`` writes them
(format 3: canonical jsonb text holding every column, the chain and the previous
hash, hash = sha256(payload || event_id), on the CHAINS chains of an empty log's
fork: event i on chain (i - 1) % CHAINS + 1) and COPYed in (audit_log has no INSERT
trigger; its CHECK constraint audit_log_columns_match accepts each row only if
its columns are its payload's), then every chain's head is set to its last one. It checks that the
chain the server's own function appends to ends where the generation left it, then
measures in the same run, best of --repeat:

- the verification (one streamed pass: hash, link, gaps, and every column against the payload),
- G.2's query (``WHERE hash != encode(digest(event_payload || event_id::text, 'sha256'), 'hex')``),
  which checks the hash only, on the server,

and prints rows/s of each, their ratio and the projected time for 10 million rows.
Stops its server.

    .venv/bin/python bench/audit_verify.py [--rows 2000000] [--repeat 1] [--smoke]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from smoke import parse_with_smoke  # noqa: E402

from sovren_db import commands, services  # noqa: E402
from sovren_db.compliance.audit_format import CHAINS  # noqa: E402
from sovren_db.compliance.audit_verify import stream_chain  # noqa: E402
from sovren_db.core.config import load_settings  # noqa: E402
from sovren_db.core.urls import with_database  # noqa: E402

G2 = ("SELECT event_id, created_at, hash FROM audit_log "
      "WHERE hash != encode(digest(event_payload || event_id::text, 'sha256'),'hex')")
TEN_MILLION = 10_000_000
TARGET = 100_000  # events/s on 2,000,000 events
CHUNK = 20_000
COLUMNS = ("event_id", "created_at", "table_name", "action", "user_id", "actor", "accessed_at", "query",
           "event_payload", "prev_hash", "hash")
CHANGED = '["confidence", "executed_at", "operation_id", "parameters", "result", "user_id"]'


def chain_lines(rows: int, start: datetime, heads: dict):
    """COPY text of ``rows`` chained events, CHUNK rows at a time; ``heads`` gets each chain's (last id, hash)."""
    users = [str(uuid.UUID(int=i * 7919 + 1)) for i in range(1000)]
    sha256 = hashlib.sha256
    lines = []
    query = "INSERT INTO operations (operation_id, user_id, parameters) VALUES ($1, $2, $3)"
    for i in range(1, rows + 1):
        at = (start + timedelta(microseconds=i)).isoformat()
        if "." in at:  # as jsonb prints a timestamp: no trailing zeros in the fraction
            at = at.rstrip("0").rstrip(".")
        user = users[i % 1000]
        chain = (i - 1) % CHAINS + 1
        prev = heads.get(chain, (None, None))[1]
        # format 3 (compliance/audit_format.py), keys in jsonb's order: by length, then bytes
        payload = ('{"v": 3, "at": "%s", "actor": "sovren", "chain": %d, "query": "%s", "table": "operations", '
                   '"action": "INSERT", "details": {"key": {"executed_at": "%s", "operation_id": "%s"}, "changed": '
                   '%s}, "user_id": "%s", "prev_hash": "%s", "accessed_at": "%s"}'
                   % (at, chain, query, at[:19], uuid.UUID(int=i), CHANGED, user, prev or "", at))
        digest = sha256((payload + str(i)).encode()).hexdigest()
        heads[chain] = (i, digest)
        previous = prev or "\\N"
        lines.append(f"{i}\t{at}+00\toperations\tINSERT\t{user}\tsovren\t{at}+00\t{query}\t{payload}\t"
                     f"{previous}\t{digest}")
        if len(lines) == CHUNK:
            yield "\n".join(lines) + "\n"
            lines = []
    if lines:
        yield "\n".join(lines) + "\n"


def build_chain(url: str, rows: int) -> tuple[float, str]:
    began = time.perf_counter()
    with psycopg.connect(url) as conn:
        start = conn.execute("SELECT date_trunc('month', now()) + interval '1 day'").fetchone()[0]
        heads: dict = {}
        with conn.cursor().copy(f"COPY audit_log ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for text in chain_lines(rows, start.astimezone(timezone.utc).replace(tzinfo=None), heads):
                copy.write(text.encode())
        for chain, (last_id, digest) in heads.items():
            conn.execute("UPDATE audit_chain_head SET next_id = %s, hash = %s WHERE chain = %s",
                         (last_id + CHAINS, digest, chain))
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE audit_log")
        # the server's own function appends on top of the generated chain: the chain is the real format
        appended = conn.execute("SELECT sovren_audit_append('operations', 'INSERT', NULL, '{}'::jsonb)").fetchone()[0]
        chained = conn.execute("SELECT prev_hash FROM audit_log WHERE event_id = %s", (appended,)).fetchone()[0]
    chain = (appended - 1) % CHAINS + 1
    if chained != heads[chain][1] or appended != heads[chain][0] + CHAINS:
        raise SystemExit("the generated chains do not end where sovren_audit_append continues them")
    return time.perf_counter() - began, chained


def time_verify(url: str) -> tuple[float, int]:
    with psycopg.connect(url) as conn:
        report = stream_chain(conn)
    if report.broken is not None:
        raise SystemExit(f"the generated chain is broken at {report.broken}")
    return report.seconds, report.rows


def time_g2(url: str) -> tuple[float, int]:
    began = time.perf_counter()
    with psycopg.connect(url) as conn:
        conn.execute("SET statement_timeout = 0")
        bad = conn.execute(G2).fetchall()
    if bad:
        raise SystemExit(f"G.2 found {len(bad)} altered rows in the generated chain")
    return time.perf_counter() - began, 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    args = parse_with_smoke(parser, rows=2_000, repeat=1)
    with tempfile.TemporaryDirectory(prefix="sovren-bench-audit-") as tmp:
        server = services.start_postgres(Path(tmp) / "postgres")
        try:
            run(with_database(server.url, "sovren_ai"), args.rows, args.repeat)
        finally:
            services.stop(server)


def run(url: str, rows: int, repeat: int) -> None:
    settings = load_settings(ROOT, environ={"POSTGRES_URL": url, "SOVREN_DB_STORES": "postgres"})
    commands.migrate(settings)
    built, _ = build_chain(url, rows)
    print(f"built a chain of {rows + 1:,} audit events in {built:.1f} s ({rows / built:,.0f} rows/s)")
    verify_s = min(time_verify(url)[0] for _ in range(repeat))
    g2_s = min(time_g2(url)[0] for _ in range(repeat))
    total = rows + 1
    for name, seconds in (("audit verify (hash + links, streamed)", verify_s), ("G.2 query (hash only, server)", g2_s)):
        print(f"{name:<40} {seconds:8.2f} s {total / seconds:>12,.0f} rows/s   "
              f"10M rows: {TEN_MILLION * seconds / total:6.1f} s")
    print(f"ratio verify / G.2 time: {verify_s / g2_s:.2f}")
    rate = total / verify_s
    print(f"audit verify {rate:,.0f} events/s on {total:,} events: target >= {TARGET:,} events/s "
          f"(issue 13, part 8) {'met' if rate >= TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
