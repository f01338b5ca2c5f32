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

Since revision 7c3e9a41f0b2 the log holds several chains (format 3 names its
chain; :func:`walk` says how they fork from the single chain of formats 1 and 2):
each row is checked against its own chain's previous event, in the same one
pass, and a chain's ids must follow one another by CHAINS. Every row failing
one of them is reported with its id, time and chain (the first MAX_BREAKS by
name, all counted per chain); the walk resumes the chain from the failing row.
Against a signed checkpoint (:mod:`.audit_seal`) the walk also proves each
chain's tail: the sealed event must still be there with its sealed hash and
position in its chain.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Iterable, Iterator

import psycopg

from ..commands import Outcome
from ..core.errors import SovrenError
from ..core.findings import Finding
from . import audit_seal
from .audit_format import CHAINS, COLUMNS_MATCH, COLUMNS_MATCH_JSONB, V2_PREFIX, V3_PREFIX, first_id
from .ledger import postgres_session

if TYPE_CHECKING:
    from ..core.config import Settings

STREAM_SQL = ("COPY (SELECT event_id, created_at, prev_hash, hash, event_payload, {columns_match} "
              "FROM audit_log ORDER BY event_id) TO STDOUT")

# The live CHECK constraint, and the constraints it may be, as the server writes them when created now
# on a throw-away copy of the table (rolled back with the verification): COLUMNS_MATCH, or the jsonb
# text of the revisions before 3f6b2d8e4a19 (a database not migrated yet, or during that revision).
CONSTRAINT_SQL = ("SELECT c.convalidated, pg_get_constraintdef(c.oid) FROM pg_constraint c "
                  "WHERE c.conrelid = to_regclass(%s) AND c.conname = 'audit_log_columns_match'")
TRUSTED = (COLUMNS_MATCH, COLUMNS_MATCH_JSONB)
PROBE_SQL = ("CREATE TEMP TABLE sovren_audit_probe (LIKE audit_log) ON COMMIT DROP",
             *(f"ALTER TABLE sovren_audit_probe ADD CONSTRAINT trusted_{n} CHECK ({text})"
               for n, text in enumerate(TRUSTED)))
PROBED_SQL = ("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
              "WHERE conrelid = 'sovren_audit_probe'::regclass AND contype = 'c'")
NULL = b"\\N"
_ESCAPE = re.compile(rb"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)
_SIMPLE = {b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r", b"t": b"\t", b"v": b"\v"}


@dataclass(frozen=True)
class Break:
    event_id: int
    created_at: str
    problem: str
    chain: int = 0


@dataclass
class Chain:
    """One chain's state in the walk: 0 is the linear chain of formats 1 and 2 (the trunk), 1 to CHAINS
    the chains of format 3 since the fork."""
    events: int = 0
    first_event: int | None = None
    last_event: int | None = None
    head_hash: str | None = None
    breaks: int = 0

    def summary(self) -> dict:
        return asdict(self)


MAX_BREAKS = 20   # breaks named per verification; the count per chain is always given


@dataclass
class ChainReport:
    rows: int = 0
    first_event: int | None = None
    last_event: int | None = None
    head_hash: str | None = None
    broken: Break | None = None        # the first break met (in event id order)
    seconds: float = 0.0
    anchor: int | None = None          # an event id to remember (a checkpoint's last event)
    anchor_hash: str | None = None     # its hash, and how many events of its chain the walk had seen up to it
    anchor_rows: int | None = None
    every_row: bool = True             # columns compared with the payload in the walk, not by the constraint
    anchors: dict = field(default_factory=dict)   # event id -> (hash, events of its chain up to it), for the
    chains: dict = field(default_factory=dict)    # chain -> Chain                   checkpoint's chain heads
    breaks: list = field(default_factory=list)
    break_count: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def unescape_copy(field_: bytes) -> bytes:
    """A field of COPY's text format back to its bytes (``\\t``, ``\\n``, ``\\\\``, octal, hex)."""
    def one(match: re.Match[bytes]) -> bytes:
        octal, hexa, char = match.groups()
        if octal:
            return bytes([int(octal, 8) & 0xFF])
        if hexa:
            return bytes([int(hexa, 16)])
        return _SIMPLE.get(char, char)

    return _ESCAPE.sub(one, field_)


V2_PREFIX_BYTES = V2_PREFIX.encode()
V3_PREFIX_BYTES = V3_PREFIX.encode()
_CHAIN_KEY = b', "chain": '


def _chain_of(payload: bytes) -> int:
    """The chain number of a format-3 payload. jsonb orders keys by length, then bytes: v, at, actor,
    chain; the actor is a JSON string, in which an unescaped quote cannot appear, so the first
    ``, "chain": `` is the key."""
    at = payload.find(_CHAIN_KEY)
    if at < 0:
        return -1
    at += len(_CHAIN_KEY)
    end = payload.find(b",", at)
    try:
        return int(payload[at:end])
    except ValueError:
        return -1


def walk(lines: Iterable[bytes], report: ChainReport) -> ChainReport:
    """Check every COPY text line (event_id, created_at, prev_hash, hash, event_payload, columns match)
    against the previous event of its chain, and go on past a broken link (the chain resumes from the
    row that broke it, so that each break is named once). The loop is the hot path: fields stay bytes.

    Chains: rows of formats 1 and 2 form the trunk (chain 0), linked one after the other; format-3 rows
    name their chain k (1 to CHAINS). At the first format-3 row the trunk forks: chain k's first event
    links to the trunk's head F and has the id first_id(F, k), each next one its previous id plus CHAINS.
    A format-2 row after format-3 rows is a downgrade's merge: it follows the one chain that holds
    events (revision 7c3e9a41f0b2 refuses to merge several)."""
    sha256 = hashlib.sha256
    anchors = {str(a).encode() for a in ([report.anchor] if report.anchor is not None else [])}
    anchors |= {str(a).encode() for a in report.anchors}
    found: dict = {}
    trunk = [None, None, 0, None, 0]     # prev hash, last id, events, first id, breaks
    chains: dict = {}                    # k -> the same, for the current fork
    fork = None                          # (prev hash, id) of the trunk's head at the fork
    count = 0
    first_break = None
    breaks: list = []
    break_count = 0
    last_id = last_hash = None
    for line in lines:
        event_id, created_at, prev, digest, payload, columns_match = line[:-1].split(b"\t")
        count += 1
        if b"\\" in payload:
            payload = unescape_copy(payload)
        if prev == NULL:
            prev = None
        number = int(event_id)
        problem = None
        if payload.startswith(V3_PREFIX_BYTES):
            k = _chain_of(payload)
            if not 1 <= k <= CHAINS:
                k, state, problem = 0, trunk, f"the payload names chain {k}; there are {CHAINS}: the row was forged"
            else:
                if fork is None:
                    fork = (trunk[0], trunk[1] or 0)
                state = chains.get(k)
                if state is None:
                    state = chains[k] = [fork[0], None, 0, None, 0]
                    expected = first_id(fork[1], k)
                else:
                    expected = state[1] + CHAINS
            step = CHAINS
        else:
            k, step = 0, 1
            if fork is not None:   # back on the trunk after a fork: the downgrade merged one chain into it
                used = [c for c in chains.values() if c[2]]
                if len(used) == 1:
                    merged = used[0]
                    trunk[0], trunk[1], trunk[2] = merged[0], merged[1], trunk[2] + merged[2]
                else:
                    problem = (f"a format-2 event follows events on {len(used)} chains, "
                               "which no downgrade merges: the row was forged")
                chains, fork = {}, None
            state = trunk
            expected = (state[1] + 1 if state[1] is not None and payload.startswith(V2_PREFIX_BYTES) else None)
        if problem is None:
            if sha256(payload + event_id).hexdigest().encode() != digest:
                problem = "hash differs from sha256(event_payload || event_id): the row was altered"
            elif prev != state[0]:
                problem = _link_problem(state, prev, expected, number, step, k)
            elif columns_match != b"t":
                problem = ("a column differs from its value in event_payload (or the prev_hash inside it does): "
                           "the row was altered")
            elif expected is not None and number != expected:
                problem = _gap(expected, number, step, k)
        if problem is not None:
            break_count += 1
            state[4] += 1
            found_break = Break(number, created_at.decode(), (f"chain {k}: " if k else "") + problem, k)
            if first_break is None:
                first_break = found_break
            if len(breaks) < MAX_BREAKS:
                breaks.append(found_break)
        state[0], state[1] = digest, number
        state[2] += 1
        if state[3] is None:
            state[3] = number
        if event_id in anchors:
            found[number] = (digest.decode(), state[2])
        last_id, last_hash = number, digest
        if count == 1:
            report.first_event = number
    report.rows = count
    report.last_event = last_id
    report.head_hash = last_hash.decode() if last_hash else None
    report.broken = first_break
    report.breaks, report.break_count = breaks, break_count
    report.chains = {key: Chain(c[2], c[3], c[1], c[0].decode() if c[0] else None, c[4])
                     for key, c in [(0, trunk), *sorted(chains.items())] if c[2] or key == 0}
    report.anchors = found
    if report.anchor is not None and report.anchor in found:
        report.anchor_hash, report.anchor_rows = found[report.anchor]
    return report


def _link_problem(state: list, prev: bytes | None, expected: int | None, number: int, step: int, k: int) -> str:
    if state[2] == 0 and k == 0 and prev is not None:
        return "the first row names a previous hash: the rows before it are missing"
    if expected is not None and number > expected and (number - expected) % step == 0:
        return _gap(expected, number, step, k)
    if state[2] == 0 and k:
        return "its chain's first event does not link to the head at the fork: a row before it was deleted or altered"
    return "prev_hash is not the previous row's hash: a row before it was deleted, inserted or altered"


def _gap(expected: int, number: int, step: int, k: int) -> str:
    if number < expected or (number - expected) % step:
        if number == expected - step:
            return f"event id {number} appears twice: a row was inserted"
        return f"event id {number} is not the next id of its chain ({expected}): the row was forged or moved"
    first, last = expected, number - step
    missing = (last - first) // step + 1
    what = "" if step == 1 else f" of chain {k}"
    span = f"event {first} is" if first == last else f"events {first} to {last} ({missing:,}{what}) are"
    return f"gap: {span} missing (deleted, or in a dropped or truncated partition)"


def constraint_holds(conn: "psycopg.Connection") -> bool:
    """Whether audit_log_columns_match is in force on every row: present, validated and unaltered.

    Then the server has already compared every row's columns with its payload (at insert, and
    at validation for older rows) and the walk need not compare them again. Its text may be
    COLUMNS_MATCH or the jsonb text of the revisions before 3f6b2d8e4a19 (TRUSTED). Otherwise
    (dropped, re-added NOT VALID or with another expression) every row is compared in the
    walk's query, with COLUMNS_MATCH, which holds for rows of every format."""
    live = conn.execute(CONSTRAINT_SQL, ("audit_log",)).fetchone()
    if live is None or not live[0]:
        return False
    try:
        with conn.transaction():  # a savepoint: a role that may not create temporary tables walks every row
            for statement in PROBE_SQL:
                conn.execute(statement)
            trusted = {definition for definition, in conn.execute(PROBED_SQL)}
    except psycopg.Error:
        return False
    return live[1] in trusted


def stream_chain(conn: "psycopg.Connection", anchor: int | None = None, every_row: bool = False,
                 anchors: Iterable[int] = ()) -> ChainReport:
    """Walk every chain over one COPY stream, to its end (each chain's breaks are counted)."""
    report = ChainReport(anchor=anchor, anchors={a: None for a in anchors})
    began = time.perf_counter()
    conn.execute("SET LOCAL statement_timeout = 0")
    report.every_row = every_row or not constraint_holds(conn)
    query = STREAM_SQL.format(columns_match=COLUMNS_MATCH if report.every_row else "true")
    with conn.cursor() as cursor:
        try:
            with cursor.copy(query) as copy:
                walk(map(bytes, copy), report)
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
    heads = [int(c["last_event_id"]) for c in (sealed.chains or {}).values() if c.get("last_event_id")] \
        if sealed else []
    with postgres_session(settings) as conn:
        report = stream_chain(conn, anchor=sealed.last_event_id if sealed and not sealed.chains else None,
                              every_row=every_row, anchors=heads)
    data = {"columns_checked_by": "the walk" if report.every_row else "audit_log_columns_match (validated, unaltered)","rows": report.rows, "seconds": round(report.seconds, 3), "rows_per_second": round(report.rows_per_second),
            "first_event": report.first_event, "last_event": report.last_event, "head_hash": report.head_hash,
            "intact": report.broken is None, "first_break": asdict(report.broken) if report.broken else None,
            "chains": {str(k): c.summary() for k, c in report.chains.items()},
            "breaks": [asdict(b) for b in report.breaks], "break_count": report.break_count}
    if report.broken:
        findings = [Finding("postgres", f"audit_log event {b.event_id}", f"at {b.created_at}: {b.problem}",
                            code="audit-chain") for b in report.breaks]
        per_chain = ", ".join(f"chain {k}: {c.breaks}" for k, c in report.chains.items() if c.breaks)
        notes = [f"{report.break_count:,} broken links in {report.rows:,} events ({per_chain})"]
        if report.break_count > len(report.breaks):
            notes.append(f"the first {len(report.breaks)} are named")
        return Outcome(exit_code=1, findings=findings, data=data, notes=notes)
    if sealed is not None:
        data["checkpoint"] = asdict(sealed)
        problems = chain_tail_problems(report, sealed) if sealed.chains else [tail_problem(report, sealed)]
        problems = [p for p in problems if p]
        if problems:
            data["intact"] = False
            return Outcome(exit_code=1, data=data, findings=[Finding(
                "postgres", "audit_log", f"{problem} (checkpoint sealed {sealed.sealed_at}, {target})",
                code="audit-checkpoint") for problem in problems])
    span = f" (events {report.first_event} to {report.last_event})" if report.rows else ""
    chains = len([k for k in report.chains if k])
    span += f" on {chains} chains after the fork" if chains else ""
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


def chain_tail_problems(report: ChainReport, sealed: "audit_seal.Checkpoint") -> list[str]:
    """Each sealed chain's head against the walk: the sealed event is there, with its hash, after as many
    events of its chain as were sealed."""
    problems = []
    for key, head in sorted(sealed.chains.items(), key=lambda item: int(item[0])):
        last, events, digest = head.get("last_event_id"), head.get("events", 0), head.get("head_hash")
        if last is None:
            continue
        name = f"chain {key}" if int(key) else "the chain before the fork"
        seen = report.anchors.get(int(last))
        if seen is None:
            problems.append(f"{name}: truncated tail: the checkpoint sealed {events:,} events up to event {last}, "
                            "and that event is gone")
        elif seen[0] != digest:
            problems.append(f"{name}: rewritten tail: event {last}'s hash is {seen[0]}, the checkpoint sealed {digest}")
        elif seen[1] != events:
            problems.append(f"{name}: the log holds {seen[1]:,} events up to event {last}, the checkpoint sealed "
                            f"{events:,}: events before it were removed or added")
    return problems


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
    chains = {key: {"events": c["events"], "last_event_id": c["last_event"], "head_hash": c["head_hash"]}
              for key, c in data["chains"].items()}
    checkpoint = audit_seal.seal_now(data["rows"], data["last_event"], data["head_hash"], chains)
    line = checkpoint.line(key)
    target.append(line)
    lines = [line] if to == "-" else [f"sealed {checkpoint.events:,} events up to event {checkpoint.last_event_id} "
                                      f"(head hash {checkpoint.head_hash}) to {target}"]
    return Outcome(lines=lines, data={**data, "checkpoint": json.loads(line)})
