"""Sovren's Postgres tables as typed columns, encoded for COPY in bulk, one block of users at a time.

A table gives one list of raw values per column (ids as text, timestamps as
seconds from the anchor, amounts in cents, JSON as text; None is NULL). They
are encoded column by column, never value by value through an adapter:

- binary COPY (what the loader sends): Postgres parses no uuid, timestamp or
  numeric text, which is most of its COPY time on these tables;
- text COPY lines (for people and tests: the same values, readable).

``payments.raw_card_number`` is never in a column list: it stays NULL, as the
``no_card_data`` constraint demands (Appendix G.5).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from typing import Callable

from .clock import Clock
from .entities import Block

NULL = "\\N"
PBKDF2_ITERATIONS = 600_000
UUID, TEXT, TIMESTAMP, JSONB, NUMERIC = "uuid", "text", "timestamp", "jsonb", "numeric"
LABEL = "label"   # text with few distinct values (a status, a tier, the shared password hash): encoded once each

BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
BINARY_TRAILER = b"\xff\xff"
_BINARY_NULL = b"\xff\xff\xff\xff"
_LENGTH = struct.Struct(">i").pack
_TIMESTAMP = struct.Struct(">iq").pack            # length 8, then microseconds since 2000-01-01
_PG_EPOCH = 946684800                             # 2000-01-01 in Unix seconds


@dataclass(frozen=True)
class TableRows:
    table: str
    columns: tuple[tuple[str, str], ...]          # (name, kind)
    values: Callable[[Block], list[list]]        # one list per column

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def copy_sql(self, into: str | None = None) -> str:
        return f"COPY {into or self.table} ({', '.join(self.names)}) FROM STDIN (FORMAT BINARY)"

    def binary(self, block: Block) -> tuple[bytes, int]:
        """(COPY binary tuples of the block, how many); signature and trailer are the caller's."""
        columns = self.values(block)
        rows = len(columns[0]) if columns else 0
        if not rows:
            return b"", 0
        encoded = [BINARY_ENCODERS[kind](values, block.plan.clock) for (_, kind), values in zip(self.columns, columns)]
        header = struct.pack(">h", len(self.columns))
        return b"".join(map(b"".join, zip(repeat(header, rows), *encoded))), rows

    def lines(self, block: Block) -> list[str]:
        """The same rows as COPY text lines."""
        columns = self.values(block)
        encoded = [TEXT_ENCODERS[kind](values, block.plan.clock) for (_, kind), values in zip(self.columns, columns)]
        return list(map("\t".join, zip(*encoded)))


# -- encoders: a whole column at a time -------------------------------------------------------------
def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _text_timestamps(values: list, clock: Clock) -> list[str]:
    if None not in values:
        return clock.text(values)
    return [NULL if v is None else clock.one_text(v) for v in values]


TEXT_ENCODERS: dict[str, Callable[[list, Clock], list[str]]] = {
    UUID: lambda values, clock: [NULL if v is None else v for v in values],
    TEXT: lambda values, clock: [NULL if v is None else v for v in values],
    LABEL: lambda values, clock: values,
    JSONB: lambda values, clock: values,
    TIMESTAMP: _text_timestamps,
    NUMERIC: lambda values, clock: [money(v) for v in values],
}


def _binary_text(values: list, clock: Clock) -> list[bytes]:
    if None in values:
        return [_BINARY_NULL if v is None else _LENGTH(len(b)) + b
                for v, b in zip(values, (b"" if v is None else v.encode() for v in values))]
    return [_LENGTH(len(b)) + b for b in map(str.encode, values)]


def _binary_label(values: list, clock: Clock) -> list[bytes]:
    encoded = {v: _LENGTH(len(v.encode())) + v.encode() for v in set(values)}
    return [encoded[v] for v in values]


def _binary_uuid(values: list, clock: Clock) -> list[bytes]:
    if None in values:
        return [_BINARY_NULL if v is None else b"\x00\x00\x00\x10" + bytes.fromhex(v.replace("-", ""))
                for v in values]
    raw = bytes.fromhex("".join(values).replace("-", ""))   # the whole column in one call
    return [b"\x00\x00\x00\x10" + raw[i:i + 16] for i in range(0, len(raw), 16)]


def _binary_timestamp(values: list, clock: Clock) -> list[bytes]:
    base = (clock.epoch - _PG_EPOCH) * 1_000_000
    return [_BINARY_NULL if v is None else _TIMESTAMP(8, base + v * 1_000_000) for v in values]


def _binary_jsonb(values: list, clock: Clock) -> list[bytes]:
    out = []
    for value in values:
        data = value.encode()
        out.append(_LENGTH(len(data) + 1) + b"\x01" + data)   # jsonb binary: version 1, then the text
    return out


@lru_cache(maxsize=65536)
def _numeric_cents(cents: int) -> bytes:
    """NUMERIC(p, 2) in Postgres' binary form: base-10000 digits, weight, sign, display scale 2."""
    whole, fraction = divmod(cents, 100)
    groups = []
    while whole:
        whole, group = divmod(whole, 10000)
        groups.insert(0, group)
    weight = len(groups) - 1 if groups else -1
    digits = groups + [fraction * 100]
    while digits and digits[-1] == 0:
        digits.pop()
    while digits and digits[0] == 0:
        digits.pop(0)
        weight -= 1
    if not digits:
        weight = 0
    payload = struct.pack(f">hhhh{len(digits)}h", len(digits), weight, 0, 2, *digits)
    return _LENGTH(len(payload)) + payload


BINARY_ENCODERS: dict[str, Callable[[list, Clock], list[bytes]]] = {
    UUID: _binary_uuid,
    TEXT: _binary_text,
    LABEL: _binary_label,
    JSONB: _binary_jsonb,
    TIMESTAMP: _binary_timestamp,
    NUMERIC: lambda values, clock: [_numeric_cents(v) for v in values],
}


# -- Sovren's tables --------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def password_hash(password: str, seed: int) -> str:
    """One PBKDF2-SHA256 hash (Django's format) shared by every seeded user: they all sign in with it."""
    salt = hashlib.sha256(f"sovren-seed/{seed}/salt".encode()).hexdigest()[:22]
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PBKDF2_ITERATIONS)
    return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt}${base64.b64encode(digest).decode()}"


def shadow_boards(block: Block) -> list[str]:
    """Each user's board: the ids of its executives (details in MongoDB's ``executives``)."""
    execs = block.executives
    ids, join = execs.id, '", "'.join
    return [f'{{"executives": ["{join(ids[start:start + k])}"]}}' if k else '{"executives": []}'
            for start, k in zip(execs.offsets, execs.counts)]


def users_values(block: Block) -> list[list]:
    users = block.users
    secret = password_hash(block.plan.profile.password, block.plan.seed)
    return [users.id, users.username, [secret] * block.size, users.email, users.created, block.user_tier,
            shadow_boards(block), users.last_login]


def subscriptions_values(block: Block) -> list[list]:
    subs, user_ids = block.subscriptions, block.users.id
    return [subs.id, [user_ids[p] for p in subs.parent], subs.tier, subs.status, subs.started, subs.period_end,
            subs.cancelled]


def transactions_values(block: Block) -> list[list]:
    txs, user_ids = block.transactions, block.users.id
    return [txs.id, [user_ids[p] for p in txs.parent], txs.subscription, txs.amount_cents, txs.currency, txs.status,
            txs.created]


def payments_values(block: Block) -> list[list]:
    pays, txs, user_ids = block.payments, block.transactions, block.users.id
    return [pays.id, [user_ids[txs.parent[p]] for p in pays.parent], [txs.id[p] for p in pays.parent],
            [txs.amount_cents[p] for p in pays.parent], [txs.currency[p] for p in pays.parent],
            pays.provider, pays.token, pays.last4, pays.created]


def operations_values(block: Block) -> list[list]:
    ops = block.operations
    parameters = [f'{{"kind": "{k}", "horizonDays": {h}}}' for k, h in zip(ops.kind, ops.horizon)]
    results = [f'{{"recommendation": "{r}", "confidence": {money(c)}}}'
               for r, c in zip(ops.recommendation, ops.confidence_cents)]
    return [ops.id, [block.users.id[p] for p in ops.parent], parameters, results, ops.confidence_cents, ops.executed]


# In foreign-key order: a table's parents are loaded before it.
TABLES = (
    TableRows("users", (("user_id", UUID), ("username", TEXT), ("password_hash", LABEL), ("email", TEXT),
                        ("created_at", TIMESTAMP), ("subscription_tier", LABEL), ("shadow_board", JSONB),
                        ("last_login", TIMESTAMP)), users_values),
    TableRows("subscriptions", (("subscription_id", UUID), ("user_id", UUID), ("tier", LABEL), ("status", LABEL),
                                ("started_at", TIMESTAMP), ("current_period_end", TIMESTAMP),
                                ("cancelled_at", TIMESTAMP)), subscriptions_values),
    TableRows("transactions", (("transaction_id", UUID), ("user_id", UUID), ("subscription_id", UUID),
                               ("amount", NUMERIC), ("currency", LABEL), ("status", LABEL), ("created_at", TIMESTAMP)),
              transactions_values),
    TableRows("payments", (("payment_id", UUID), ("user_id", UUID), ("transaction_id", UUID), ("amount", NUMERIC),
                           ("currency", LABEL), ("provider", LABEL), ("provider_token", TEXT), ("card_last4", LABEL),
                           ("created_at", TIMESTAMP)), payments_values),
    TableRows("operations", (("operation_id", UUID), ("user_id", UUID), ("parameters", JSONB), ("result", JSONB),
                             ("confidence", NUMERIC), ("executed_at", TIMESTAMP)), operations_values),
)
# Deleted in this order by --reset (children first); all hold user_id.
RESET_ORDER = ("payments", "transactions", "subscriptions", "operations", "users")
