"""The declared Postgres tables as typed columns, encoded for COPY in bulk, one block at a time.

A table (:mod:`.declared`, values from :mod:`.rows`) gives one list of raw
values per column (ids as text, timestamps as seconds from the anchor, dates
as days, numerics in whole units of their scale, JSON as text; None is NULL).
They are encoded column by column, never value by value through an adapter:

- binary COPY (what the loader sends): Postgres parses no uuid, timestamp or
  numeric text, which is most of its COPY time on these tables;
- text COPY lines (for people and tests: the same values, readable).

A table holding a type with no binary encoder here (arrays, inet, time,
interval) goes as COPY text instead. ``payments.raw_card_number`` is NULL in
every row, as its ``no_card_data`` check demands (Appendix G.5).
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass
from functools import lru_cache
from itertools import repeat
from typing import Callable

from .clock import DAY, Clock
from .declared import TablePlan
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
    columns: tuple[tuple[str, str], ...]          # (name, encoding)
    values: Callable[[Block], list[list]]        # one list per column
    in_binary: bool = True                       # COPY's binary format (else text)
    keyless: bool = False                        # no seeded id tells its rows apart (a text key)

    @classmethod
    def of(cls, plan: TablePlan) -> "TableRows":
        name = plan.name
        return cls(name, tuple((c.name, _encoding(c)) for c in plan.columns),
                   lambda block: block.rows(name).columns(), plan.binary, plan.marker is None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def copy_sql(self, into: str | None = None) -> str:
        columns = ", ".join(f'"{n}"' for n in self.names)
        return f'COPY "{into or self.table}" ({columns}) FROM STDIN' + (" (FORMAT BINARY)" if self.in_binary else "")

    def data(self, block: Block) -> tuple[bytes, int]:
        """(COPY data of the block in the table's format, how many rows); binary signature and trailer
        are the caller's."""
        if self.in_binary:
            return self.binary(block)
        lines = self.lines(block)
        return "".join(line + "\n" for line in lines).encode(), len(lines)

    def binary(self, block: Block) -> tuple[bytes, int]:
        """(COPY binary tuples of the block, how many); signature and trailer are the caller's."""
        columns = self.values(block)
        rows = len(columns[0]) if columns else 0
        if not rows:
            return b"", 0
        encoded = [binary_encoder(kind)(values, block.plan.clock) for (_, kind), values in zip(self.columns, columns)]
        header = struct.pack(">h", len(self.columns))
        return b"".join(map(b"".join, zip(repeat(header, rows), *encoded))), rows

    def lines(self, block: Block) -> list[str]:
        """The same rows as COPY text lines."""
        columns = self.values(block)
        encoded = [text_encoder(kind)(values, block.plan.clock) for (_, kind), values in zip(self.columns, columns)]
        return list(map("\t".join, zip(*encoded)))


def _encoding(column) -> str:
    if column.encoding == "numeric":
        return f"numeric:{column.scale}"
    if column.encoding == TEXT and column.kind in ("choice", "constant", "password_hash", "currency", "null"):
        return LABEL
    return column.encoding


# -- encoders: a whole column at a time -------------------------------------------------------------
def _text_timestamps(values: list, clock: Clock) -> list[str]:
    if None not in values:
        return clock.text(values)
    return [NULL if v is None else clock.one_text(v) for v in values]


def _escaped(value: str) -> str:
    """COPY text's escapes, for values a user function or a profile may give."""
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def _plain(values: list, clock: Clock) -> list[str]:
    return [NULL if v is None else _escaped(str(v)) for v in values]


def _decimal(units: int, scale: int) -> str:
    sign, units = ("-" if units < 0 else ""), abs(units)
    if not scale:
        return f"{sign}{units}"
    whole, fraction = divmod(units, 10 ** scale)
    return f"{sign}{whole}.{fraction:0{scale}d}"


def _text_dates(values: list, clock: Clock) -> list[str]:
    return [NULL if v is None else clock.one_text(v * DAY)[:10] for v in values]


TEXT_ENCODERS: dict[str, Callable[[list, Clock], list[str]]] = {
    UUID: _plain, TEXT: _plain, LABEL: _plain, JSONB: _plain, "json": _plain, "array": _plain, "inet": _plain,
    "text_form": _plain, "int2": _plain, "int4": _plain, "int8": _plain, "float4": _plain, "float8": _plain,
    "bool": lambda values, clock: [NULL if v is None else ("t" if v else "f") for v in values],
    "date": _text_dates,
    TIMESTAMP: _text_timestamps,
}


def text_encoder(kind: str) -> Callable[[list, Clock], list[str]]:
    if kind.startswith("numeric:"):
        scale = int(kind[8:])
        return lambda values, clock: [NULL if v is None else _decimal(v, scale) for v in values]
    return TEXT_ENCODERS[kind]


def _binary_text(values: list, clock: Clock) -> list[bytes]:
    if None in values:
        return [_BINARY_NULL if v is None else _LENGTH(len(b)) + b
                for v, b in zip(values, (b"" if v is None else v.encode() for v in values))]
    return [_LENGTH(len(b)) + b for b in map(str.encode, values)]


def _binary_label(values: list, clock: Clock) -> list[bytes]:
    encoded = {v: _BINARY_NULL if v is None else _LENGTH(len(v.encode())) + v.encode() for v in set(values)}
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
        if value is None:
            out.append(_BINARY_NULL)
            continue
        data = value.encode()
        out.append(_LENGTH(len(data) + 1) + b"\x01" + data)   # jsonb binary: version 1, then the text
    return out


def _fixed(fmt: str) -> Callable[[list, Clock], list[bytes]]:
    """Fixed-width binary values (integers, floats, booleans, dates): length, then the value."""
    pack = struct.Struct(">i" + fmt).pack
    size = struct.calcsize(">" + fmt)
    return lambda values, clock: [_BINARY_NULL if v is None else pack(size, v) for v in values]


def _binary_dates(values: list, clock: Clock) -> list[bytes]:
    offset = (clock.epoch - _PG_EPOCH) // DAY            # days from 2000-01-01 to the anchor
    pack = _fixed("i")
    return pack([None if v is None else v + offset for v in values], clock)


@lru_cache(maxsize=65536)
def _numeric(units: int, scale: int) -> bytes:
    """NUMERIC(p, scale) in Postgres' binary form: base-10000 digits, weight, sign, display scale."""
    sign, units = (0x4000 if units < 0 else 0), abs(units)
    fraction_groups = -(-scale // 4)
    rest = units * 10 ** (4 * fraction_groups - scale)     # in units of 10^-(4 * fraction_groups)
    digits = []
    while rest:
        rest, group = divmod(rest, 10000)
        digits.insert(0, group)
    weight = len(digits) - fraction_groups - 1
    while digits and digits[-1] == 0:
        digits.pop()
    while digits and digits[0] == 0:
        digits.pop(0)
        weight -= 1
    if not digits:
        weight, sign = 0, 0
    payload = struct.pack(f">hhhh{len(digits)}h", len(digits), weight, sign, scale, *digits)
    return _LENGTH(len(payload)) + payload


def _numeric_cents(cents: int) -> bytes:
    return _numeric(cents, 2)


BINARY_ENCODERS: dict[str, Callable[[list, Clock], list[bytes]]] = {
    UUID: _binary_uuid,
    TEXT: _binary_text,
    LABEL: _binary_label,   # few distinct values, each encoded once (enums' binary input is the label's text)
    JSONB: _binary_jsonb,
    "json": _binary_text,
    TIMESTAMP: _binary_timestamp,
    "date": _binary_dates,
    "int2": _fixed("h"), "int4": _fixed("i"), "int8": _fixed("q"),
    "float4": _fixed("f"), "float8": _fixed("d"), "bool": _fixed("?"),
}


def binary_encoder(kind: str) -> Callable[[list, Clock], list[bytes]]:
    if kind.startswith("numeric:"):
        scale = int(kind[8:])
        return lambda values, clock: [_BINARY_NULL if v is None else _numeric(v, scale) for v in values]
    return BINARY_ENCODERS[kind]


# -- Sovren's tables --------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def password_hash(password: str, seed: int) -> str:
    """One PBKDF2-SHA256 hash (Django's format) shared by every seeded user: they all sign in with it."""
    salt = hashlib.sha256(f"sovren-seed/{seed}/salt".encode()).hexdigest()[:22]
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), PBKDF2_ITERATIONS)
    return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${salt}${base64.b64encode(digest).decode()}"
