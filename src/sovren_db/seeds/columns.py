"""Column generators: a column's kind from its type, name and the profile, and its values drawn in bulk.

A kind draws a whole column of one block at a time from the column's own
stream (``<table>.<column>``, see :mod:`.draws`), as plain values: ids as text,
times as seconds from the anchor, dates as days, money and numerics as whole
units of their scale (cents for ``NUMERIC(12, 2)``), JSON as text. Built-in
kinds: email, username, first_name, last_name, person_name, phone, company,
text, word, url, ip, uuid, money, number, int, float, bool, time, date, token,
currency, country, digits, code, password_hash, json, null. A profile may also
name ``module:function`` (called with a :class:`Draw`, returning one value per
row) or ``faker:provider`` (Faker, optional, in the profile's ``locale``).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import math
from typing import TYPE_CHECKING, Any, Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from ..core.errors import ConfigError, DeclarationError
from . import vocab
from .clock import DAY

if TYPE_CHECKING:
    from .declared import ColumnPlan, Reference
    from .profiles import ColumnSpec, Profile

TEXT_KINDS = ("email", "username", "first_name", "last_name", "person_name", "phone", "company", "text", "word",
              "url", "ip", "token", "currency", "country", "digits", "code", "password_hash")
KINDS = frozenset({*TEXT_KINDS, "uuid", "money", "number", "int", "float", "bool", "time", "date", "json", "null",
                   "default", "serial", "position"})
_BY_NAME = (("email", "email"), ("username", "username"), ("user_name", "username"), ("first_name", "first_name"),
            ("last_name", "last_name"), ("surname", "last_name"), ("phone", "phone"), ("company", "company"),
            ("organization", "company"), ("url", "url"), ("website", "url"), ("ip_address", "ip"),
            ("password", "password_hash"), ("token", "token"), ("secret", "token"), ("currency", "currency"),
            ("country", "country"), ("last4", "digits"), ("description", "text"), ("message", "text"),
            ("body", "text"), ("comment", "text"), ("note", "text"))
_MONEY = ("amount", "price", "cost", "total", "balance", "fee")
_NAMES = {"name", "full_name", "display_name", "person_name"}


# -- kinds -----------------------------------------------------------------------------------------------------
def encoding_of(type_: sa.types.TypeEngine) -> tuple[str, dict]:
    """How a column of this type is encoded for COPY, and what the encoder needs (scale, items)."""
    type_ = type_.data_type if isinstance(type_, pg.DOMAIN) else type_
    if isinstance(type_, (sa.Uuid, pg.UUID)):
        return "uuid", {}
    if isinstance(type_, sa.Enum):
        return "label", {}
    if isinstance(type_, sa.ARRAY):
        return "array", {"item": encoding_of(type_.item_type)[0]}
    if isinstance(type_, (pg.INET, pg.CIDR)):
        return "inet", {}
    for kind, encoding in ((sa.SmallInteger, "int2"), (sa.BigInteger, "int8"), (sa.Integer, "int4"),
                           (sa.Boolean, "bool"), (sa.DateTime, "timestamp"), (sa.Date, "date"),
                           (pg.JSONB, "jsonb"), (sa.JSON, "json")):
        if isinstance(type_, kind):
            return encoding, {}
    if isinstance(type_, sa.Float):
        return ("float4" if isinstance(type_, sa.REAL) or (type_.precision or 53) <= 24 else "float8"), {}
    if isinstance(type_, sa.Numeric):
        return "numeric", {"scale": 2 if type_.scale is None else type_.scale}
    if isinstance(type_, sa.String):
        return "text", {}
    return "text_form", {}


def infer_kind(column: sa.Column, pk: list[str], parent: "Reference | None", given: "ColumnSpec | None",
               profile: "Profile") -> tuple[str | None, str, dict]:
    """(kind, encoding, extra ColumnPlan fields) of a declared column."""
    encoding, extra = encoding_of(column.type)
    if given is not None and given.kind is not None:
        where = f"postgres.{column.table.name}.columns.{column.name}"
        if given.kind not in KINDS and ":" not in given.kind:
            raise DeclarationError(profile.path, where,
                                   f"unknown generator {given.kind!r} (built-in kinds: {', '.join(sorted(KINDS))}; "
                                   "or module:function, faker:provider)")
        if ":" in given.kind and (problem := _unloadable(given.kind)):
            raise DeclarationError(profile.path, where, f"generator {given.kind!r} cannot be loaded ({problem})")
        return given.kind, encoding, extra
    base = column.type.data_type if isinstance(column.type, pg.DOMAIN) else column.type
    if isinstance(base, sa.Enum) and base.enums:
        return "choice", encoding, {**extra, "choices": tuple(base.enums)}
    return _kind_of(column, encoding, pk, parent), encoding, extra


def _unloadable(kind: str) -> str | None:
    """Why ``module:function`` or ``faker:provider`` cannot be had here, checked before anything is generated."""
    prefix, name = kind.split(":", 1)
    try:
        if prefix == "faker":
            from faker import Faker

            return None if hasattr(Faker(), name) else f"Faker has no provider {name!r}"
        return None if callable(getattr(importlib.import_module(prefix), name, None)) else f"no function {name!r}"
    except ImportError as exc:
        return "Faker is not installed: pip install faker" if prefix == "faker" else str(exc)


def _kind_of(column: sa.Column, encoding: str, pk: list[str], parent: "Reference | None") -> str:
    name = column.name.lower()
    if encoding == "uuid":
        return "uuid"
    if encoding in ("int2", "int4", "int8"):
        if column.name in pk and (parent is None or len(pk) == 1):
            return "serial"
        return "position" if column.name in pk else "int"
    if encoding == "numeric":
        return "money" if any(word in name for word in _MONEY) else "number"
    simple = {"float4": "float", "float8": "float", "bool": "bool", "timestamp": "time", "date": "date",
              "jsonb": "json", "json": "json", "inet": "ip", "array": "array", "text_form": "word"}
    if encoding in simple:
        return simple[encoding]
    if name in _NAMES:
        return "person_name"
    if name == "ip" or name.endswith("_ip"):
        return "ip"
    found = next((kind for word, kind in _BY_NAME if word in name), None)
    if found:
        return found
    return "code" if isinstance(column.type, sa.CHAR) else "word"


# -- values ----------------------------------------------------------------------------------------------------
class Draw:
    """What a column generator draws with: its own streams in one block, ``rows`` values long."""

    def __init__(self, draws, stream: str, rows: int, ordinals: list[int], window: tuple[int, int], plan):
        self.draws, self.stream, self.rows, self.ordinals, self.window, self.plan = (
            draws, stream, rows, ordinals, window, plan)
        self.plan_column = None      # the column being drawn

    def unit(self, name: str = "") -> list[float]:
        return self.draws.unit(f"{self.stream}{name}", self.rows)

    def below(self, bound: int, name: str = "") -> list[int]:
        return self.draws.below(f"{self.stream}{name}", self.rows, bound)

    def pick(self, items, name: str = "") -> list:
        return self.draws.pick(f"{self.stream}{name}", self.rows, items)

    def between(self, low: int, high: int, name: str = "") -> list[int]:
        """Whole numbers in [low, high]."""
        span = high - low + 1
        if span <= 2**32:
            return [low + x for x in self.below(span, name)]
        return [low + int(u * span) for u in self.unit(name)]

    def seconds(self, name: str = "") -> list[int]:
        low, high = self.window
        return [low + x for x in self.below(max(1, high - low), name)]


def _people(d: Draw) -> tuple[list[str], list[str]]:
    return d.pick(vocab.FIRST_NAMES, "#first"), d.pick(vocab.LAST_NAMES, "#last")


def _username(d: Draw) -> list[str]:
    first, last = _people(d)
    return [f"{f}.{s}{o}" for f, s, o in zip(first, last, d.ordinals)]


def _email(d: Draw) -> list[str]:
    domains = d.pick(vocab.DOMAINS, "#domain")
    return [f"{u}@{domain}" for u, domain in zip(_username(d), domains)]


def _person(d: Draw) -> list[str]:
    first, last = _people(d)
    return [f"{f.title()} {s.title()}" for f, s in zip(first, last)]


def _password_hash(d: Draw) -> list[str]:
    from .postgres_rows import password_hash

    return [password_hash(d.plan.profile.password, d.plan.seed)] * d.rows


TEXT: dict[str, Callable[[Draw], list[str]]] = {
    "email": _email,
    "username": _username,
    "first_name": lambda d: [f.title() for f in d.pick(vocab.FIRST_NAMES)],
    "last_name": lambda d: [s.title() for s in d.pick(vocab.LAST_NAMES)],
    "person_name": _person,
    "phone": lambda d: [f"+1-555-{x // 10000:03d}-{x % 10000:04d}" for x in d.below(10_000_000)],
    "company": lambda d: [f"{s.title()} {k}" for s, k in zip(d.pick(vocab.LAST_NAMES), d.pick(vocab.COMPANY_KINDS,
                                                                                                 "#kind"))],
    "text": lambda d: d.pick(vocab.MESSAGES),
    "word": lambda d: d.pick(vocab.WORDS),
    "url": lambda d: [f"https://{h}/{w}" for h, w in zip(d.pick(vocab.DOMAINS), d.pick(vocab.WORDS, "#path"))],
    "ip": lambda d: [f"2001:db8::{x >> 16:x}:{x & 0xffff:x}" for x in d.below(2**32)],
    "token": lambda d: ["tok_" + t for t in d.draws.tokens(d.stream, d.rows, 18)],
    "currency": lambda d: d.pick(vocab.CURRENCY_CODES),
    "country": lambda d: d.pick(vocab.COUNTRIES),
    "digits": lambda d: _digits(d),
    "code": lambda d: d.draws.hexes(d.stream, d.rows, 16),
    "password_hash": _password_hash,
}


def _digits(d: Draw) -> list[str]:
    width = d.plan_column.length if d.plan_column is not None and d.plan_column.length else 4
    return [f"{x % 10 ** width:0{width}d}" for x in d.below(10 ** min(width, 9))]


def draw_column(column: "ColumnPlan", d: Draw) -> list:
    """Every value of ``column`` in one block (None for NULL)."""
    d.plan_column = column
    values = _values(column, d)
    if column.nulls > 0:
        nulls = d.draws.chance(f"{d.stream}#null", d.rows, column.nulls)
        values = [None if null else v for v, null in zip(values, nulls)]
    return values


def _values(column: "ColumnPlan", d: Draw) -> list:
    kind = column.kind
    if kind == "null":
        return [None] * d.rows
    if column.choices is not None and kind not in ("serial", "uuid", "position"):
        return d.pick([coerce(column, v, d) for v in column.choices])
    if kind == "constant":
        return [coerce(column, column.value, d)] * d.rows
    if ":" in kind:
        return [coerce(column, v, d) for v in _external(kind, d)]
    if kind in TEXT:
        return _fit(column, TEXT[kind](d), d)
    return NUMBERS[kind](column, d)


def _fit(column: "ColumnPlan", values: list[str], d: Draw) -> list:
    """Text to the column's length, unique when the column is (the row's ordinal at the end)."""
    if column.encoding not in ("text", "label", "text_form"):
        return [coerce(column, v, d) for v in values]
    if column.unique and column.kind not in ("email", "username", "token", "code"):
        values = [f"{v}-{o}" for v, o in zip(values, d.ordinals)]
    if column.min_length:
        values = [v.ljust(column.min_length, "x") for v in values]
    limit = column.length
    if limit is None or all(len(v) <= limit for v in values):
        return values
    if column.unique:
        tails = [f"{o:x}" for o in d.ordinals]
        return [v[:max(0, limit - len(t))] + t for v, t in zip(values, tails)]
    return [v[:limit] for v in values]


def _bounds(column: "ColumnPlan", low: float, high: float, step: float = 1.0) -> tuple[int, int]:
    """The column's allowed range in whole steps (a unit of its scale)."""
    if column.low is not None:
        bound, strict = column.low
        low = math.floor(bound / step) + 1 if strict else math.ceil(bound / step)
    else:
        low = round(low / step)
    if column.high is not None:
        bound, strict = column.high
        high = math.ceil(bound / step) - 1 if strict else math.floor(bound / step)
    else:
        high = round(high / step)
    return low, max(low, high)


def _numeric(column: "ColumnPlan", d: Draw, low: float, high: float) -> list[int]:
    step = 10.0 ** -column.scale
    lo, hi = _bounds(column, low, high, step)
    if column.unique:
        return [lo + o for o in d.ordinals]
    return d.between(lo, min(hi, 10 ** 15), "")


def _int(column: "ColumnPlan", d: Draw) -> list[int]:
    lo, hi = _bounds(column, 0, 1000)
    if column.unique:
        return [lo + o for o in d.ordinals]
    return d.between(lo, hi)


def _float(column: "ColumnPlan", d: Draw) -> list[float]:
    lo = column.low[0] if column.low else 0.0
    hi = column.high[0] if column.high else 1000.0
    return [lo + u * (hi - lo) for u in d.unit()]


NUMBERS: dict[str, Callable[["ColumnPlan", Draw], list]] = {
    "uuid": lambda c, d: d.draws.uuids(d.stream, d.rows),
    "money": lambda c, d: _numeric(c, d, 1, 1000),
    "number": lambda c, d: _numeric(c, d, 0, 100),
    "int": _int,
    "float": _float,
    "bool": lambda c, d: d.draws.chance(d.stream, d.rows, 0.5),
    "time": lambda c, d: d.seconds(),
    "date": lambda c, d: [s // DAY for s in d.seconds()],
    "json": lambda c, d: ["{}"] * d.rows,
    "array": lambda c, d: [_array_text(c.item, d, i) for i in d.below(3)],
}


def _array_text(item: str | None, d: Draw, extra: int) -> str:
    words = vocab.WORDS[extra:extra + 1 + extra]
    if item in ("int2", "int4", "int8", "numeric", "float4", "float8"):
        return "{" + ",".join(str(len(w)) for w in words) + "}"
    return "{" + ",".join(words) + "}"


def _external(kind: str, d: Draw) -> list:
    prefix, name = kind.split(":", 1)
    if prefix == "faker":
        try:
            from faker import Faker
        except ImportError:
            raise ConfigError(f"{d.plan.profile.path} names the generator {kind!r}: Faker is not installed "
                              "(pip install faker).") from None
        fake = Faker(d.plan.profile.locale) if d.plan.profile.locale else Faker()
        fake.seed_instance(int.from_bytes(d.draws.bytes(d.stream + "#faker", 8), "big"))
        return [getattr(fake, name)() for _ in range(d.rows)]
    try:
        function = getattr(importlib.import_module(prefix), name)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"{d.plan.profile.path}: generator {kind!r} cannot be loaded ({exc}).") from None
    values = list(function(d))
    if len(values) != d.rows:
        raise ConfigError(f"{d.plan.profile.path}: generator {kind!r} gave {len(values)} values for {d.rows} rows.")
    return values


def coerce(column: "ColumnPlan", value: Any, d: Draw) -> Any:
    """A profile's or a function's value in the raw form of the column's encoding."""
    if value is None:
        return None
    encoding = column.encoding
    if encoding in ("int2", "int4", "int8"):
        return int(value)
    if encoding == "numeric":
        return round(float(value) * 10 ** column.scale)
    if encoding in ("float4", "float8"):
        return float(value)
    if encoding == "bool":
        return bool(value)
    if encoding in ("timestamp", "date"):
        return _moment(value, d, encoding == "date")
    if encoding in ("json", "jsonb"):
        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if encoding == "array" and isinstance(value, (list, tuple)):
        return "{" + ",".join(json.dumps(str(v)) for v in value) + "}"
    return str(value)


def _moment(value: Any, d: Draw, days: bool) -> int:
    clock = d.plan.clock
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        seconds = int((value.replace(tzinfo=None) - clock.origin).total_seconds())
    elif isinstance(value, dt.date):
        seconds = (value - clock.anchor).days * DAY
    else:
        seconds = int(value)
    return seconds // DAY if days else seconds
