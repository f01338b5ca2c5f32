"""``sovren-db snapshot --out F``: a manifest of the triad to check a restore against (Appendix D, H.5).

Per declared Postgres table, Mongo collection and Redis key family: a count
and an order-independent checksum (the sum, modulo 2^64, of the first 64 bits
of a hash of each row, document or key), so the same data restored in any
physical order gives the same manifest; plus each store's revision and the
drift ``check`` reported when the snapshot was taken.

- Postgres: computed by the server in one read-only, repeatable-read
  transaction (one snapshot for every table): ``md5(t::text)`` per row under
  fixed ``TimeZone``, ``DateStyle`` and float settings, as a role that sees
  every tenant's rows.
- MongoDB: sha256 of each document's raw BSON (field order is kept by
  mongodump/mongorestore). In a collection with a declared TTL (an index with
  ``expireAfterSeconds``, or a time series' ``expireAfterSeconds``) the TTL
  monitor may delete documents before a restore is checked, so their sums are
  also kept apart per UTC day of expiry (``expiry``), read against the
  server's clock.
- Redis: sha256 of key, type and value in a canonical form (hash fields, set
  members sorted) per key, SCANned on every master. Keys with a TTL are also
  summed apart, with the earliest expiry, because they may legitimately be
  gone when a restore is checked later.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

import psycopg
from psycopg import sql

from .. import commands
from ..commands import Outcome
from ..core.errors import ConfigError
from ..core.runtime import Runtime
from ..postgres.declared import load_schema
from ..postgres.roles import act_as
from .ledger import postgres_session
from .pii import bypass_role

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..redis.state import KeyFamily

FORMAT = "sovren-db snapshot 1"
MASK = (1 << 64) - 1
UNDECLARED = "(undeclared)"
DETERMINISTIC = ("SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, MDY'; SET LOCAL IntervalStyle = 'postgres'; "
                 "SET LOCAL extra_float_digits = 1; SET LOCAL bytea_output = 'hex'; SET LOCAL statement_timeout = 0")
TABLE_SUM = ("SELECT count(*), COALESCE(sum(('x' || substr(md5(t::text), 1, 16))::bit(64)::bigint), 0)::text "
             "FROM {} AS t")


@dataclass
class Digest:
    """An order-independent digest: count and sum of 64-bit item hashes."""

    count: int = 0
    total: int = 0

    def add(self, item: bytes) -> None:
        self.count += 1
        self.total = (self.total + int.from_bytes(hashlib.sha256(item).digest()[:8], "big")) & MASK

    def to_json(self) -> dict:
        return {"count": self.count, "checksum": f"{self.total:016x}"}


# -- Postgres -----------------------------------------------------------------

def postgres_entries(conn: psycopg.Connection, tables: Iterable[str], role: str) -> dict[str, dict]:
    """Count and checksum of each table in one read-only snapshot; ``{"missing": true}`` for an absent table."""
    conn.rollback()
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        conn.execute(DETERMINISTIC)
        sees_all = conn.execute("SELECT rolsuper OR rolbypassrls FROM pg_roles "
                                "WHERE rolname = current_user").fetchone()[0]
        if not sees_all:
            act_as(conn, role, "Snapshot")
        entries = {}
        for table in tables:
            if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None:
                entries[table] = {"missing": True}
                continue
            count, total = conn.execute(sql.SQL(TABLE_SUM).format(sql.Identifier(table))).fetchone()
            entries[table] = {"count": count, "checksum": f"{int(total) & MASK:016x}"}
        return entries
    finally:
        conn.rollback()
        conn.read_only = False
        conn.isolation_level = None


def postgres_revision(conn: psycopg.Connection) -> list[str]:
    found = conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0]
    revisions = sorted(r[0] for r in conn.execute("SELECT version_num FROM alembic_version")) if found else []
    conn.rollback()
    return revisions


# -- MongoDB ------------------------------------------------------------------

TtlRules = dict[str, list[tuple[str, int]]]   # collection -> (date field, seconds) of each TTL


def mongo_entries(db: Any, names: Iterable[str], ttl: TtlRules | None = None,
                  now: dt.datetime | None = None) -> dict[str, dict]:
    """Count and checksum per collection (``{"missing": true}`` for an absent one); a collection with
    a TTL in ``ttl`` also gets ``expiry`` (see :class:`ExpirySums`), as of ``now`` (default: the
    server's clock)."""
    from bson.codec_options import CodecOptions
    from bson.raw_bson import RawBSONDocument

    ttl = ttl or {}
    existing = set(db.list_collection_names())
    entries = {}
    for name in names:
        if name not in existing:
            entries[name] = {"missing": True}
            continue
        rules = ttl.get(name)
        if rules and now is None:
            now = server_clock(db)
        digest, expiry = Digest(), ExpirySums(now) if rules else None
        collection = db.get_collection(name, codec_options=CodecOptions(document_class=RawBSONDocument))
        for document in collection.find({}, batch_size=1000):
            digest.add(document.raw)
            if expiry is not None:
                expiry.add(document.raw, expires_at(document.raw, rules))
        entries[name] = digest.to_json() if expiry is None else {**digest.to_json(), "expiry": expiry.to_json()}
    return entries


def ttl_rules(settings: "Settings") -> TtlRules:
    """The declared TTLs per collection (``mongo/*.toml``): each index with ``expireAfterSeconds`` on
    its field, and a time series' collection-level ``expireAfterSeconds`` on its timeField."""
    from .pii import mongo_collections

    rules: TtlRules = {}
    for name, spec in mongo_collections(settings).items():
        found = [(index.key[0][0], int(index.ttl)) for index in spec.indexes
                 if index.ttl is not None and len(index.key) == 1]
        timeseries = spec.options.get("timeseries")
        if timeseries and spec.options.get("expireAfterSeconds") is not None:
            found.append((timeseries["timeField"], int(spec.options["expireAfterSeconds"])))
        if found:
            rules[name] = found
    return rules


def server_clock(db: Any) -> dt.datetime:
    """The server's time (``hello``'s localTime, UTC); this machine's when the server does not say."""
    from pymongo.errors import PyMongoError

    try:
        local = db.command("hello").get("localTime")
    except PyMongoError:
        local = None
    if not isinstance(local, dt.datetime):
        return dt.datetime.now(dt.timezone.utc)
    return local if local.tzinfo else local.replace(tzinfo=dt.timezone.utc)


def expires_at(raw: bytes, rules: list[tuple[str, int]]) -> dt.datetime | None:
    """When the TTL monitor may delete this document: the earliest date at a TTL field (the earliest
    of an array of dates) plus that TTL; None when no TTL field holds a date (never deleted).

    A partial TTL index's filter is not evaluated: a document it leaves out counts as
    expiring, which only makes the check looser for it; so does a date outside Python's
    range (years 1-9999).
    """
    import bson
    from bson.codec_options import CodecOptions, DatetimeConversion
    from bson.datetime_ms import DatetimeMS

    options = CodecOptions(tz_aware=True, tzinfo=dt.timezone.utc, datetime_conversion=DatetimeConversion.DATETIME_AUTO)
    document = bson.decode(raw, codec_options=options)
    earliest = dt.datetime.min.replace(tzinfo=dt.timezone.utc)
    found = []
    for path, seconds in rules:
        value: Any = document
        for part in path.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        dates = [earliest if isinstance(v, DatetimeMS) else v for v in (value if isinstance(value, list) else [value])
                 if isinstance(v, (dt.datetime, DatetimeMS))]
        if dates:
            try:
                found.append(min(dates) + dt.timedelta(seconds=seconds))
            except OverflowError:     # within a TTL of year 9999's end: treated as expiring, see above
                found.append(earliest)
    return min(found) if found else None


class ExpirySums:
    """The documents of a collection with a TTL, summed apart by the UTC day they expire on.

    Documents that had expired already when read are counted on that day. With
    these day sums, ``verify-restore`` can tell, whenever it runs, the documents
    that may have expired since (compared by count only) from those that cannot
    have (compared exactly): see :func:`sovren_db.compliance.restore.ttl_split`.
    """

    def __init__(self, now: dt.datetime):
        self.now = now if now.tzinfo else now.replace(tzinfo=dt.timezone.utc)
        self.days: dict[str, Digest] = {}

    def add(self, item: bytes, expires: dt.datetime | None) -> None:
        if expires is None:
            return
        day = max(expires, self.now).date().isoformat()
        self.days.setdefault(day, Digest()).add(item)

    def to_json(self) -> dict:
        return {"now": self.now.isoformat(timespec="seconds"),
                "days": {day: digest.to_json() for day, digest in sorted(self.days.items())}}


# -- Redis ----------------------------------------------------------------------

READERS = {
    b"string": lambda pipe, key: pipe.get(key),
    b"hash": lambda pipe, key: pipe.hgetall(key),
    b"list": lambda pipe, key: pipe.lrange(key, 0, -1),
    b"set": lambda pipe, key: pipe.smembers(key),
    b"zset": lambda pipe, key: pipe.zrange(key, 0, -1, withscores=True),
    b"stream": lambda pipe, key: pipe.xrange(key),
}


def canonical_value(kind: bytes, value: Any) -> bytes:
    """A value as bytes that do not depend on the server's internal order (hash fields, set members)."""
    if kind == b"hash":
        parts = [p for k, v in sorted(value.items()) for p in (k, v)]
    elif kind == b"set":
        parts = sorted(value)
    elif kind == b"zset":
        parts = [p for member, score in value for p in (member, repr(score).encode())]
    elif kind == b"stream":
        parts = [p for entry, fields in value for p in (entry, *(x for kv in sorted(fields.items()) for x in kv))]
    elif kind == b"list":
        parts = list(value)
    else:
        parts = [value or b""]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


class FamilySums:
    def __init__(self) -> None:
        self.all, self.volatile = Digest(), Digest()
        self.expires_from: int | None = None
        self.now = 0                      # the server's clock when the family was read (ms)

    def add(self, item: bytes, expires_at: int | None) -> None:
        self.all.add(item)
        if expires_at is not None:
            self.volatile.add(item)
            self.expires_from = expires_at if self.expires_from is None else min(self.expires_from, expires_at)

    def to_json(self) -> dict:
        return {**self.all.to_json(), "volatile": self.volatile.to_json(), "expires_from": self.expires_from,
                "now": self.now}


def redis_entries(backend: Any, families: list["KeyFamily"], wanted: set[str] | None = None,
                  batch: int = 500) -> dict[str, dict]:
    """Per family (and the keys of none, under ``(undeclared)``): digests of every key on every master;
    with ``wanted``, of those names only (keys are still told apart by every family)."""
    from ..redis.patterns import KeyMatcher

    matcher = KeyMatcher([f.parsed for f in families])
    names = [f.name for f in families] + [UNDECLARED]
    sums = {name: FamilySums() for name in names if wanted is None or name in wanted}
    for _, client in backend.masters():
        seconds, micros = client.time()
        now_ms = seconds * 1000 + micros // 1000
        for family_sums in sums.values():
            family_sums.now = max(family_sums.now, now_ms)
        cursor = 0
        while True:
            cursor, keys = client.scan(cursor, count=batch)
            groups, unknown = matcher.group(keys)
            named = [(families[i].name, k) for i, ks in groups.items() for k in ks] + [(UNDECLARED, k) for k in unknown]
            _digest_keys(client, [(n, k) for n, k in named if n in sums], sums, now_ms)
            if cursor == 0:
                break
    return {name: s.to_json() for name, s in sums.items()}


def _digest_keys(client: Any, named: list[tuple[str, bytes]], sums: dict[str, FamilySums], now_ms: int) -> None:
    if not named:
        return
    pipe = client.pipeline(transaction=False)
    for _, key in named:
        pipe.type(key)
        pipe.pttl(key)
    probes = pipe.execute()
    kinds, ttls = probes[0::2], probes[1::2]
    pipe = client.pipeline(transaction=False)
    present = [(n, k, kind, ttl) for (n, k), kind, ttl in zip(named, kinds, ttls) if kind in READERS]
    for _, key, kind, _ in present:
        READERS[kind](pipe, key)
    for (name, key, kind, ttl), value in zip(present, pipe.execute()):
        sums[name].add(key + b"\0" + kind + b"\0" + canonical_value(kind, value), now_ms + ttl if ttl > 0 else None)


# -- the manifest -------------------------------------------------------------------

def declared_names(settings: "Settings", runtime: Runtime) -> dict[str, list]:
    """What the manifest covers: declared tables, collections and key families, per configured store."""
    from .pii import mongo_collections, redis_declarations
    from ..redis.state import FRAMEWORK_FAMILIES

    names: dict[str, list] = {"postgres": sorted(load_schema(settings.postgres_dir).metadata.tables)}
    if "mongo" in runtime.stores:
        names["mongo"] = sorted(mongo_collections(settings))
    if "redis" in runtime.stores:
        families = redis_declarations(settings).families
        names["redis"] = [*sorted(families.values(), key=lambda f: f.name), *FRAMEWORK_FAMILIES]
    return names


def take(settings: "Settings", runtime: Runtime, wanted: dict[str, list] | None = None) -> dict:
    """Counts, checksums and revisions of the configured stores (``wanted``: store -> names, default all)."""
    schema = load_schema(settings.postgres_dir)
    names = declared_names(settings, runtime)
    if wanted is not None:
        names = {store: items if store == "redis" else [n for n in items if n in wanted.get(store, ())]
                 for store, items in names.items()}
    body: dict[str, Any] = {"revision": {}, "stores": {}}
    with postgres_session(settings) as conn:
        body["revision"]["postgres"] = postgres_revision(conn)
        body["stores"]["postgres"] = postgres_entries(conn, names["postgres"], bypass_role(schema))
    for store in ("mongo", "redis"):
        named = store in names and (wanted is None or bool(wanted.get(store)))
        backend = runtime.backend(store) if named else None
        if backend is None:
            continue
        body["revision"][store] = backend.position()
        body["stores"][store] = (mongo_entries(backend.db, names[store], ttl_rules(settings)) if store == "mongo"
                                 else redis_entries(backend, names[store], _wanted(wanted, "redis")))
    return body


def _wanted(wanted: dict[str, list] | None, store: str) -> set[str] | None:
    return None if wanted is None else set(wanted.get(store, ()))


def write_snapshot(settings: "Settings", out: Path) -> Outcome:
    runtime = Runtime(settings)
    try:
        body = take(settings, runtime)
    finally:
        runtime.close()
    drift = commands.check(settings)
    manifest = {"format": FORMAT, "taken_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                **body, "drift": [finding_key(f) for f in drift.findings]}
    try:
        Path(out).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        raise ConfigError(f"{out} cannot be written: {exc.strerror}.") from None
    counts = {store: len(entries) for store, entries in body["stores"].items()}
    lines = [f"wrote {out}: " + ", ".join(f"{store} {n} {UNIT[store]}" for store, n in counts.items())
             + f"; revision {', '.join(body['revision'].get('postgres') or ['base'])}"]
    notes = list(dict.fromkeys(runtime.notes + drift.notes))
    if drift.findings:
        notes.append(f"{len(drift.findings)} drift finding(s) at snapshot time are recorded in the manifest")
    return Outcome(lines=lines, notes=notes, data={"manifest": str(out), "counts": counts,
                                                  "revision": body["revision"], "drift": len(drift.findings)})


UNIT = {"postgres": "tables", "mongo": "collections", "redis": "key families"}


def finding_key(finding: Any) -> str:
    return f"{finding.store}: {finding.sentence()}"
