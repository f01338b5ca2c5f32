"""Helpers of the compliance tests: pick a subject, fingerprint everyone else's data."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

USER_TABLES = ("users", "subscriptions", "transactions", "payments", "operations")


def subject_with_everything(pg_url: str, redis_url: str | None = None) -> str:
    """A seeded user with rows in every table (and a session in Redis when given)."""
    with psycopg.connect(pg_url) as conn:
        candidates = [str(r[0]) for r in conn.execute(
            "SELECT u.user_id FROM users u WHERE " + " AND ".join(
                f"EXISTS (SELECT 1 FROM {t} x WHERE x.user_id = u.user_id)" for t in USER_TABLES[1:])
            + " ORDER BY u.user_id")]
    assert candidates, "the ci seed has no user with rows in every table"
    if redis_url is None:
        return candidates[0]
    client = redis.Redis.from_url(redis_url)
    try:
        with_devices = [c for c in candidates
                        if client.exists(f"session:devices:{c}") and client.exists(f"session:{c}")]
    finally:
        client.close()
    assert with_devices, "the ci seed has no user with a session and devices"
    return with_devices[0]


def subject_counts(pg_url: str, subject: str) -> dict[str, int]:
    with psycopg.connect(pg_url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t} WHERE user_id = %s", (subject,)).fetchone()[0]
                for t in USER_TABLES}


def others_fingerprint(pg_url: str, subject: str, audit_up_to: list[int] | None = None) -> dict[str, str]:
    """A digest per table of every row not belonging to ``subject`` (audit rows written before a ``last_event``)."""
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        found = {t: conn.execute(f"SELECT count(*) || ':' || md5(string_agg(t::text, '|' ORDER BY t::text)) "
                                 f"FROM {t} AS t WHERE user_id <> %s", (subject,)).fetchone()[0]
                 for t in USER_TABLES}
        if audit_up_to is not None:
            found["audit_log"] = conn.execute(
                "SELECT count(*) || ':' || md5(string_agg(t::text, '|' ORDER BY event_id)) FROM audit_log t "
                f"WHERE {WRITTEN_BEFORE}", (audit_up_to,)).fetchone()[0]
    return found


def last_event(pg_url: str) -> list[int]:
    """Where the audit trail stands: each chain's next event id, chains 1 to 8 (revision 7c3e9a41f0b2: ids grow
    within a chain only, so a later event may have a smaller id than an earlier one on another chain)."""
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT array_agg(next_id ORDER BY chain) FROM audit_chain_head").fetchone()[0]


# An event written before / since the position ``last_event`` gave (its chain's next id then): chain k's ids are
# k modulo 8; the events of before the fork have smaller ids than every chain's first.
WRITTEN_BEFORE = "event_id < (%s::bigint[])[(event_id - 1) %% 8 + 1]"
WRITTEN_SINCE = "event_id >= (%s::bigint[])[(event_id - 1) %% 8 + 1]"


def redis_keys(redis_url: str) -> dict[bytes, bytes]:
    """Every key with its DUMP (value, not TTL)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return {key: client.dump(key) for key in client.scan_iter(count=1000)}
    finally:
        client.close()


def redis_fingerprint(redis_url: str, subject: str) -> str:
    """Everyone else's keys: those not named by the subject, without the stream entries and values naming it."""
    keys = redis_keys(redis_url)
    client = redis.Redis.from_url(redis_url)
    digest = hashlib.sha256()
    try:
        for key in sorted(k for k in keys if subject.encode() not in k):
            content = _others_content(client, key, keys[key], subject.encode())
            if content is not None:
                digest.update(key + b"\0" + content)
    finally:
        client.close()
    return digest.hexdigest()


def _others_content(client: redis.Redis, key: bytes, dump: bytes, subject: bytes) -> bytes | None:
    """What of the key is not the subject's (None: the whole key names the subject)."""
    kind = client.type(key)
    if kind == b"stream":
        return repr([e for e in client.xrange(key) if subject not in e[1].values()]).encode()
    if kind == b"hash":
        values = client.hgetall(key)
        return None if subject in values.values() else repr(sorted(values.items())).encode()
    if kind == b"string":
        value = client.get(key) or b""
        return None if subject in value else value
    return dump


def erase_events(pg_url: str) -> list[tuple]:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT event_id, user_id, event_payload, query FROM audit_log WHERE action = 'ERASE'"
                            ).fetchall()


@contextmanager
def login_role(pg_url: str, name: str, *, member_of: str | None = None) -> Iterator[str]:
    """A LOGIN role that may create schemas in the test's database (and act as ``member_of``); its URL."""
    password = f"{name}-pw"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"DROP ROLE IF EXISTS {name}")
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'" + (f" IN ROLE {member_of}" if member_of else ""))
        conn.execute(f'GRANT CREATE ON DATABASE "{conn.info.dbname}" TO {name}')
    parts = urlsplit(pg_url)
    try:
        yield urlunsplit(parts._replace(netloc=f"{name}:{password}@{parts.hostname}:{parts.port}"))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {name}")
            conn.execute(f"DROP ROLE {name}")
