"""``sovren-db rotate-key``: re-encrypt the columns declared ``Encrypted`` (Appendix G.3), then verify.

G.3's single ``UPDATE`` holds every row of the table locked for the whole
rotation and fails entirely on one undecryptable value. Here:

- rows go in batches, by keyset pagination on the primary key, one
  transaction per batch, as the declared BYPASSRLS role (``SET LOCAL ROLE``);
- progress is kept in ``sovren_db.key_rotations`` under a fingerprint of the
  key pair (PBKDF2, never a key), committed with each batch: a rerun with the
  same pair continues after the last batch done;
- a value that does not decrypt with the old key (already rotated, or
  corrupt) is left alone: decryption goes through a session-local function
  (``pg_temp``) that returns NULL instead of failing the batch;
- a verification pass then decrypts every value with the new key; values
  that do not are reported (exit 1) and the next run rescans the table;
- without an old key, plaintext values of a text column are encrypted (the
  first encryption); values already armored are only verified.

Keys are read from environment variables or files named by options, never
from argv, and reach the server only as bind parameters (so not in
``pg_stat_activity`` or a process title); the session asks the server not to
log parameters where it may. The pgcrypto options are bound too: ``payments``
is audited, and the audit trigger keeps the statement text (``current_query()``)
in the immutable log. The SQL is built by :mod:`sovren_db.postgres.encryption`,
as the seeder's is.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import psycopg
from psycopg import sql

from ..commands import Outcome
from ..core.errors import ConfigError, SovrenError, first_line
from ..core.findings import Finding
from ..postgres.declared import load_schema
from ..postgres.encryption import declared_encrypted, decrypt_sql, encrypt_sql, is_armored
from ..postgres.roles import act_as, bypass_role
from ..postgres.state import Encrypted, Schema
from .ledger import ROTATIONS, ensure_tables, postgres_session

if TYPE_CHECKING:
    from ..core.config import Settings

ARMOR_HEADER = "-----BEGIN PGP MESSAGE-----"
FINGERPRINT_SALT = b"sovren-db rotate-key"
FINGERPRINT_ROUNDS = 200_000
SAMPLE = 5


class RotationFailed(SovrenError):
    """A batch failed on the server; the batches committed before it stay done."""


@dataclass(frozen=True)
class KeySource:
    """Where a key is read from: an environment variable or a file, named on the command line."""

    role: str                       # old | new
    env: str | None = None
    file: Path | None = None

    @classmethod
    def of(cls, role: str, env: str | None, file: Path | None) -> "KeySource | None":
        if env and file:
            raise ConfigError(f"Give --{role}-key-env or --{role}-key-file, not both.")
        return cls(role, env, file) if env or file else None

    @property
    def where(self) -> str:
        return f"environment variable {self.env}" if self.env else f"file {self.file}"

    def read(self) -> str:
        if self.env:
            value = os.environ.get(self.env)
            if value is None:
                raise ConfigError(f"Environment variable {self.env} (--{self.role}-key-env) is not set.")
        else:
            try:
                value = Path(self.file).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                reason = getattr(exc, "strerror", None) or "not UTF-8 text"
                raise ConfigError(f"{self.file} (--{self.role}-key-file) cannot be read: {reason}.") from None
        value = value.rstrip("\r\n")
        if not value.strip():
            raise ConfigError(f"The {self.role} key in {self.where} is empty.")
        return value


def key_pair_fingerprint(old: str | None, new: str) -> str:
    """What the progress ledger is keyed by: slow to invert, never a key."""
    material = f"{len(old or '')}:{old or ''}{new}".encode()
    return hashlib.pbkdf2_hmac("sha256", material, FINGERPRINT_SALT, FINGERPRINT_ROUNDS).hex()[:32]


# -- SQL -------------------------------------------------------------------------

def decrypt_function(mark: Encrypted, armored: bool) -> tuple[sql.Composable, sql.Composable]:
    """A session-local function decrypting a stored value, NULL when it cannot (wrong key, not ciphertext)."""
    name = sql.SQL("pg_temp.{}").format(sql.Identifier(f"sovren_decrypt_{'armored' if armored else 'raw'}_{mark.data}"))
    decrypt = decrypt_sql(mark, armored, sql.SQL("p_value"), sql.SQL("p_key"))
    ddl = sql.SQL("CREATE OR REPLACE FUNCTION {name}(p_value {argument}, p_key text) RETURNS {data} "
                  "LANGUAGE plpgsql AS $sovren$ BEGIN RETURN {decrypt}; "
                  "EXCEPTION WHEN OTHERS THEN RETURN NULL; END $sovren$").format(
        name=name, argument=sql.SQL("text" if armored else "bytea"), data=sql.SQL(mark.data), decrypt=decrypt)
    return name, ddl


def encrypt_expression(mark: Encrypted, armored: bool, plain: sql.Composable) -> sql.Composable:
    """``armor(pgp_sym_encrypt(plain, %s, %s))`` and its bytea forms: bind the new key, then ``mark.options``
    (never inlined: ``payments`` is audited, and the audit trigger records the statement text)."""
    return encrypt_sql(mark, armored, plain, sql.Placeholder(), sql.Placeholder())


@dataclass
class ColumnReport:
    target: str
    rotated: int = 0
    skipped: int = 0
    resumed: bool = False
    earlier: bool = False
    values: int = 0
    failed: int = 0
    sample: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"column": self.target, "rotated": self.rotated, "skipped": self.skipped, "resumed": self.resumed,
                "rotated_earlier": self.earlier, "values": self.values, "not_decrypting": self.failed,
                "sample": self.sample}


class ColumnRotation:
    """One encrypted column: batched re-encryption with a ledger, then the verification pass."""

    def __init__(self, conn: psycopg.Connection, schema: Schema, mark: Encrypted, role: str, fingerprint: str):
        self.conn, self.mark, self.role, self.fingerprint = conn, mark, role, fingerprint
        self.armored = is_armored(schema, mark)
        table = schema.metadata.tables[mark.table]
        self.pk = [c.name for c in table.primary_key.columns]
        self.table, self.column = sql.Identifier(mark.table), sql.Identifier(mark.column)
        self.decrypt, ddl = decrypt_function(mark, self.armored)
        conn.execute(ddl)
        conn.commit()
        self.report = ColumnReport(mark.key)

    # -- keyset pagination ---------------------------------------------------
    def _row(self, prefix: str = "") -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(", ").join(sql.SQL(prefix) + sql.Identifier(c) for c in self.pk))

    def _values(self) -> sql.Composable:
        return sql.SQL("({})").format(sql.SQL(", ").join(sql.Placeholder() * len(self.pk)))

    def _range(self, last: list | None) -> tuple[sql.Composable, list]:
        upper = sql.SQL("{} <= {}").format(self._row(), self._values())
        if last is None:
            return upper, []
        return sql.SQL("{} > {} AND {}").format(self._row(), self._values(), upper), list(last)

    def _next_end(self, last: list | None, size: int) -> list | None:
        """The primary key (as text) of the last row of the next batch after ``last``; None when done."""
        where, params = (sql.SQL("WHERE {} > {}").format(self._row(), self._values()), list(last)) if last else (
            sql.SQL(""), [])
        keys = sql.SQL(", ").join(map(sql.Identifier, self.pk))
        shown = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in self.pk)
        query = sql.SQL("SELECT {shown} FROM (SELECT {keys} FROM {table} {where} ORDER BY {keys} LIMIT %s) AS batch "
                        "ORDER BY {keys} DESC LIMIT 1").format(shown=shown, keys=keys, table=self.table, where=where)
        row = self.conn.execute(query, [*params, size]).fetchone()
        return list(row) if row else None

    # -- the rotation pass -----------------------------------------------------
    def rotate(self, old: str | None, new: str, batch_size: int,
               after_batch: Callable[[str, int], None] | None) -> None:
        state = self._ledger()
        if state["finished_at"] is not None:
            self.report.earlier = True
            return
        last = state["last_key"]
        self.report.resumed = last is not None
        while True:
            act_as(self.conn, self.role, "Key rotation")
            end = self._next_end(last, batch_size)
            if end is None:
                self.conn.rollback()
                break
            rotated, seen = self._batch(old, new, last, end)
            self.report.rotated += rotated
            self.report.skipped += seen - rotated
            self.conn.execute("RESET ROLE")
            self.conn.execute(f"UPDATE {ROTATIONS} SET last_key = %s, rows_done = rows_done + %s "
                              "WHERE fingerprint = %s AND target = %s",
                              (json.dumps(end), rotated, self.fingerprint, self.mark.key))
            self.conn.commit()
            last = end
            if after_batch is not None:
                after_batch(self.mark.key, rotated)
        self.conn.execute(f"UPDATE {ROTATIONS} SET finished_at = clock_timestamp() "
                          "WHERE fingerprint = %s AND target = %s", (self.fingerprint, self.mark.key))
        self.conn.commit()

    def _batch(self, old: str | None, new: str, last: list | None, end: list) -> tuple[int, int]:
        """Re-encrypt the rows after ``last`` up to ``end``; (rotated, rows holding a value)."""
        where, params = self._range(last)
        params += end
        present = self.conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE {} AND {} IS NOT NULL").format(
            self.table, where, self.column), params).fetchone()[0]
        if old is None:
            statement = sql.SQL("UPDATE {} SET {} = {} WHERE {} AND {} IS NOT NULL AND {} NOT LIKE %s").format(
                self.table, self.column, encrypt_expression(self.mark, True, self.column), where, self.column,
                self.column)
            values = [new, self.mark.options, *params, ARMOR_HEADER + "%"]
        else:
            keys = sql.SQL(", ").join(map(sql.Identifier, self.pk))
            statement = sql.SQL(
                "UPDATE {table} AS t SET {column} = {encrypted} FROM (SELECT {keys}, {decrypt}({column}, %s) AS plain "
                "FROM {table} WHERE {where} AND {column} IS NOT NULL) AS s "
                "WHERE {t_row} = {s_row} AND s.plain IS NOT NULL").format(
                table=self.table, column=self.column,
                encrypted=encrypt_expression(self.mark, self.armored, sql.SQL("s.plain")), keys=keys,
                decrypt=self.decrypt, where=where, t_row=self._row("t."), s_row=self._row("s."))
            values = [new, self.mark.options, old, *params]
        return self.conn.execute(statement, values).rowcount, present

    def _ledger(self) -> dict:
        self.conn.execute(f"INSERT INTO {ROTATIONS} (fingerprint, target) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                          (self.fingerprint, self.mark.key))
        row = self.conn.execute(f"SELECT last_key, finished_at FROM {ROTATIONS} WHERE fingerprint = %s AND target = %s",
                                (self.fingerprint, self.mark.key)).fetchone()
        self.conn.commit()
        return {"last_key": row[0], "finished_at": row[1]}

    # -- verification ------------------------------------------------------------
    def verify(self, new: str) -> None:
        """Decrypt every value with the new key; on failures, the next run rescans the table."""
        keys = sql.SQL(", ").join(sql.SQL("{}::text").format(sql.Identifier(c)) for c in self.pk)
        query = sql.SQL(
            "SELECT count(*) FILTER (WHERE present), count(*) FILTER (WHERE present AND NOT ok), "
            "(array_agg(shown ORDER BY shown) FILTER (WHERE present AND NOT ok))[1:%s] "
            "FROM (SELECT concat_ws(', ', {keys}) AS shown, {column} IS NOT NULL AS present, "
            "{decrypt}({column}, %s) IS NOT NULL AS ok FROM {table}) AS s").format(
            keys=keys, column=self.column, decrypt=self.decrypt, table=self.table)
        act_as(self.conn, self.role, "Key rotation")
        self.conn.execute("SET LOCAL statement_timeout = 0")
        values, failed, sample = self.conn.execute(query, (SAMPLE, new)).fetchone()
        self.conn.execute("RESET ROLE")
        self.report.values, self.report.failed, self.report.sample = values, failed, list(sample or [])
        done = "verified_at = clock_timestamp()" if not failed else "finished_at = NULL, last_key = NULL"
        self.conn.execute(f"UPDATE {ROTATIONS} SET {done} WHERE fingerprint = %s AND target = %s",
                          (self.fingerprint, self.mark.key))
        self.conn.commit()


def rotate(settings: "Settings", *, old: KeySource | None, new: KeySource | None, batch_size: int = 1000,
           verify_only: bool = False, after_batch: Callable[[str, int], None] | None = None) -> Outcome:
    """Rotate every declared encrypted column from ``old`` to ``new`` (see the module docstring)."""
    if new is None:
        raise ConfigError("Name the new key with --new-key-env VAR or --new-key-file PATH.")
    new_key = new.read()
    old_key = old.read() if old is not None and not verify_only else None
    if old_key is not None and old_key == new_key:
        raise ConfigError("The old and new keys are the same: there is nothing to rotate.")
    schema = load_schema(settings.postgres_dir)
    marks = declared_encrypted(settings.postgres_dir, schema)
    if not marks:
        return Outcome(lines=["no column is declared Encrypted: nothing to rotate"], data={"columns": []})
    if old_key is None and not verify_only:
        raw = [m.key for m in marks if not is_armored(schema, m)]
        if raw:
            raise ConfigError(f"{raw[0]} is a bytea column: plaintext cannot be told from ciphertext there, "
                              "so a first encryption needs --old-key-env or --old-key-file.")
    role = bypass_role(schema, grants="SELECT and UPDATE", purpose="key rotation")
    fingerprint = key_pair_fingerprint(old_key, new_key)
    began = time.perf_counter()
    reports = []
    with postgres_session(settings) as conn:
        notes = _quiet_parameters(conn)
        ensure_tables(conn)
        for mark in marks:
            rotation = ColumnRotation(conn, schema, mark, role, fingerprint)
            try:
                if not verify_only:
                    rotation.rotate(old_key, new_key, batch_size, after_batch)
                rotation.verify(new_key)
            except psycopg.Error as exc:
                conn.rollback()
                raise RotationFailed(_failure(mark, exc, old_key, new_key)) from None
            reports.append(rotation.report)
    return _outcome(reports, fingerprint, verify_only, time.perf_counter() - began, notes)


def _quiet_parameters(conn: psycopg.Connection) -> list[str]:
    """Ask the server not to write bind parameters (the keys) to its log; say so where it cannot be asked."""
    conn.execute("SET log_parameter_max_length_on_error = 0")
    superuser, logs = conn.execute(
        "SELECT rolsuper, current_setting('log_statement') IN ('all', 'mod') "
        "OR current_setting('log_min_duration_statement')::int >= 0 FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    if superuser:
        conn.execute("SET log_parameter_max_length = 0")
    conn.commit()
    if logs and not superuser:
        return ["the server logs statements with their parameters (log_statement or log_min_duration_statement): "
                "have a superuser set log_parameter_max_length = 0 for this role so that keys stay out of its log"]
    return []


def _failure(mark: Encrypted, exc: psycopg.Error, *keys: str | None) -> str:
    reason = first_line(exc)
    for key in keys:
        if key:
            reason = reason.replace(key, "***")
    return (f"Key rotation of {mark.key} failed on the server ({reason.rstrip('.')}); the batches committed "
            "before it are kept: run rotate-key again with the same keys to continue.")


def _outcome(reports: list[ColumnReport], fingerprint: str, verify_only: bool, seconds: float,
             notes: list[str]) -> Outcome:
    lines, findings = [], []
    key = "the given key" if verify_only else "the new key"
    for r in reports:
        if not verify_only:
            done = "rotated by an earlier run" if r.earlier else (
                f"{r.rotated:,} values re-encrypted" + (" (resumed)" if r.resumed else "")
                + (f", {r.skipped:,} left as they were (not decrypting with the old key, or already encrypted)"
                   if r.skipped else ""))
            lines.append(f"{r.target}: {done}")
        lines.append(f"{r.target}: {r.values - r.failed:,} of {r.values:,} values decrypt with {key}")
        if r.failed:
            findings.append(Finding("postgres", f"column {r.target}", f"{r.failed:,} of {r.values:,} values do not "
                                    f"decrypt with {key} (first: {'; '.join(r.sample)})", code="rotate-verify"))
    return Outcome(exit_code=1 if findings else 0, lines=lines, findings=findings, notes=notes,
                   data={"key_pair": fingerprint[:12], "verify_only": verify_only, "seconds": round(seconds, 3),
                         "columns": [r.to_json() for r in reports]})
