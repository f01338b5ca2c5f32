"""Postgres: COPY every table in one transaction, as the role that may write every tenant.

Seeding runs as the declared role with BYPASSRLS (``sovren_migrator``:
``SET LOCAL ROLE``), never by disabling row security on a table; COPY FROM is
allowed for such a role. Triggers fire as in production, so the audit chain
grows a hash-chained row per audited row. One COPY per table streams every
block of users in COPY's binary format (see :mod:`.postgres_rows`); psycopg's
queued writer sends a block from a thread while the next one is generated, so
generation overlaps the server's work.

A table with columns declared ``Encrypted`` is COPY'd into a temporary table
first and inserted from there with those columns encrypted by pgcrypto, as
the declaration says (``armor(pgp_sym_encrypt(value, key, options))`` for a
text column): the plaintext is deterministic, the ciphertext is not (OpenPGP
salts every message, so equal tokens never look equal).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable, Mapping

import threading
from queue import Queue

import psycopg
from psycopg import sql
from psycopg.copy import LibpqWriter

from ..core.errors import first_line
from ..core.urls import redact_text
from ..postgres import roles
from ..postgres.encryption import encrypt_sql
from ..postgres.state import Encrypted
from .draws import SEEDED_HIGH, SEEDED_LOW
from .postgres_rows import BINARY_SIGNATURE, BINARY_TRAILER, TableRows
from .prevalidate import SeedFailed
from .rows import serial_range

if TYPE_CHECKING:
    from .declared import TableGraph, TablePlan
    from .plan import Plan

Advance = Callable[[int], None]
CHUNK = 128 * 1024          # bytes of COPY data a queued item holds
QUEUED_CHUNKS = 32          # at most 4 MiB of COPY data waits for the server
ENCRYPTION_KEY_VAR = "SOVREN_DB_ENCRYPTION_KEY"
SEEDED_UUID = "{0} BETWEEN %s::uuid AND %s::uuid AND substr({0}::text, 15, 1) = '8'"


def seeded_condition(table: "TablePlan", graph: "TableGraph") -> tuple[sql.Composable, list] | None:
    """SQL selecting the table's seeded rows by its marker column (a seeded uuid or integer key, or a
    foreign key to a seeded one), with its parameters; None when the table has no such column."""
    if table.marker is None:
        return None
    column, kind = table.marker
    owner = table
    if kind == "reference":
        ref = next(r for r in ((table.parent,) if table.parent else ()) + table.references if r.columns[0] == column)
        owner = next(t for t in graph.declared if t.name == ref.target)
        if owner.marker is None or owner.marker[1] == "reference" or owner.marker[0] != ref.target_columns[0]:
            return None
        kind = owner.marker[1]
        source = owner.column(ref.target_columns[0])
    else:
        source = owner.column(column)
    name = sql.Identifier(column)
    if kind == "uuid":
        return sql.SQL(SEEDED_UUID).format(name), [SEEDED_LOW, SEEDED_HIGH]
    return sql.SQL("{} BETWEEN %s AND %s").format(name), list(serial_range(source.encoding))


def act_as(conn: psycopg.Connection, role: str) -> None:
    """``SET LOCAL ROLE`` for the current transaction; Refused (in seeding's words) when the login may not."""
    roles.act_as(conn, role, "Seeding", remedy=", or seed as a user who may")


@dataclass(frozen=True)
class Encryption:
    """How seeded values of one column are encrypted: its declaration, its armoring and the key."""

    mark: Encrypted
    armored: bool       # a text column holds ASCII-armored ciphertext, a bytea column raw ciphertext
    key: str = field(repr=False)

    @property
    def column(self) -> str:
        return self.mark.column

    def expression(self) -> sql.Composable:
        """The SQL encrypting the column; key and options are bind parameters, never statement text
        (the audit trigger records the statement, ``current_query()``, in the immutable log)."""
        return encrypt_sql(self.mark, self.armored, sql.Identifier(self.column),
                           sql.Placeholder(f"{self.column}_key"), sql.Placeholder(f"{self.column}_options"))

    def parameters(self) -> dict[str, str]:
        return {f"{self.column}_key": self.key, f"{self.column}_options": self.mark.options}


def copy_tables(conn: psycopg.Connection, plan: "Plan", tables: Iterable[TableRows],
                advance: Advance = lambda n: None,
                encrypted: Mapping[str, list[Encryption]] | None = None) -> dict[str, int]:
    """COPY each table's rows, block after block; returns rows per table. Inside the caller's transaction."""
    counts = {}
    with conn.cursor() as cursor:
        for table in tables:
            columns = (encrypted or {}).get(table.table, [])
            staged = bool(columns) or table.keyless
            try:
                if staged:
                    _stage(cursor, table)
                counts[table.table] = _copy_blocks(cursor, plan, table, f"seed_{table.table}" if staged else None,
                                                   advance)
                if staged:
                    _insert_encrypted(cursor, table, columns)
            except psycopg.Error as exc:
                raise SeedFailed(f"Postgres refused the seeded rows of {table.table} and nothing was kept: "
                                 f"{_reason(exc, conn)}") from None
    return counts


def _copy_blocks(cursor: psycopg.Cursor, plan: "Plan", table: TableRows, into: str | None, advance: Advance) -> int:
    rows = 0
    with cursor.copy(table.copy_sql(into), writer=BoundedWriter(cursor)) as copy:
        if table.in_binary:
            copy.write(BINARY_SIGNATURE)
        for block in plan.blocks():
            data, count = table.data(block)
            if count:
                copy.write(data)
                rows += count
            advance(count)
        if table.in_binary:
            copy.write(BINARY_TRAILER)
    return rows


class BoundedWriter(LibpqWriter):
    """COPY data sent from a thread while the next block is generated, never more than QUEUED_CHUNKS behind.

    Written here because psycopg's QueuedLibpqWriter queues up to 1,024 items of 128 KiB: when the server
    is slower than generation (audit triggers), most of a table's COPY data waited in memory, so the seed's
    peak grew with --scale. Here ``write`` blocks once 4 MiB wait for the server."""

    def __init__(self, cursor: psycopg.Cursor):
        super().__init__(cursor)
        self._queue: Queue = Queue(maxsize=QUEUED_CHUNKS)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, data) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._send, name="seed-copy", daemon=True)
            self._thread.start()
        if self._error is not None:
            raise self._error
        view = memoryview(data)
        for start in range(0, len(view), CHUNK):
            self._queue.put(view[start:start + CHUNK])

    def _send(self) -> None:
        try:
            while data := self._queue.get():
                super().write(data)
        except BaseException as exc:   # handed to the main thread; the queue is drained so write() never hangs
            self._error = exc
            while self._queue.get():
                pass

    def finish(self, exc: BaseException | None = None) -> None:
        self._queue.put(b"")
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error
        super().finish(exc)


def _stage(cursor: psycopg.Cursor, table: TableRows) -> None:
    cursor.execute(sql.SQL("CREATE TEMP TABLE {} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP").format(
        sql.Identifier(f"seed_{table.table}"), sql.Identifier(table.table)))


def _insert_encrypted(cursor: psycopg.Cursor, table: TableRows, columns: list[Encryption]) -> None:
    """Insert the staged rows, encrypting ``columns``. A table whose seeded rows cannot be told apart
    (a text key, no seeded id: --reset cannot find them) keeps the rows already there: the seed is
    deterministic, so a row with the same key is the same row."""
    by_column = {e.column: e.expression() for e in columns}
    values = [by_column.get(c, sql.Identifier(c)) for c in table.names]
    staged = sql.Identifier(f"seed_{table.table}")
    cursor.execute(sql.SQL("INSERT INTO {} ({}) SELECT {} FROM {}" + (" ON CONFLICT DO NOTHING" if table.keyless
                                                                       else "")).format(
        sql.Identifier(table.table), sql.SQL(", ").join(map(sql.Identifier, table.names)),
        sql.SQL(", ").join(values), staged), {k: v for e in columns for k, v in e.parameters().items()})
    cursor.execute(sql.SQL("DROP TABLE {}").format(staged))


def delete_seeded(conn: psycopg.Connection, tables: Iterable["TablePlan"], graph: "TableGraph",
                  advance: Advance = lambda n: None) -> dict[str, int]:
    """Delete the seeded rows of ``tables`` (children first: the graph's declared order); rows per table."""
    deleted = {}
    for table in tables:
        condition = seeded_condition(table, graph)
        if condition is None:
            continue
        where, params = condition
        try:
            cursor = conn.execute(sql.SQL("DELETE FROM {} WHERE ").format(sql.Identifier(table.name)) + where, params)
        except psycopg.Error as exc:
            raise SeedFailed(f"Postgres refused to delete the seeded rows of {table.name}: "
                             f"{_reason(exc, conn)}") from None
        deleted[table.name] = cursor.rowcount
        advance(cursor.rowcount)
    return deleted


def _reason(exc: psycopg.Error, conn: psycopg.Connection) -> str:
    text = first_line(exc)
    if isinstance(exc, psycopg.errors.UniqueViolation):
        text += " (the database holds seeded rows that no manifest records: run with --reset)"
    return redact_text(text.rstrip("."), conn.info.dsn) + "."
