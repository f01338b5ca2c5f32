"""Postgres examined: statements, sessions, locks, connections, replicas, and what only the chain knows.

One connection (autocommit, short statement timeout), a handful of catalog
and statistics queries; nothing is written. Query text is read only from
``pg_stat_statements`` (already normalised) and scrubbed again; the sessions
of ``pg_stat_activity`` are described by pid, role, application and age,
never by their query.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

from ..core.errors import StoreUnavailable
from .model import Examination
from .statements import fingerprint, scrub
from .thresholds import Thresholds

if TYPE_CHECKING:
    from ..core.config import Settings

CONNECT_TIMEOUT = 5
STATEMENT_TIMEOUT = "10s"
INSUFFICIENT = "<insufficient privilege>"
EXPLAIN_STEP = "investigate with EXPLAIN (ANALYZE, BUFFERS) and index or rewrite it (runbook H.4)"


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name="sovren-db doctor",
                           options=f"-c statement_timeout={STATEMENT_TIMEOUT}")


def examine_server(conn: psycopg.Connection, exam: Examination, limits: Thresholds) -> None:
    """Every probe of the running server; one that fails is reported and the next one runs."""
    for probe in (statements, sessions, connections, replication, invalid_indexes, sequences, checkpoints):
        with exam.probe(probe.__doc__.split(":")[0]):
            probe(conn, exam, limits)


# -- pg_stat_statements ------------------------------------------------------

STATEMENTS_SQL = """
SELECT queryid, calls, mean_exec_time, query FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND calls > 0
ORDER BY mean_exec_time DESC LIMIT %s
"""


def statements(conn: psycopg.Connection, exam: Examination, limits: Thresholds) -> None:
    """pg_stat_statements: statements whose mean time crosses statement_mean_ms."""
    if not _extension_created(conn, exam):
        return
    try:
        rows = conn.execute(STATEMENTS_SQL, (limits.statement_fingerprints,)).fetchall()
    except psycopg.errors.ObjectNotInPrerequisiteState:
        exam.unexamined("pg_stat_statements", NOT_PRELOADED + ".")
        return
    if any(query == INSUFFICIENT for *_, query in rows):
        user = conn.execute("SELECT current_user").fetchone()[0]
        exam.unexamined("pg_stat_statements", f"role {user} may not read other roles' statements: "
                                              f"GRANT pg_read_all_stats TO {user}.")
        return
    slow = [row for row in rows if row[2] / 1000 > limits.statement_mean_seconds]
    for queryid, calls, mean_ms, query in rows:
        exam.sample("postgres_statement_mean_seconds", mean_ms / 1000, fingerprint=fingerprint(queryid))
    exam.sample("postgres_slow_statements", len(slow))
    for queryid, calls, mean_ms, query in slow:
        exam.finding(f"statement {fingerprint(queryid)}",
                     f"mean {mean_ms:,.0f} ms over {calls:,} calls, above {limits.statement_mean_ms:g} ms: "
                     f"{EXPLAIN_STEP}; {scrub(query)}", code="slow-statement")


NOT_PRELOADED = ("the server does not load it: add pg_stat_statements to shared_preload_libraries in "
                 "postgresql.conf and restart the server")


def _extension_created(conn: psycopg.Connection, exam: Examination) -> bool:
    installed, database = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = "
                                       "'pg_stat_statements'), current_database()").fetchone()
    if installed:
        return True
    try:
        preload = conn.execute("SELECT current_setting('shared_preload_libraries')").fetchone()[0]
    except psycopg.errors.InsufficientPrivilege:  # only pg_read_all_settings may read it: say both steps
        preload = None
    if preload is not None and "pg_stat_statements" not in [lib.strip() for lib in preload.split(",")]:
        exam.unexamined("pg_stat_statements", NOT_PRELOADED + ", then CREATE EXTENSION pg_stat_statements.")
    else:
        exam.unexamined("pg_stat_statements", f"the extension is not created in database {database}: "
                                              "CREATE EXTENSION pg_stat_statements.")
    return False


# -- pg_stat_activity ----------------------------------------------------------

SESSIONS_SQL = """
SELECT pid, usename, application_name, state,
       extract(epoch FROM now() - coalesce(xact_start, query_start)),
       extract(epoch FROM now() - state_change),
       pg_blocking_pids(pid),
       extract(epoch FROM now() - query_start)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() AND state IS NOT NULL
"""


def sessions(conn: psycopg.Connection, exam: Examination, limits: Thresholds) -> None:
    """pg_stat_activity: long-running and idle-in-transaction sessions, and who blocks whom."""
    long_running = idle = blocked = 0
    for pid, role, app, state, xact_age, state_age, blockers, query_age in conn.execute(SESSIONS_SQL):
        who = f"session {pid} ({role or '?'}, {app or 'no application_name'})"
        if state == "idle in transaction" and (state_age or 0) > limits.idle_in_transaction_seconds:
            idle += 1
            exam.finding(who, f"idle in transaction for {state_age:,.0f} s, above "
                              f"{limits.idle_in_transaction_seconds:g} s: it holds its locks and snapshot; "
                              f"fix the application or SELECT pg_terminate_backend({pid})", code="idle-in-transaction")
        elif state == "active" and (xact_age or 0) > limits.long_running_seconds:
            long_running += 1
            exam.finding(who, f"running for {xact_age:,.0f} s, above {limits.long_running_seconds:g} s: "
                              f"look at it in pg_stat_activity, or SELECT pg_cancel_backend({pid})",
                         code="long-running")
        if blockers and (query_age or 0) > limits.lock_wait_seconds:
            blocked += 1
            exam.finding(who, f"waits {query_age:,.0f} s on a lock held by session(s) "
                              f"{', '.join(map(str, blockers))}: end or cancel the blocker", code="blocked")
    exam.sample("postgres_long_running_sessions", long_running)
    exam.sample("postgres_idle_in_transaction_sessions", idle)
    exam.sample("postgres_blocked_sessions", blocked)


def connections(conn: psycopg.Connection, exam: Examination, limits: Thresholds) -> None:
    """connections: in use against max_connections."""
    used, limit = conn.execute("SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'), "
                               "current_setting('max_connections')::int").fetchone()
    exam.sample("postgres_connections", used)
    exam.sample("postgres_max_connections", limit)
    if used > limits.connections_ratio * limit:
        exam.finding("connections", f"{used} of max_connections {limit} in use ({used / limit:.0%}), above "
                                    f"{limits.connections_ratio:.0%}: pool them (pgBouncer) or raise max_connections",
                     code="connections")


def replication(conn: psycopg.Connection, exam: Examination, limits: Thresholds) -> None:
    """replication: replay lag of every replica pg_stat_replication shows."""
    rows = conn.execute("SELECT coalesce(application_name, client_addr::text, pid::text), "
                        "coalesce(extract(epoch FROM replay_lag), 0) FROM pg_stat_replication").fetchall()
    exam.sample("postgres_replicas", len(rows))
    for name, lag in rows:
        exam.sample("postgres_replication_lag_seconds", lag, replica=name)
        if lag > limits.replication_lag_seconds:
            exam.finding(f"replica {name}", f"replays {lag:,.1f} s behind, above {limits.replication_lag_seconds:g} s: "
                                            "check its I/O and network; fail over only to a replica that keeps up "
                                            "(runbook H.1)", code="replication-lag")


def invalid_indexes(conn: psycopg.Connection, exam: Examination, limits: Thresholds) -> None:
    """pg_index: invalid indexes left by a failed CREATE INDEX CONCURRENTLY."""
    names = [r[0] for r in conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid "
                                        "ORDER BY 1")]
    exam.sample("postgres_invalid_indexes", len(names))
    for name in names:
        exam.finding(f"index {name}", "is invalid (a CREATE INDEX CONCURRENTLY failed): it costs writes and serves "
                                      f"no query; DROP INDEX CONCURRENTLY {name}, then migrate again",
                     code="invalid-index")


def sequences(conn: psycopg.Connection, exam: Examination, limits: Thresholds) -> None:
    """pg_sequences: sequences near their maximum."""
    rows = conn.execute("SELECT schemaname || '.' || sequencename, last_value::float8 / max_value::float8 "
                        "FROM pg_sequences WHERE last_value IS NOT NULL ORDER BY 2 DESC").fetchall()
    exam.sample("postgres_sequence_used_ratio_max", rows[0][1] if rows else 0)
    for name, ratio in rows:
        if ratio <= limits.sequence_ratio:
            break
        exam.finding(f"sequence {name}", f"has used {ratio:.0%} of its range, above {limits.sequence_ratio:.0%}: "
                                         "move its column to bigint before it runs out", code="sequence")


# PG 17 moved the checkpoint counters from pg_stat_bgwriter to pg_stat_checkpointer
_CHECKPOINT_COUNTERS = {True: "SELECT num_timed, num_requested FROM pg_stat_checkpointer",
                        False: "SELECT checkpoints_timed, checkpoints_req FROM pg_stat_bgwriter"}


def checkpoints(conn: psycopg.Connection, exam: Examination, limits: Thresholds) -> None:
    """checkpoints: the last one's age (pg_control_checkpoint) and how many ran on time or were requested.
    Samples only: an idle server skips checkpoints, and CREATE DATABASE requests one, so neither is a fault."""
    age = conn.execute("SELECT extract(epoch FROM now() - checkpoint_time)::float8 FROM pg_control_checkpoint()"
                       ).fetchone()[0]
    exam.sample("postgres_checkpoint_age_seconds", max(age, 0.0))
    timed, requested = conn.execute(_CHECKPOINT_COUNTERS[conn.info.server_version >= 170000]).fetchone()
    exam.sample("postgres_checkpoints_timed_total", timed)
    exam.sample("postgres_checkpoints_requested_total", requested)


def examine(settings: "Settings", limits: Thresholds, exam: Examination) -> psycopg.Connection:
    """Connect and run every server probe; the open connection is returned for the chain's probes."""
    url = settings.postgres_url
    try:
        conn = connect(url)
    except psycopg.Error as exc:
        raise StoreUnavailable("postgres", url, str(exc)) from None
    examine_server(conn, exam, limits)
    return conn
