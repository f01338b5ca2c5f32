"""Drift again only when something it reads changed: a fingerprint of check's inputs, kept with its answer.

Why: ``check``'s full compare (Alembic autogenerate on the tables it has not
already found in step, postgres/table_forms.py, then the plugins'
comparators) costs 3-5x the bulk catalog read on the 300-table bench
database (bench/doctor.py; 24x before tables in step were skipped), and the
exporter runs it every interval while a production schema almost never changes. So the schema
collection first takes a fingerprint of everything check reads, and runs the
full compare only when it differs from the one its last answer was computed
at; otherwise that answer stands.

The fingerprint, all read in a few round trips:

- Postgres: one query over the catalogs check reads. Every DDL writes new
  tuple versions of catalog rows (new ``xmin`` and ``ctid``) or removes them,
  so an order-independent 64-bit hash sum of (``xmin``, ``ctid``) per catalog
  changes with any DDL, and costs a scan of the catalogs, not reflection.
  Postgres updates some flags in place, without a new tuple version:
  ``pg_index``'s valid/ready/live (CREATE INDEX CONCURRENTLY) and the
  statistics VACUUM and ANALYZE keep in ``pg_class``; the index flags are
  therefore hashed by value, and statistics are not check's business.
  ``pg_roles`` is a view (no ``xmin``): its columns are hashed by value. The
  revision rows (``alembic_version``) and ``current_date`` (partitions
  wanted for the coming months) are part of it too.
- Redis and Mongo (when a server is compared): their whole live state as the
  comparators read it (registry, configuration, consumer groups; collections
  with options and indexes) plus their position and ledger: this read is
  already most of what their compare costs.
- The declarations: path, size and mtime of every file under the declared
  folders and the revision chain, and pyproject.toml.

A part that cannot be read gives no fingerprint: the full compare runs and
reports what failed. ``FULL_COMPARE_AFTER`` bounds how long an answer can
stand even when nothing is seen to change (a belt for what no catalog row
records).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import psycopg

if TYPE_CHECKING:
    from ..core.config import Settings

FULL_COMPARE_AFTER = 900.0  # seconds

# (catalog, the rows of this database that can hold what check compares)
_CATALOGS = (
    "pg_class", "pg_attribute", "pg_attrdef", "pg_constraint", "pg_index", "pg_policy", "pg_trigger",
    "pg_proc", "pg_namespace", "pg_extension", "pg_description", "pg_sequence", "pg_inherits", "pg_type",
    "pg_default_acl", "pg_auth_members", "pg_rewrite", "pg_enum", "pg_event_trigger", "pg_partitioned_table",
)

_ROW_HASH = "hashtextextended(xmin::text || ctid::text, 0)"
_POSTGRES_FINGERPRINT = " UNION ALL ".join(
    [f"SELECT '{name}', count(*), coalesce(sum({_ROW_HASH}), 0) FROM pg_catalog.{name}" for name in _CATALOGS]
    + ["SELECT 'pg_index flags', count(*), coalesce(sum(hashtextextended("
       "indexrelid::text || indisvalid::text || indisready::text || indislive::text, 0)), 0) FROM pg_catalog.pg_index",
       "SELECT 'pg_roles', count(*), coalesce(sum(hashtextextended(r::text, 0)), 0) FROM pg_catalog.pg_roles r",
       "SELECT 'pg_database', 0, hashtextextended(coalesce(datacl::text, '') || datname, 0) FROM pg_catalog.pg_database "
       "WHERE datname = current_database()",
       "SELECT current_date::text || current_schema() || current_user, 0, 0"]
)


def postgres_fingerprint(conn: psycopg.Connection) -> tuple:
    rows = conn.execute(_POSTGRES_FINGERPRINT).fetchall()
    versions = conn.execute("SELECT to_regclass('alembic_version') IS NOT NULL").fetchone()[0]
    revisions = conn.execute("SELECT version_num FROM alembic_version ORDER BY 1").fetchall() if versions else None
    return tuple(rows), tuple(revisions or ())


def declarations_fingerprint(settings: "Settings") -> str:
    digest = hashlib.sha256()
    folders = (settings.postgres_dir, settings.mongo_dir, settings.redis_dir, settings.migrations_dir)
    for folder in folders:
        for path in sorted(_files(folder)):
            stat = os.stat(path)
            digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    pyproject = settings.root / "pyproject.toml"
    if pyproject.is_file():
        digest.update(f"{pyproject.stat().st_mtime_ns}".encode())
    return digest.hexdigest()


def _files(folder: Any) -> list[str]:
    found = []
    for where, dirs, names in os.walk(folder):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found += [os.path.join(where, name) for name in names if not name.endswith(".pyc")]
    return found


def redis_fingerprint(settings: "Settings") -> str:
    from ..redis.backend import RedisBackend
    from ..redis.declared import load_declarations
    from ..redis.live import read_live

    backend = RedisBackend(settings)
    backend.connect()
    try:
        live = read_live(backend, load_declarations(settings.redis_dir))
        return _digest(live, backend.position(), sorted(backend.ledger_keys("")))
    finally:
        backend.close()


def mongo_fingerprint(settings: "Settings") -> str:
    from ..mongo.backend import MongoBackend
    from ..mongo.live import introspect

    backend = MongoBackend(settings)
    backend.connect()
    try:
        return _digest(introspect(backend.db), backend.position(), sorted(backend.ledger_keys("")))
    finally:
        backend.close()


def _digest(*parts: Any) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def fingerprint(settings: "Settings") -> tuple | None:
    """Everything ``check`` reads, in a comparable value; None when any part could not be read."""
    from .postgres import connect

    try:
        with connect(settings.postgres_url) as conn:
            parts: list[Any] = [declarations_fingerprint(settings), postgres_fingerprint(conn)]
        for store, read in (("redis", redis_fingerprint), ("mongo", mongo_fingerprint)):
            if store in settings.stores and settings.configured(store):
                parts.append(read(settings))
    except Exception:  # noqa: BLE001 - the full compare runs and reports the failure in its own words
        return None
    return tuple(parts)


@dataclass
class _Answer:
    key: tuple
    value: Any
    at: float


class DriftCache:
    """The last full compare's answer and the fingerprint it was computed at (one per process)."""

    def __init__(self) -> None:
        self._answers: dict[Any, _Answer] = {}
        self._lock = threading.Lock()
        self.full_compares = 0

    def answer(self, settings: "Settings", compute: Callable[[], Any]) -> tuple[Any, bool]:
        """(check's answer, whether it came from the cache)."""
        key = fingerprint(settings)
        scope = (settings.root, tuple(sorted(settings.urls.items(), key=lambda kv: kv[0])), settings.stores)
        with self._lock:
            last = self._answers.get(scope)
        if key is not None and last is not None and last.key == key \
                and time.monotonic() - last.at < FULL_COMPARE_AFTER:
            return last.value, True
        value = compute()
        self.full_compares += 1
        if key is not None:
            with self._lock:
                self._answers[scope] = _Answer(key, value, time.monotonic())
        return value, False

    def forget(self) -> None:
        with self._lock:
            self._answers.clear()


CACHE = DriftCache()
