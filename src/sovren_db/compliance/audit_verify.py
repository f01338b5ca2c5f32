"""``sovren-db audit verify``: one streamed pass over the audit_log hash chain (Appendix G.2).

Rows come in ``event_id`` order through ``COPY (SELECT ...) TO STDOUT``: the
client holds one row at a time, whatever the size of the log. Each row must
satisfy what ``sovren_audit_append`` wrote:

- ``hash = sha256(event_payload || event_id)`` (G.2's check);
- ``prev_hash`` is the previous row's ``hash`` (NULL for the first row), so a
  deleted, inserted or reordered row breaks the chain;
- the ``prev_hash`` embedded in ``event_payload`` equals the column (``""`` for
  the first row), so the payload cannot be moved to another place in the chain.

The first row failing one of them is reported with its id and time.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Iterable, Iterator

import psycopg

from ..commands import Outcome
from ..core.findings import Finding
from .ledger import postgres_session

if TYPE_CHECKING:
    from ..core.config import Settings

STREAM_SQL = ("COPY (SELECT event_id, created_at, prev_hash, hash, event_payload FROM audit_log "
              "ORDER BY event_id) TO STDOUT")
NULL = b"\\N"
_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)
_SIMPLE = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


@dataclass(frozen=True)
class Break:
    event_id: int
    created_at: str
    problem: str


@dataclass
class ChainReport:
    rows: int = 0
    first_event: int | None = None
    last_event: int | None = None
    head_hash: str | None = None
    broken: Break | None = None
    seconds: float = 0.0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def unescape_copy(field: bytes) -> bytes:
    """A field of COPY's text format back to its bytes (``\\t``, ``\\n``, ``\\\\``, octal, hex)."""
    def one(match: re.Match[bytes]) -> bytes:
        octal, hexa, char = match.groups()
        if octal:
            return bytes([int(octal, 8) & 0xFF])
        if hexa:
            return bytes([int(hexa, 16)])
        return _SIMPLE.get(char, char)

    return _ESCAPE.sub(one, field)


def walk(lines: Iterable[bytes], report: ChainReport) -> ChainReport:
    """Check every COPY text line (event_id, created_at, prev_hash, hash, event_payload) against the one
    before it; stop at the first broken link. The loop is the hot path: fields stay bytes."""
    previous: bytes | None = None
    last_good = b""
    sha256 = hashlib.sha256
    count = 0
    for line in lines:
        event_id, created_at, prev, digest, payload = line[:-1].split(b"\t")
        count += 1
        if b"\\" in payload:
            payload = unescape_copy(payload)
        if prev == NULL:
            prev = None
        if sha256(payload + event_id).hexdigest().encode() != digest:
            problem = "hash differs from sha256(event_payload || event_id): the row was altered"
        elif prev != previous:
            problem = ("prev_hash is not the previous row's hash: a row before it was deleted, inserted or altered"
                       if count > 1 or prev is None else
                       "the first row names a previous hash: the rows before it are missing")
        elif payload.endswith(b'"prev_hash": "' + (prev or b"") + b'"}') or _embedded_matches(payload, prev):
            if count == 1:
                report.first_event = int(event_id)
            previous, last_good = digest, event_id
            continue
        else:
            problem = "the prev_hash inside event_payload differs from the prev_hash column"
        report.broken = Break(int(event_id), created_at.decode(), problem)
        break
    report.rows = count
    report.last_event = int(last_good) if last_good else None
    report.head_hash = previous.decode() if previous else None
    return report


def _embedded_matches(payload: bytes, prev: bytes | None) -> bool:
    """The slow path: the payload parsed as JSON (its fast path relies on jsonb's key order)."""
    try:
        embedded = json.loads(payload).get("prev_hash")
    except (ValueError, AttributeError):
        return False
    return embedded == (prev.decode() if prev else "")


def stream_chain(conn: "psycopg.Connection") -> ChainReport:
    """Walk the chain over one COPY stream; the stream is cancelled at the first broken link."""
    report = ChainReport()
    began = time.perf_counter()
    conn.execute("SET LOCAL statement_timeout = 0")
    with conn.cursor() as cursor:
        try:
            with cursor.copy(STREAM_SQL) as copy:
                walk(map(bytes, copy), report)
                if report.broken is not None:
                    conn.cancel_safe()
                    for _ in copy:  # what was already sent, until the server stops
                        pass
        except psycopg.errors.QueryCanceled:
            if report.broken is None:
                raise
    conn.rollback()
    report.seconds = time.perf_counter() - began
    return report


def verify(settings: "Settings") -> Outcome:
    with postgres_session(settings) as conn:
        report = stream_chain(conn)
    data = {"rows": report.rows, "seconds": round(report.seconds, 3), "rows_per_second": round(report.rows_per_second),
            "first_event": report.first_event, "last_event": report.last_event, "head_hash": report.head_hash,
            "intact": report.broken is None, "first_break": asdict(report.broken) if report.broken else None}
    if report.broken:
        b = report.broken
        finding = Finding("postgres", f"audit_log event {b.event_id}", f"at {b.created_at}: {b.problem}",
                          code="audit-chain")
        return Outcome(exit_code=1, findings=[finding], data=data,
                       notes=[f"{report.rows - 1:,} events before it verified"])
    span = f" (events {report.first_event} to {report.last_event})" if report.rows else ""
    line = (f"audit chain intact: {report.rows:,} events{span} verified in {report.seconds:.2f} s"
            + (f" ({report.rows_per_second:,.0f} events/s); head hash {report.head_hash}" if report.rows else ""))
    return Outcome(lines=[line], data=data)
