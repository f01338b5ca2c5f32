"""``sovren-db audit verify``: one streamed pass over the audit_log hash chain (Appendix G.2).

Rows come in ``event_id`` order through ``COPY (SELECT ...) TO STDOUT``: the
client holds one row at a time, whatever the size of the log. Each row must
satisfy what the chain function wrote:

- ``hash = sha256(event_payload || event_id)`` (G.2's check), computed here;
- ``prev_hash`` is the previous row's ``hash`` (NULL for the first row), so a
  deleted, inserted or reordered row breaks the chain; where event ids jump
  (format 2 numbers them without holes) the missing events are named as a gap,
  which is what a dropped or truncated partition leaves;
- every column equals its copy in ``event_payload`` and the embedded
  ``prev_hash`` equals the column (:data:`~.audit_format.COLUMNS_MATCH`, evaluated
  by the server in the same query: one flag per row), so no column can be edited
  and no payload moved elsewhere in the chain.

The first row failing one of them is reported with its id and time. Against a
signed checkpoint (:mod:`.audit_seal`) the walk also proves the tail: the sealed
event must still be there with its sealed hash and position.
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
from ..core.errors import SovrenError
from ..core.findings import Finding
from . import audit_seal
from .audit_format import COLUMNS_MATCH, V2_PREFIX
from .ledger import postgres_session

if TYPE_CHECKING:
    from ..core.config import Settings

STREAM_SQL = ("COPY (SELECT event_id, created_at, prev_hash, hash, event_payload, {columns_match} "
              "FROM audit_log ORDER BY event_id) TO STDOUT")

# The live CHECK constraint, and the same constraint as the server writes it when created now
# from COLUMNS_MATCH on a throw-away copy of the table (rolled back with the verification).
CONSTRAINT_SQL = ("SELECT c.convalidated, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                  "WHERE c.conrelid = to_regclass(%s) AND c.conname = 'audit_log_columns_match'")
PROBE_SQL = ("CREATE TEMP TABLE sovren_audit_probe (LIKE audit_log) ON COMMIT DROP",
             f"ALTER TABLE sovren_audit_probe ADD CONSTRAINT audit_log_columns_match CHECK ({COLUMNS_MATCH})")
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
    anchor: int | None = None          # an event id to remember (a checkpoint's last event)
    anchor_hash: str | None = None     # its hash, and how many events the walk had seen up to it
    anchor_rows: int | None = None
    every_row: bool = True             # columns compared with the payload in the walk, not by the constraint

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
    """Check every COPY text line (event_id, created_at, prev_hash, hash, event_payload, columns match)
    against the one before it; stop at the first broken link. The loop is the hot path: fields stay bytes."""
    previous: bytes | None = None
    last_good = b""
    sha256 = hashlib.sha256
    anchor = str(report.anchor).encode() if report.anchor is not None else None
    count = 0
    for line in lines:
        event_id, created_at, prev, digest, payload, columns_match = line[:-1].split(b"\t")
        count += 1
        if b"\\" in payload:
            payload = unescape_copy(payload)
        if prev == NULL:
            prev = None
        if sha256(payload + event_id).hexdigest().encode() != digest:
            problem = "hash differs from sha256(event_payload || event_id): the row was altered"
        elif prev != previous:
            problem = _link_problem(count, prev, last_good, event_id, payload)
        elif columns_match != b"t":
            problem = ("a column differs from its value in event_payload (or the prev_hash inside it does): "
                       "the row was altered")
        elif last_good and payload.startswith(V2_PREFIX_BYTES) and int(event_id) != int(last_good) + 1:
            problem = _gap(last_good, event_id)
        else:
            if count == 1:
                report.first_event = int(event_id)
            if event_id == anchor:
                report.anchor_hash, report.anchor_rows = digest.decode(), count
            previous, last_good = digest, event_id
            continue
        report.broken = Break(int(event_id), created_at.decode(), problem)
        break
    report.rows = count
    report.last_event = int(last_good) if last_good else None
    report.head_hash = previous.decode() if previous else None
    return report


V2_PREFIX_BYTES = V2_PREFIX.encode()


def _link_problem(count: int, prev: bytes | None, last_good: bytes, event_id: bytes, payload: bytes) -> str:
    if count == 1 and prev is not None:
        return "the first row names a previous hash: the rows before it are missing"
    if last_good and payload.startswith(V2_PREFIX_BYTES) and int(event_id) > int(last_good) + 1:
        return _gap(last_good, event_id)
    return "prev_hash is not the previous row's hash: a row before it was deleted, inserted or altered"


def _gap(last_good: bytes, event_id: bytes) -> str:
    first, last = int(last_good) + 1, int(event_id) - 1
    if first > last:
        return f"event id {int(event_id)} appears twice: a row was inserted"
    span = f"event {first} is" if first == last else f"events {first} to {last} ({last - first + 1:,}) are"
    return f"gap: {span} missing (deleted, or in a dropped or truncated partition)"


def constraint_holds(conn: "psycopg.Connection") -> bool:
    """Whether audit_log_columns_match is in force on every row: present, validated and unaltered.

    Then the server has already compared every row's columns with its payload (at insert, and
    at validation for older rows) and the walk need not parse each payload again: 4 to 6 times
    faster. Otherwise (dropped, re-added NOT VALID or with another expression) every row is
    compared in the walk's query."""
    live = conn.execute(CONSTRAINT_SQL, ("audit_log",)).fetchone()
    if live is None or not live[0]:
        return False
    try:
        with conn.transaction():  # a savepoint: a role that may not create temporary tables walks every row
            for statement in PROBE_SQL:
                conn.execute(statement)
            expected = conn.execute(CONSTRAINT_SQL, ("sovren_audit_probe",)).fetchone()
    except psycopg.Error:
        return False
    return live[1] == expected[1]


def stream_chain(conn: "psycopg.Connection", anchor: int | None = None, every_row: bool = False) -> ChainReport:
    """Walk the chain over one COPY stream; the stream is cancelled at the first broken link."""
    report = ChainReport(anchor=anchor)
    began = time.perf_counter()
    conn.execute("SET LOCAL statement_timeout = 0")
    report.every_row = every_row or not constraint_holds(conn)
    query = STREAM_SQL.format(columns_match=COLUMNS_MATCH if report.every_row else "true")
    with conn.cursor() as cursor:
        try:
            with cursor.copy(query) as copy:
                walk(map(bytes, copy), report)
                if report.broken is not None:
                    conn.cancel_safe()
                    for _ in copy:  # what was already sent, until the server stops
                        pass
        except psycopg.errors.QueryCanceled:
            if report.broken is None:
                raise
        except psycopg.errors.DataError as exc:  # a payload that is not JSON any more
            raise ChainUnreadable(f"audit_log: a row's event_payload is not valid JSON ({exc.diag.message_primary}): "
                                  "the log was altered.") from None
    conn.rollback()
    report.seconds = time.perf_counter() - began
    return report


class ChainUnreadable(SovrenError):
    """The server could not evaluate a row: its payload was replaced by something else than JSON."""


def verify(settings: "Settings", checkpoint: str | None = None, key_env: str = audit_seal.KEY_ENV,
           every_row: bool = False) -> Outcome:
    sealed, target = _latest_checkpoint(settings, checkpoint, key_env) if checkpoint else (None, None)
    if target is not None and sealed is None:
        return Outcome(exit_code=1, findings=[Finding(
            "postgres", "audit_log", f"the latest checkpoint in {target} does not carry a valid signature under the "
            f"key in {key_env}: it was forged or altered, or sealed with another key", code="audit-checkpoint")])
    with postgres_session(settings) as conn:
        report = stream_chain(conn, anchor=sealed.last_event_id if sealed else None, every_row=every_row)
    data = {"columns_checked_by": "the walk" if report.every_row else "audit_log_columns_match (validated, unaltered)","rows": report.rows, "seconds": round(report.seconds, 3), "rows_per_second": round(report.rows_per_second),
            "first_event": report.first_event, "last_event": report.last_event, "head_hash": report.head_hash,
            "intact": report.broken is None, "first_break": asdict(report.broken) if report.broken else None}
    if report.broken:
        b = report.broken
        finding = Finding("postgres", f"audit_log event {b.event_id}", f"at {b.created_at}: {b.problem}",
                          code="audit-chain")
        return Outcome(exit_code=1, findings=[finding], data=data,
                       notes=[f"{report.rows - 1:,} events before it verified"])
    if sealed is not None:
        data["checkpoint"] = asdict(sealed)
        problem = tail_problem(report, sealed)
        if problem:
            data["intact"] = False
            return Outcome(exit_code=1, data=data, findings=[Finding(
                "postgres", "audit_log", f"{problem} (checkpoint sealed {sealed.sealed_at}, {target})",
                code="audit-checkpoint")])
    span = f" (events {report.first_event} to {report.last_event})" if report.rows else ""
    line = (f"audit chain intact: {report.rows:,} events{span} verified in {report.seconds:.2f} s"
            + (f" ({report.rows_per_second:,.0f} events/s); head hash {report.head_hash}" if report.rows else ""))
    lines = [line] + ([f"matches the checkpoint sealed {sealed.sealed_at} ({sealed.events:,} events, "
                       f"{target})"] if sealed else [])
    return Outcome(lines=lines, data=data)


def tail_problem(report: ChainReport, sealed: "audit_seal.Checkpoint") -> str | None:
    """What the walk says against a checkpoint: nothing, a cut tail, a rewritten tail or a changed count."""
    if sealed.last_event_id is None:
        return None
    if report.anchor_hash is None:
        end = f"it ends at event {report.last_event}" if report.rows else "it is empty"
        return (f"truncated tail: the checkpoint sealed {sealed.events:,} events up to event {sealed.last_event_id}, "
                f"and {end}")
    if report.anchor_hash != sealed.head_hash:
        return (f"rewritten tail: event {sealed.last_event_id}'s hash is {report.anchor_hash}, "
                f"the checkpoint sealed {sealed.head_hash}")
    if report.anchor_rows != sealed.events:
        return (f"the log holds {report.anchor_rows:,} events up to event {sealed.last_event_id}, "
                f"the checkpoint sealed {sealed.events:,}: events before it were removed or added")
    return None


def _latest_checkpoint(settings: "Settings", spec: str, key_env: str):
    target = audit_seal.Target(spec, settings)
    sealed, genuine = audit_seal.parse(target.latest(), audit_seal.read_key(key_env), str(target))
    return (sealed if genuine else None), target


def seal(settings: "Settings", to: str, key_env: str = audit_seal.KEY_ENV) -> Outcome:
    """Walk the chain; if it is intact, write a signed checkpoint of its head to ``to``."""
    key = audit_seal.read_key(key_env)
    target = audit_seal.Target(to, settings)
    outcome = verify(settings)
    if outcome.exit_code:
        outcome.notes.append("nothing sealed: a broken chain is not sealed")
        return outcome
    data = outcome.data
    checkpoint = audit_seal.seal_now(data["rows"], data["last_event"], data["head_hash"])
    line = checkpoint.line(key)
    target.append(line)
    lines = [line] if to == "-" else [f"sealed {checkpoint.events:,} events up to event {checkpoint.last_event_id} "
                                      f"(head hash {checkpoint.head_hash}) to {target}"]
    return Outcome(lines=lines, data={**data, "checkpoint": json.loads(line)})
