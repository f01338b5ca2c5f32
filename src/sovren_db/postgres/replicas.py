"""Hot standbys: refuse to migrate one, and wait (bounded) until every replica replayed a revision."""

from __future__ import annotations

import time

import psycopg

from ..core.errors import MigrationFailed, Refused
from ..core.urls import redact

_REPLICAS = """
SELECT coalesce(nullif(application_name, ''), client_addr::text, 'pid ' || pid),
       replay_lsn IS NOT NULL AND replay_lsn >= %(target)s::pg_lsn,
       pg_wal_lsn_diff(%(target)s::pg_lsn, coalesce(replay_lsn, '0/0'::pg_lsn))
FROM pg_stat_replication ORDER BY 1
"""


def refuse_standby(conn: psycopg.Connection, url: str) -> None:
    if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
        raise Refused(f"Postgres at {redact(url)} is a hot standby (read-only replica): migrate refused; "
                      "point POSTGRES_URL at the primary.")


def wait_for_replicas(conn: psycopg.Connection, revision: str, timeout: float, poll: float = 0.05) -> str:
    """Wait until every replica streaming from ``conn``'s server replayed the WAL written so far;
    returns one line with the lag seen. Past ``timeout`` seconds, one sentence naming the replicas behind."""
    # The insert position, not pg_current_wal_lsn() (what is written out): with synchronous_commit off
    # a commit can sit in the WAL buffers, behind the write position, for up to wal_writer_delay.
    target = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()[0]
    started = time.monotonic()
    first_behind: dict[str, int] = {}
    while True:
        rows = conn.execute(_REPLICAS, {"target": target}).fetchall()
        for name, _, behind in rows:
            first_behind.setdefault(name, int(behind))
        waited = time.monotonic() - started
        late = [name for name, done, _ in rows if not done]
        if not late:
            break
        if waited > timeout:
            raise MigrationFailed(f"Revision {revision} is applied on the primary, but replica "
                                  f"{', '.join(late)} had not replayed it after {timeout:.0f} s (--wait-replicas).")
        time.sleep(poll)
    if not rows:
        return f"{revision}: no replica is streaming from this primary; nothing to wait for"
    lags = ", ".join(f"{name} {first_behind[name]} bytes behind" for name, _, _ in rows)
    return f"{revision}: replayed by every replica after {waited * 1000:.0f} ms (at commit: {lags})"


def wait_after(url: str, revision: str, timeout: float) -> str:
    """:func:`wait_for_replicas` on a connection of its own to the primary at ``url``."""
    with psycopg.connect(url, autocommit=True, connect_timeout=10, prepare_threshold=None) as conn:
        return wait_for_replicas(conn, revision, timeout)
