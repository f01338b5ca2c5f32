"""Postgres sessions and the compliance book-keeping tables (schema ``sovren_db``).

- ``sovren_db.erasures``: one row per erasure step done, keyed by a salted
  hash of the subject (never the id), with the step's counts;
- ``sovren_db.erasure_salt``: the database's random salt for those hashes;
- ``sovren_db.key_rotations``: per key pair fingerprint (never a key) and
  encrypted column, how far a rotation got.

The tables live outside the current schema, so ``check`` never calls them drift.
They are created on demand by the login user; data steps run as the declared
BYPASSRLS role through ``SET LOCAL ROLE`` (:func:`sovren_db.postgres.roles.act_as`, which rolls
the transaction back before refusing), never by switching row security off.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import psycopg

from ..core.errors import Refused
from ..env import connect
from ..postgres.roles import act_as  # noqa: F401  (erasure and rotation act as the BYPASSRLS role)

if TYPE_CHECKING:
    from ..core.config import Settings

SCHEMA = "sovren_db"
ERASURES = f"{SCHEMA}.erasures"
SALT = f"{SCHEMA}.erasure_salt"
ROTATIONS = f"{SCHEMA}.key_rotations"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {ERASURES} (
    subject_hash text NOT NULL,
    step text NOT NULL,
    counts jsonb NOT NULL DEFAULT '{{}}',
    done_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (subject_hash, step)
);
CREATE TABLE IF NOT EXISTS {SALT} (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    salt bytea NOT NULL
);
CREATE TABLE IF NOT EXISTS {ROTATIONS} (
    fingerprint text NOT NULL,
    target text NOT NULL,
    last_key jsonb,
    rows_done bigint NOT NULL DEFAULT 0,
    finished_at timestamptz,
    verified_at timestamptz,
    PRIMARY KEY (fingerprint, target)
);
"""


@contextmanager
def postgres_session(settings: "Settings") -> Iterator[psycopg.Connection]:
    """A psycopg connection (transactions, not autocommit) with the configured timeouts."""
    engine, connection = connect(settings)
    raw = connection.connection.driver_connection
    try:
        raw.execute("SELECT set_config('lock_timeout', %s, false), set_config('statement_timeout', %s, false)",
                    (settings.lock_timeout, settings.statement_timeout))
        raw.commit()
        yield raw
    finally:
        try:
            raw.rollback()
        finally:
            connection.close()
            engine.dispose()


def ensure_tables(conn: psycopg.Connection) -> None:
    """Create the book-keeping tables unless they exist (then a login with DML grants on them is enough)."""
    try:
        present = conn.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL "
                               "AND to_regclass(%s) IS NOT NULL", (ERASURES, SALT, ROTATIONS)).fetchone()[0]
        if not present:
            conn.execute(_DDL)
        conn.execute(f"INSERT INTO {SALT} (salt) VALUES (%s) ON CONFLICT DO NOTHING",
                     (secrets.token_bytes(32),))
        conn.commit()
    except psycopg.errors.InsufficientPrivilege:
        conn.rollback()
        raise Refused(f"Postgres user {conn.info.user!r} may not create the {SCHEMA} schema that records "
                      "compliance progress (GRANT CREATE ON DATABASE, or create it once as the owner).") from None


def subject_hash(conn: psycopg.Connection, subject: str) -> str:
    """HMAC-SHA256 of the subject id under the database's salt: what the ledger and the audit event hold."""
    salt = conn.execute(f"SELECT salt FROM {SALT}").fetchone()[0]
    return hmac.new(bytes(salt), subject.encode(), hashlib.sha256).hexdigest()


# -- erasure ledger -----------------------------------------------------------

def erasure_steps(conn: psycopg.Connection, subject: str) -> dict[str, tuple[dict, object]]:
    """step -> (counts, done_at) of the steps already done for this subject hash."""
    rows = conn.execute(f"SELECT step, counts, done_at FROM {ERASURES} WHERE subject_hash = %s", (subject,))
    return {step: (counts, done_at) for step, counts, done_at in rows}


def record_step(conn: psycopg.Connection, subject: str, step: str, counts: dict) -> None:
    """Record a step inside the caller's transaction (the caller commits it with the step's own work)."""
    conn.execute(f"INSERT INTO {ERASURES} (subject_hash, step, counts) VALUES (%s, %s, %s) "
                 "ON CONFLICT (subject_hash, step) DO UPDATE SET counts = EXCLUDED.counts, done_at = clock_timestamp()",
                 (subject, step, json.dumps(counts)))


def forget_steps(conn: psycopg.Connection, subject: str, steps: list[str] | None = None) -> None:
    if steps is None:
        conn.execute(f"DELETE FROM {ERASURES} WHERE subject_hash = %s", (subject,))
    else:
        conn.execute(f"DELETE FROM {ERASURES} WHERE subject_hash = %s AND step = ANY(%s)", (subject, steps))
    conn.commit()
