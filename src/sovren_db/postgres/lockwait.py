"""Take the locks a DDL statement needs on a live table without making the workload queue behind it.

Postgres grants locks in queue order: a statement waiting for ACCESS EXCLUSIVE behind one old
transaction makes every later reader and writer of the table wait behind *it*. :class:`LockGuard`
wraps the execution of each statement of a revision and, for those that take a lock conflicting
with reads or writes on a table that already exists (and that this transaction does not hold yet):

1. looks in ``pg_locks`` for a conflicting holder whose transaction is older than one attempt;
   while there is one it waits it out without entering the queue, printing who blocks (pid,
   application, state, transaction age; never the query), and cancels it after
   ``--cancel-blockers-after`` when asked;
2. then makes a short attempt: in a savepoint, ``lock_timeout`` = the latency budget, every
   table the statement needs locked first (``LOCK TABLE``, so that one is never held while
   waiting for another), then the statement. A lock timeout rolls back to the savepoint (no lock
   kept) and the next attempt comes after a jittered backoff;
3. gives up at the deadline: :class:`LockWaitExpired` (exit 1) names the blocker; the revision's
   transaction rolls back and a rerun continues from there.

When the transaction already holds conflicting locks on other live tables (an earlier statement
of the revision), waiting inside it would queue the workload behind those: the guard raises
:class:`RevisionLockWait` instead, the revision rolls back and ``migrate`` runs it again.

Which locks a statement takes is read from its text (the DDL Alembic and the safe forms emit);
a full SQL parser would be a new dependency for the dozen statement shapes that matter here.
"""

from __future__ import annotations

import random
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import psycopg
from sqlalchemy import text

from ..core.errors import ConfigError, SovrenError, first_line
from .safe import is_lock_timeout

ACCESS_SHARE, ROW_SHARE, ROW_EXCLUSIVE = "AccessShareLock", "RowShareLock", "RowExclusiveLock"
SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE = "ShareUpdateExclusiveLock", "ShareLock", "ShareRowExclusiveLock"
EXCLUSIVE, ACCESS_EXCLUSIVE = "ExclusiveLock", "AccessExclusiveLock"
_ALL = (ACCESS_SHARE, ROW_SHARE, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE,
        EXCLUSIVE, ACCESS_EXCLUSIVE)
# The table-level conflict matrix of the Postgres manual ("Explicit Locking", table 13.2).
CONFLICTS: dict[str, frozenset[str]] = {
    ACCESS_SHARE: frozenset({ACCESS_EXCLUSIVE}),
    ROW_SHARE: frozenset({EXCLUSIVE, ACCESS_EXCLUSIVE}),
    ROW_EXCLUSIVE: frozenset({SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE}),
    SHARE_UPDATE_EXCLUSIVE: frozenset({SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE,
                                       ACCESS_EXCLUSIVE}),
    SHARE: frozenset({ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE}),
    SHARE_ROW_EXCLUSIVE: frozenset({ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, EXCLUSIVE,
                                    ACCESS_EXCLUSIVE}),
    EXCLUSIVE: frozenset(set(_ALL) - {ACCESS_SHARE}),
    ACCESS_EXCLUSIVE: frozenset(_ALL),
}
SQL_MODE = {mode: re.sub(r"(?<!^)([A-Z])", r" \1", mode.removesuffix("Lock")).upper() for mode in _ALL}


def blocks_workload(mode: str) -> bool:
    """True when ``mode`` conflicts with plain reads or writes (SELECT, INSERT/UPDATE/DELETE)."""
    return bool(CONFLICTS[mode] & {ACCESS_SHARE, ROW_EXCLUSIVE})


# -- which tables a statement locks, and how ---------------------------------------------------

_NAME = r'((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)'
_ALTER = re.compile(rf"^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?{_NAME}\s*(.*)$", re.I | re.S)
_REFERENCES = re.compile(rf"\bREFERENCES {_NAME}", re.I)
_PARTITION = re.compile(rf"\b(ATTACH|DETACH) PARTITION {_NAME}(\s+CONCURRENTLY)?", re.I)
_ON_TABLE = [
    (re.compile(rf"^CREATE (?:OR REPLACE )?(?:CONSTRAINT )?TRIGGER .*? ON {_NAME}", re.I | re.S), SHARE_ROW_EXCLUSIVE),
    (re.compile(rf"^DROP TRIGGER (?:IF EXISTS )?\S+ ON {_NAME}", re.I | re.S), ACCESS_EXCLUSIVE),
    (re.compile(rf"^(?:CREATE|ALTER|DROP) POLICY .*? ON {_NAME}", re.I | re.S), ACCESS_EXCLUSIVE),
    (re.compile(rf"^CREATE (?:UNIQUE )?INDEX (?!CONCURRENTLY).*? ON (?:ONLY )?{_NAME}", re.I | re.S), SHARE),
    (re.compile(rf"^TRUNCATE (?:TABLE )?(?:ONLY )?{_NAME}", re.I | re.S), ACCESS_EXCLUSIVE),
    (re.compile(rf"^DROP TABLE (?:IF EXISTS )?{_NAME}", re.I | re.S), ACCESS_EXCLUSIVE),
]


def lock_targets(sql: str) -> list[tuple[str, str]]:
    """``[(table, lock mode)]`` the statement takes, as the manual lists them; [] for the rest."""
    sql = _strip_comments(sql)
    match = _ALTER.match(sql)
    if match:
        return _alter_targets(match[1], match[2])
    for pattern, mode in _ON_TABLE:
        found = pattern.match(sql)
        if found:
            return [(found[1], mode)]
    return []


def _alter_targets(table: str, rest: str) -> list[tuple[str, str]]:
    partition = _PARTITION.search(rest)
    if partition and partition[1].upper() == "ATTACH":
        return [(table, SHARE_UPDATE_EXCLUSIVE), (partition[2], ACCESS_EXCLUSIVE)]
    if partition:
        mode = SHARE_UPDATE_EXCLUSIVE if partition[3] else ACCESS_EXCLUSIVE
        return [(table, mode), (partition[2], mode)]
    if re.match(r"VALIDATE CONSTRAINT\b", rest, re.I):
        return [(table, SHARE_UPDATE_EXCLUSIVE)]
    references = _REFERENCES.search(rest)
    if references and re.match(r"ADD\b", rest, re.I):
        return [(table, SHARE_ROW_EXCLUSIVE), (references[1], SHARE_ROW_EXCLUSIVE)]
    return [(table, ACCESS_EXCLUSIVE)]


def _strip_comments(sql: str) -> str:
    lines = [line for line in sql.strip().splitlines() if not line.lstrip().startswith("--")]
    return " ".join(" ".join(lines).split())


# -- the policy ------------------------------------------------------------------------------

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|min|h)?\s*\Z")
_UNIT = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, None: 1.0}


def duration_seconds(value: object, key: str) -> float:
    """Seconds from ``"4ms"``, ``"2.5s"``, ``"10min"``, ``"1h"`` or a number of seconds; ConfigError naming ``key``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ConfigError(f"{key} = {value!r} is not a duration (use 4ms, 2s, 10min or 1h).")
    return float(match[1]) * _UNIT[match[2]]


@dataclass(frozen=True)
class LockPolicy:
    """How long the workload may wait behind one attempt, and how long migrate may wait in all."""

    attempt: float = 0.004
    deadline: float = 300.0
    cancel_after: float | None = None
    poll: float = 0.2

    @classmethod
    def from_settings(cls, settings: Any, cancel_after: str | None = None) -> "LockPolicy":
        budget = duration_seconds(getattr(settings, "latency_budget", "4ms"), "latency_budget")
        deadline = duration_seconds(getattr(settings, "lock_wait_deadline", "5min"), "lock_wait_deadline")
        cancel = duration_seconds(cancel_after, "--cancel-blockers-after") if cancel_after is not None else None
        return cls(attempt=max(budget, 0.001), deadline=deadline, cancel_after=cancel)

    @property
    def lock_timeout(self) -> str:
        return f"{max(1, round(self.attempt * 1000))}ms"

    def backoff(self, attempt: int) -> float:
        """Jittered, doubling from one budget, capped at the poll interval: short waits, no herd."""
        return min(self.poll, self.attempt * 2 ** min(attempt, 8)) * random.uniform(0.5, 1.0)


# -- who blocks ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Blocker:
    pid: int
    application: str
    state: str
    age: float
    table: str
    mode: str
    autovacuum: bool = False  # an autovacuum worker, not one preventing wraparound

    def describe(self) -> str:
        app = f"application {self.application!r}" if self.application else "no application name"
        return (f"pid {self.pid} ({app}, {self.state or 'unknown state'}, transaction open "
                f"{self.age:.1f} s, holding {self.mode} on {self.table})")


_HOLDERS = """
SELECT DISTINCT l.pid, coalesce(a.application_name, ''), coalesce(a.state, ''),
       coalesce(extract(epoch FROM clock_timestamp() - a.xact_start), 0)::float8, l.relation::regclass::text, l.mode,
       coalesce(a.backend_type = 'autovacuum worker' AND a.query NOT LIKE '%(to prevent wraparound)%', false)
FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid()
  AND l.relation = ANY(CAST(:oids AS oid[])) AND l.mode = ANY(CAST(:modes AS text[]))
ORDER BY 4 DESC
"""


def conflicting_holders(connection: Any, needs: dict[int, str]) -> list[Blocker]:
    """Sessions holding a lock on one of ``needs`` (oid -> mode) that conflicts with the mode needed."""
    found: list[Blocker] = []
    for oid, mode in needs.items():
        rows = connection.execute(text(_HOLDERS), {"oids": [oid], "modes": sorted(CONFLICTS[mode])})
        found.extend(Blocker(*row) for row in rows)
    return sorted(found, key=lambda b: -b.age)


def cancel(connection: Any, blocker: Blocker) -> str | None:
    """Cancel the blocker's query (an idle transaction has none: its session is ended instead); None
    when done, else why not. In a savepoint, so that a refusal (the role may not signal that
    session) leaves the revision's transaction usable."""
    fn = "pg_terminate_backend" if blocker.state.startswith("idle in transaction") else "pg_cancel_backend"
    savepoint = not _autocommit(connection)
    _raw(connection, "SAVEPOINT sovren_cancel") if savepoint else None
    try:
        done = connection.connection.dbapi_connection.execute(f"SELECT {fn}(%s)", (blocker.pid,)).fetchone()[0]
    except psycopg.Error as exc:
        _raw(connection, "ROLLBACK TO SAVEPOINT sovren_cancel") if savepoint else None
        return first_line(exc).rstrip(".")
    _raw(connection, "RELEASE SAVEPOINT sovren_cancel") if savepoint else None
    return None if done else "the session was already gone"


# -- errors ----------------------------------------------------------------------------------

class LockWaitExpired(SovrenError):
    """The deadline passed while another session kept a lock migrate needs (exit 1: pending work)."""

    exit_code = 1

    def __init__(self, table: str, waited: float, blocker: Blocker | None):
        self.table, self.blocker = table, blocker
        who = f"held by {blocker.describe()}" if blocker else "taken by one short transaction after another"
        super().__init__(f"Gave up after {waited:.1f} s waiting for a lock on {table} {who}; nothing of the "
                         "revision was applied in that transaction, and 'sovren-db migrate' continues from "
                         "there once it ends (or pass --cancel-blockers-after).")


class RevisionLockWait(Exception):
    """A blocker appeared while this transaction holds locks on other live tables: migrate rolls the
    revision back and runs it again (the guard's clock keeps running, so the deadline still holds)."""

    def __init__(self, blocker: Blocker):
        super().__init__(f"waiting for {blocker.describe()} outside the revision's transaction")
        self.blocker = blocker


# -- the guard -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Need:
    oid: int
    name: str
    mode: str


_NEED = """
SELECT c.oid::int8, c.oid::regclass::text,
       coalesce(array_agg(l.mode::text) FILTER (WHERE l.mode IS NOT NULL), '{}')
FROM pg_class c LEFT JOIN pg_locks l
  ON l.locktype = 'relation' AND l.relation = c.oid AND l.pid = pg_backend_pid() AND l.granted
WHERE c.oid = to_regclass(:name) GROUP BY c.oid
"""


def _stderr(message: str) -> None:
    print(f"sovren-db: {message}", file=sys.stderr, flush=True)


def _raw(connection: Any, sql: str) -> None:
    """Through the driver, unseen by SQLAlchemy's events: the runtime counts the statements a
    revision has committed (:meth:`Runtime.tracking_commits`), and these change nothing."""
    connection.connection.dbapi_connection.execute(sql)


def _autocommit(connection: Any) -> bool:
    return bool(getattr(connection.connection.dbapi_connection, "autocommit", False))


@dataclass
class LockGuard:
    """Wraps an Alembic impl's statement execution (see the module's docstring). One per migrate:
    its clock and the blockers it has seen outlive the reruns of a revision."""

    KEY = "sovren_lock_guard"

    policy: LockPolicy = field(default_factory=LockPolicy)
    report: Callable[[str], None] = _stderr
    sleep: Callable[[float], None] = time.sleep
    started: float | None = None
    seen: dict[int, float] = field(default_factory=dict)
    held: dict[str, set[int]] = field(default_factory=dict)
    told: tuple[tuple[int, ...], float] = ((), 0.0)

    def install(self, impl: Any) -> None:
        original = impl._exec

        def guarded(construct: Any, *args: Any, **kw: Any) -> Any:
            needs = [] if impl.as_sql else self.needs(impl.connection, _sql_of(construct, impl.dialect))
            if not needs:
                return original(construct, *args, **kw)
            return self.run(impl.connection, needs, lambda: original(construct, *args, **kw))

        impl._exec = guarded

    def needs(self, connection: Any, sql: str | None) -> list[Need]:
        """The live tables the statement locks in a mode the workload would queue behind, not yet held."""
        found = []
        for name, mode in lock_targets(sql or ""):
            if not blocks_workload(mode):
                continue
            row = connection.execute(text(_NEED), {"name": name}).first()
            if row is not None and not any(CONFLICTS[h] >= CONFLICTS[mode] for h in row[2] if h in CONFLICTS):
                found.append(Need(row[0], row[1], mode))
        return found

    def run(self, connection: Any, needs: list[Need], execute: Callable[[], Any]) -> Any:
        in_transaction, attempt = not _autocommit(connection), 0
        while True:
            blockers = [b for b in self.holders(connection, needs) if b.age > self.policy.attempt]
            if not blockers:
                attempt += 1
                try:
                    result = self.attempt(connection, needs, execute, in_transaction)
                except Exception as exc:
                    if not is_lock_timeout(exc):
                        raise
                else:
                    self.started, self.seen = None, {}
                    return result
            self.check_deadline(connection, needs, blockers)
            if blockers:
                self.tell(blockers)
                self.cancel_autovacuum(connection, blockers)
                self.cancel_old(connection, blockers)
                if in_transaction and self.holds_other(connection, needs):
                    raise RevisionLockWait(blockers[0])
            self.sleep(self.policy.poll if blockers else self.policy.backoff(attempt))

    def holders(self, connection: Any, needs: list[Need]) -> list[Blocker]:
        return conflicting_holders(connection, {n.oid: n.mode for n in needs})

    def attempt(self, connection: Any, needs: list[Need], execute: Callable[[], Any], in_transaction: bool) -> Any:
        """Every table locked at once under a short lock_timeout, then the statement; on failure
        nothing stays held (savepoint rolled back, or the statement's own transaction)."""
        begin, undo, done = (("SAVEPOINT sovren_lock_wait", "ROLLBACK TO SAVEPOINT sovren_lock_wait",
                              "RELEASE SAVEPOINT sovren_lock_wait") if in_transaction
                             else ("BEGIN", "ROLLBACK", "COMMIT"))
        previous = connection.execute(text("SELECT current_setting('lock_timeout')")).scalar()
        _raw(connection, begin)
        try:
            connection.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": self.policy.lock_timeout})
            for mode in dict.fromkeys(n.mode for n in needs):
                names = ", ".join(n.name for n in needs if n.mode == mode)
                _raw(connection, f"LOCK TABLE {names} IN {SQL_MODE[mode]} MODE")
            result = execute()
        except BaseException:
            _raw(connection, undo)
            raise
        _raw(connection, done)
        if in_transaction:
            connection.execute(text("SELECT set_config('lock_timeout', :v, true)"), {"v": previous})
            xid = connection.execute(text("SELECT pg_current_xact_id()::text")).scalar()
            self.held.setdefault(xid, set()).update(n.oid for n in needs)
        return result

    def holds_other(self, connection: Any, needs: list[Need]) -> bool:
        """This transaction already locked another live table: waiting here would queue its workload."""
        xid = connection.execute(text("SELECT pg_current_xact_id_if_assigned()::text")).scalar()
        return bool(self.held.get(xid, set()) - {n.oid for n in needs})

    def tell(self, blockers: list[Blocker]) -> None:
        """Who blocks, when the set changes and every 5 s (pid, application, state, age; no query text)."""
        now, pids = time.monotonic(), tuple(sorted({b.pid for b in blockers}))
        if pids != self.told[0] or now - self.told[1] >= 5.0:
            self.told = (pids, now)
            self.report(f"waiting, outside the lock queue, for a lock on {blockers[0].table} held by "
                        + "; ".join(b.describe() for b in blockers[:3]))

    def cancel_autovacuum(self, connection: Any, blockers: list[Blocker]) -> None:
        """Postgres cancels an autovacuum that blocks a queued lock request after deadlock_timeout; the
        guard never queues, so it does the same itself (the table is vacuumed again later). Without the
        right to signal it (a superuser's process), the guard waits for it like for any other holder."""
        for blocker in blockers:
            if blocker.autovacuum and blocker.pid not in self.seen:
                refused = cancel(connection, blocker)
                self.seen[blocker.pid] = time.monotonic()
                self.report(f"could not cancel autovacuum {blocker.describe()}: {refused}" if refused
                            else f"cancelled autovacuum {blocker.describe()}, as Postgres does for a waiting lock")

    def cancel_old(self, connection: Any, blockers: list[Blocker]) -> None:
        if self.policy.cancel_after is None:
            return
        now = time.monotonic()
        for blocker in blockers:
            if now - self.seen.setdefault(blocker.pid, now) >= self.policy.cancel_after:
                what = "ended" if blocker.state.startswith("idle in transaction") else "cancelled"
                refused = cancel(connection, blocker)
                self.report(f"could not cancel {blocker.describe()}: {refused}" if refused
                            else f"{what} {blocker.describe()}")
                self.seen.pop(blocker.pid, None)

    def check_deadline(self, connection: Any, needs: list[Need], blockers: list[Blocker]) -> None:
        now = time.monotonic()
        self.started = self.started if self.started is not None else now
        if now - self.started >= self.policy.deadline:
            blockers = blockers or self.holders(connection, needs)
            waited, self.started = now - self.started, None
            raise LockWaitExpired(needs[0].name, waited, blockers[0] if blockers else None)


def _sql_of(construct: Any, dialect: Any) -> str | None:
    if isinstance(construct, str):
        return construct
    try:
        return str(construct.compile(dialect=dialect))
    except Exception:  # a construct that needs its parameters to compile locks nothing we can read
        return None
