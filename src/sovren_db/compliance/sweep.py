"""``sovren-db erase --verify --subject ID``: sweep every store for what is left of a subject.

Erasure deletes what the declarations link to the subject; the sweep looks
everywhere else, so that a copy nobody declared is found: every text, JSON
and uuid column of every table of the current schema (as the BYPASSRLS role,
so that row security hides nothing), every Redis key name, string, hash field
and value, list element, set and sorted-set member and stream entry on every
master, and every MongoDB document. It looks for the subject id and its
declared identifying values (``PersonalData(identifying=...)``: the email,
the username), case-insensitively:

- in plain text, read from the subject's row while it exists;
- once the row is gone, by the salted hashes erasure recorded of them (the
  ledger never holds the values): each word of a value is hashed and compared.

Tables the declarations retain (``erase="retain"``, the audit trail) are
counted in a note, not reported. Exit 1 with one finding per place holding a
trace, 0 when none is left. Memory stays bounded: Redis is read a page at a
time, MongoDB a cursor batch at a time, Postgres counts in SQL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

import psycopg
from psycopg import sql

from ..commands import Outcome
from ..core.findings import Finding
from ..core.runtime import Runtime
from ..postgres.declared import load_schema
from .ledger import ERASURES, SALT, act_as, postgres_session, subject_hash
from .pii import NoPersonalData, PiiMap, bypass_role, load_pii_map

if TYPE_CHECKING:
    from ..core.config import Settings

IDENTIFIERS_STEP = "identifiers"    # the erasure ledger's record of the identifying values' hashes
# Words are split on white space and punctuation that cannot be part of an email or a username;
# the same class in Python and in Postgres (ARE) so that both hash the same words.
SEPARATORS = r"""[\s"'<>(),;:=|{}\[\]]+"""
_WORDS = re.compile(SEPARATORS)
SWEPT_TYPES = ("text", "character varying", "character", "json", "jsonb", "uuid")
PAGE = 1000
FRAMEWORK_TABLES = {"alembic_version", "sovren_db_deferred"}   # sovren-db's own book-keeping, no subject data
CODE = "erase-trace"


@dataclass
class Needles:
    plain: list[str]                                  # lower-case id and identifying values
    hashes: set[str] = field(default_factory=set)     # salted hashes of lower-case identifying values
    salt: bytes | None = None

    def found_in(self, text: str) -> bool:
        low = text.lower()
        if any(n in low for n in self.plain):
            return True
        return bool(self.hashes) and any(word_hash(self.salt, w) in self.hashes for w in _WORDS.split(low) if w)


def word_hash(salt: bytes | None, word: str) -> str:
    return hmac.new(salt or b"", word.encode(), hashlib.sha256).hexdigest()


def identifying_values(conn: psycopg.Connection, pii: PiiMap, role: str, subject: str) -> list[str]:
    """The subject's identifying values (lower-case), read from its row as ``role``; [] once it is gone."""
    columns = pii.root.identifying
    if not columns:
        return []
    act_as(conn, role, "Verification")
    query = sql.SQL("SELECT {} FROM {} WHERE {} = %s").format(
        sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns),
        sql.Identifier(pii.root.table), sql.Identifier(pii.root.subject_column))
    row = conn.execute(query, (subject,)).fetchone()
    conn.rollback()
    return [v.lower() for v in (row or ()) if v]


def remember_identifiers(conn: psycopg.Connection, values: list[str]) -> dict:
    """What the erasure ledger keeps of the identifying values: their salted hashes, never the values."""
    salt = bytes(conn.execute(f"SELECT salt FROM {SALT}").fetchone()[0])
    return {"hashes": sorted(word_hash(salt, v) for v in values)}


def _recorded(conn: psycopg.Connection, subject: str) -> tuple[set[str], bytes | None]:
    present = conn.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
                           (ERASURES, SALT)).fetchone()[0]
    if not present:
        conn.rollback()
        return set(), None
    salt = bytes(conn.execute(f"SELECT salt FROM {SALT}").fetchone()[0])
    row = conn.execute(f"SELECT counts FROM {ERASURES} WHERE subject_hash = %s AND step = %s",
                       (subject_hash(conn, subject), IDENTIFIERS_STEP)).fetchone()
    conn.rollback()
    return set((row[0] if row else {}).get("hashes", [])), salt


def verify(settings: "Settings", subject: str) -> Outcome:
    """Exit 1 naming every place that still mentions the subject, 0 when none does."""
    schema = load_schema(settings.postgres_dir)
    try:
        pii = load_pii_map(settings, schema)
    except NoPersonalData as nothing:  # no subject is declared: there is nothing to look for
        return Outcome(lines=[nothing.message], data={"traces": 0})
    value = pii.parse_subject(subject)
    role = bypass_role(schema, grants="SELECT", purpose="the erasure sweep")
    runtime = Runtime(settings)
    findings: list[Finding] = []
    notes: list[str] = []
    try:
        with postgres_session(settings) as conn:
            hashes, salt = _recorded(conn, value)
            needles = Needles([value.lower(), *identifying_values(conn, pii, role, value)], hashes, salt)
            findings += postgres_traces(conn, role, needles, {r.table for r in pii.retained}, notes)
        for store, sweep in (("redis", redis_traces), ("mongo", mongo_traces)):
            backend = runtime.backend(store) if store in runtime.stores else None
            if backend is None:
                notes.append(f"{store}: not configured, not swept")
            else:
                findings += sweep(backend, needles)
    finally:
        runtime.close()
    head = (f"{len(findings)} place(s) still mention the subject" if findings else
            "no trace of the subject in any store swept")
    return Outcome(exit_code=1 if findings else 0, lines=[head], findings=findings, notes=notes + runtime.notes,
                   data={"traces": len(findings), "identifying_values_known": len(needles.plain) - 1,
                         "identifying_hashes": len(needles.hashes)})


# -- Postgres -----------------------------------------------------------------

_COLUMNS = """
SELECT c.relname, array_agg(a.attname::text ORDER BY a.attnum) AS columns,
       has_table_privilege(current_user, c.oid, 'SELECT') AS readable
  FROM pg_class c
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND format_type(a.atttypid, NULL) = ANY(%s)
 GROUP BY c.relname, c.oid ORDER BY c.relname
"""


def _mentions(column: str, hashed: bool) -> sql.Composable:
    text = sql.SQL("lower({}::text)").format(sql.Identifier(column))
    plain = sql.SQL("EXISTS (SELECT 1 FROM unnest(%(plain)s::text[]) AS n WHERE strpos({}, n) > 0)").format(text)
    if not hashed:
        return plain
    return sql.SQL("({} OR EXISTS (SELECT 1 FROM regexp_split_to_table({}, %(separators)s) AS w WHERE w <> '' "
                   "AND encode(hmac(convert_to(w, 'UTF8'), %(salt)s, 'sha256'), 'hex') = ANY(%(hashes)s)))"
                   ).format(plain, text)


def postgres_traces(conn: psycopg.Connection, role: str, needles: Needles, retained: set[str],
                    notes: list[str]) -> list[Finding]:
    act_as(conn, role, "Verification")
    tables = conn.execute(_COLUMNS, (list(SWEPT_TYPES),)).fetchall()
    hashed = bool(needles.hashes) and conn.execute(
        "SELECT to_regprocedure('hmac(bytea,bytea,text)') IS NOT NULL").fetchone()[0]
    if needles.hashes and not hashed:
        notes.append("postgres: pgcrypto's hmac() is not installed: identifying values were looked for by id only")
    params = {"plain": needles.plain, "separators": SEPARATORS, "salt": needles.salt, "hashes": sorted(needles.hashes)}
    findings = []
    for table, columns, readable in tables:
        if table in FRAMEWORK_TABLES:
            continue
        if not readable:
            notes.append(f"postgres: {role} may not read {table}: not swept")
            continue
        counts = conn.execute(sql.SQL("SELECT {} FROM {}").format(
            sql.SQL(", ").join(sql.SQL("count(*) FILTER (WHERE {})").format(_mentions(c, hashed)) for c in columns),
            sql.Identifier(table)), params).fetchone()
        for column, count in zip(columns, counts):
            if not count:
                continue
            if table in retained:
                notes.append(f"postgres: {table}.{column}: {count} row(s) mention the subject, retained by declaration")
            else:
                findings.append(Finding("postgres", f"column {table}.{column}",
                                        f"{count} row(s) still mention the subject", code=CODE))
    conn.rollback()
    return findings


# -- Redis --------------------------------------------------------------------

def _text(value: bytes | str | float) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _elements(client, key: bytes, kind: str) -> Iterator[str]:
    """Every string a key holds (fields and values, members, entries), a page at a time."""
    from ..redis.erase import stream_pages

    if kind == "string":
        yield _text(client.get(key) or b"")
    elif kind == "hash":
        for name, value in client.hscan_iter(key, count=PAGE):
            yield _text(name) + "\x00" + _text(value)
    elif kind == "list":
        for start in range(0, client.llen(key), PAGE):
            yield from (_text(v) for v in client.lrange(key, start, start + PAGE - 1))
    elif kind == "set":
        yield from (_text(m) for m in client.sscan_iter(key, count=PAGE))
    elif kind == "zset":
        yield from (_text(m) for m, _ in client.zscan_iter(key, count=PAGE))
    elif kind == "stream":
        for page in stream_pages(client, key, PAGE):
            yield from (" ".join(f"{_text(k)} {_text(v)}" for k, v in fields.items()) for _, fields in page)


def redis_traces(backend, needles: Needles) -> list[Finding]:
    findings = []
    with backend.reporting_errors():
        for _, client in backend.masters():
            for keys in _scan(client):
                pipe = client.pipeline(transaction=False)
                for key in keys:
                    pipe.type(key)
                for key, kind in zip(keys, pipe.execute()):
                    finding = _key_trace(client, key, _text(kind), needles)
                    if finding is not None:
                        findings.append(finding)
    return findings


def _scan(client) -> Iterator[list[bytes]]:
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor, count=PAGE)
        if keys:
            yield keys
        if cursor == 0:
            return


def _key_trace(client, key: bytes, kind: str, needles: Needles) -> Finding | None:
    from ..redis.patterns import printable_key

    shown = f"key {printable_key(key)} ({kind})"
    if needles.found_in(_text(key)):
        return Finding("redis", shown, "its name mentions the subject", code=CODE)
    hits = sum(1 for element in _elements(client, key, kind) if needles.found_in(element))
    if not hits:
        return None
    what = {"string": "its value", "hash": f"{hits} field(s)", "list": f"{hits} element(s)",
            "set": f"{hits} member(s)", "zset": f"{hits} member(s)", "stream": f"{hits} entry(ies)"}[kind]
    return Finding("redis", shown, f"{what} mention the subject", code=CODE)


# -- MongoDB ------------------------------------------------------------------

def mongo_traces(backend, needles: Needles) -> list[Finding]:
    from bson import json_util

    findings = []
    for name in sorted(backend.db.list_collection_names()):
        if name.startswith("system."):
            continue
        ids = [doc.get("_id") for doc in backend.db[name].find({}, batch_size=PAGE)
               if needles.found_in(json_util.dumps(doc))]
        if ids:
            sample = ", ".join(str(i) for i in ids[:3])
            findings.append(Finding("mongo", f"collection {name}",
                                    f"{len(ids)} document(s) still mention the subject (_id {sample})", code=CODE))
    return findings
