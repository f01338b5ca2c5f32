"""One migration runner at a time, safe through a transaction-pooling PgBouncer.

A session-level advisory lock stays on whichever pooled server connection took
it: the unlock lands on another one and the next runner waits forever (the
known Flyway / Rails / Atlas failure). So the lock is a row with an owner and
an expiry, ``sovren_db.migration_lease``, held only by statements that each
complete in their own transaction:

- acquire: delete an expired row, insert ours (``ON CONFLICT DO NOTHING``);
- a heartbeat thread, on its own connection, pushes ``expires_at`` forward every
  third of the lease; a runner killed with ``kill -9`` stops renewing and the next
  runner takes over once the lease has expired (``SOVREN_LOCK_LEASE`` seconds,
  default 15);
- every transaction of the runner first reads the row ``FOR KEY SHARE`` and
  checks it is still the owner: a runner whose lease was taken stops before it
  changes anything, and the taker's ``DELETE`` waits for that transaction to end.
  The same transaction takes the transaction-level advisory lock that
  ``sovren-db partitions`` takes, and sets its ``lock_timeout`` and
  ``statement_timeout`` with ``SET LOCAL`` (session settings would leak to the
  pool's other clients).

Why not the library's: Alembic has no runner lock at all, and the advisory lock
every tool uses is the very thing that fails through a pooler.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from ..core.errors import ConfigError, MigrationFailed, Refused, first_line
from ..core.urls import redact, redact_text
from .replicas import refuse_standby

SCHEMA = "sovren_db"
TABLE = f"{SCHEMA}.migration_lease"
NAME = "migrate"
DEFAULT_SECONDS = 15.0
_DDL_LOCK = 0x53_76_4C_73  # serialises the CREATE ... IF NOT EXISTS below (they race otherwise)

_DDL = f"""
SELECT pg_advisory_xact_lock({_DDL_LOCK});
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    name text PRIMARY KEY,
    owner text NOT NULL,
    holder text NOT NULL,
    acquired_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    expires_at timestamptz NOT NULL
)
"""


def lease_seconds() -> float:
    raw = os.environ.get("SOVREN_LOCK_LEASE", "")
    if not raw:
        return DEFAULT_SECONDS
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if value < 1:
        raise ConfigError(f"SOVREN_LOCK_LEASE {raw!r} must be a number of seconds, 1 or more.")
    return value


@dataclass
class Lease:
    """The migration lease of one runner; ``acquire`` waits for it, ``release`` gives it back."""

    url: str
    seconds: float = field(default_factory=lease_seconds)
    owner: str = field(default_factory=lambda: uuid.uuid4().hex)
    holder: str = field(default_factory=lambda: f"{socket.gethostname()} pid {os.getpid()}")
    lost: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def acquire(self, poll: float = 0.2) -> None:
        with _connect(self.url) as conn:
            refuse_standby(conn, self.url)
            try:
                conn.execute(_DDL)
            except psycopg.errors.InsufficientPrivilege as exc:
                raise MigrationFailed(
                    f"Taking the migration lease {TABLE} at {redact(self.url)} failed: "
                    f"{redact_text(first_line(exc), self.url)} (the role that migrates must be able to create "
                    f"schema {SCHEMA}, or the schema owner must have created it once).") from None
            told = False
            while not self._try(conn):
                if not told:
                    print(f"sovren-db: another migration holds the lease ({self._current(conn)}); waiting...",
                          file=sys.stderr)
                    told = True
                time.sleep(poll)
        self._thread = threading.Thread(target=self._renew, name="sovren-db lease", daemon=True)
        self._thread.start()

    def _try(self, conn: psycopg.Connection) -> bool:
        conn.execute(f"DELETE FROM {TABLE} WHERE name = %s AND expires_at < clock_timestamp()", (NAME,))
        row = conn.execute(
            f"INSERT INTO {TABLE} (name, owner, holder, expires_at) "
            "VALUES (%s, %s, %s, clock_timestamp() + make_interval(secs => %s)) "
            "ON CONFLICT (name) DO NOTHING RETURNING owner",
            (NAME, self.owner, self.holder, self.seconds)).fetchone()
        return row is not None

    def _current(self, conn: psycopg.Connection) -> str:
        row = conn.execute(f"SELECT holder, greatest(0, extract(epoch FROM expires_at - clock_timestamp())) "
                           f"FROM {TABLE} WHERE name = %s", (NAME,)).fetchone()
        return f"{row[0]}, expires in {float(row[1]):.0f} s unless renewed" if row else "just released"

    def _renew(self) -> None:
        conn = None
        while not self._stop.wait(self.seconds / 3):
            try:
                conn = conn or _connect(self.url)
                renewed = conn.execute(
                    f"UPDATE {TABLE} SET expires_at = clock_timestamp() + make_interval(secs => %s) "
                    "WHERE name = %s AND owner = %s", (self.seconds, NAME, self.owner)).rowcount
                self.lost = self.lost or not renewed
            except psycopg.Error:  # the next beat tries again on a new connection; the expiry decides
                conn = _close(conn)
        _close(conn)

    def guard_sql(self, lock_timeout: str, statement_timeout: str, advisory_key: int) -> sql.Composed:
        """What each transaction of the runner runs first (one round trip); its last row is the owner."""
        return sql.SQL(
            "SELECT set_config('lock_timeout', {lt}, true), set_config('statement_timeout', {st}, true), "
            # a runner killed mid-statement: its backend notices within a second and rolls back (PG 14+)
            "set_config('client_connection_check_interval', '1s', true); "
            "SELECT pg_advisory_xact_lock({key}); "
            "SELECT owner FROM {table} WHERE name = {name} FOR KEY SHARE"
        ).format(lt=sql.Literal(lock_timeout), st=sql.Literal(statement_timeout), key=sql.Literal(advisory_key),
                 table=sql.SQL(TABLE), name=sql.Literal(NAME))

    def guard(self, dbapi_connection: psycopg.Connection, lock_timeout: str, statement_timeout: str,
              advisory_key: int) -> None:
        """Run :meth:`guard_sql` at the start of a transaction and :meth:`confirm` its answer."""
        cursor = dbapi_connection.cursor()
        cursor.execute(self.guard_sql(lock_timeout, statement_timeout, advisory_key))
        while cursor.nextset():
            pass
        row = cursor.fetchone()
        self.confirm(row[0] if row else None)

    def confirm(self, owner: str | None) -> None:
        if owner != self.owner:
            raise Refused(f"This migration lost its lease in {TABLE} (its heartbeat could not renew it within "
                          f"{self.seconds:.0f} s), so another runner may have taken over: nothing more was applied.")

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            with _connect(self.url) as conn:
                conn.execute(f"DELETE FROM {TABLE} WHERE name = %s AND owner = %s", (NAME, self.owner))
        except psycopg.Error:
            pass  # the lease then expires on its own


def _connect(url: str) -> psycopg.Connection:
    try:
        # prepare_threshold=None: a transaction-mode pooler cannot keep a prepared statement between transactions
        return psycopg.connect(url, autocommit=True, connect_timeout=10, prepare_threshold=None,
                               application_name="sovren-db lease")
    except psycopg.OperationalError as exc:
        from ..core.errors import StoreUnavailable

        raise StoreUnavailable("postgres", url, str(exc)) from None


def _close(conn: psycopg.Connection | None) -> None:
    if conn is not None:
        conn.close()
    return None
