"""The records of one MongoDB collection or Redis key family in one block, drawn a field at a time.

A profile names each collection and family with its parent (``per``): a
seeded table, or another collection or family of the profile, so Sovren's
executives hang off users, their cache off the executives, the dead letters
off the failed communications (``where = { status = "failed" }``). A record's
fields are whole columns of the block, drawn on first use from the record's
own streams (``mongo.<name>.<field>``, ``redis.<name>.<field>``):

- the profile's generator (``fields.<name>``): a built-in kind of
  :mod:`.columns` (``person_name``, ``email``, ``uuid``, ``time``...), ``values``
  (an array field takes ``min`` to ``max`` distinct ones), ``value``,
  ``from = "table.column"`` (an ancestor's value; a sibling's under the same
  ancestor, several for an array: a simulation's executives are its user's),
  ``after = "field"`` (a time between that field's and the window's end),
  ``region`` (the root row's region, the target's when it has one), ``nulls``;
- else the nearest ancestor's field of that name (camelCase of a column too:
  ``userId`` is ``users.user_id``); of a table, only its keys and foreign keys;
- else (documents) the field's ``$jsonSchema``: enum, uuid pattern, lengths,
  bounds, dates in the window; an optional field is there half the time;
  (key placeholders) a seeded token, ``5eed`` and hex.

So a field made required in a collection's ``$jsonSchema`` or a family added to
``redis/`` and named in the profile is seeded with no code of its own.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cached_property
from typing import TYPE_CHECKING, Any

from bson import Decimal128, Int64, ObjectId

from ..core.errors import ConfigError
from . import vocab
from .clock import DAY
from .columns import Draw, draw_column
from .declared import ColumnPlan
from .draws import SEEDED_PREFIX, expand
from .residency import regions_of
from .rows import CHILD_STRIDE

from .profiles import ColumnSpec

if TYPE_CHECKING:
    from .entities import Block
    from .profiles import TableProfile

class _Missing:
    """An optional field a document leaves out; one object in every process (pickled by name)."""

    def __repr__(self) -> str:
        return "MISSING"

    def __reduce__(self) -> str:
        return "MISSING"


MISSING = _Missing()
UUID_SAMPLE = "5eed18f5-c931-8435-a181-e3d44a524232"
ARRAY_ITEMS = (1, 3)                    # items of an array field whose profile names no min and max
_ENCODING = {"int": "int4", "long": "int8", "double": "float8", "number": "float8", "decimal": "float8",
             "bool": "bool", "date": "timestamp", "integer": "int8", "boolean": "bool"}


def camel(column: str) -> str:
    head, *rest = column.split("_")
    return head + "".join(part.title() for part in rest)


def kinds_of(schema: dict) -> list[str]:
    kinds = schema.get("bsonType", schema.get("type", "string"))
    return [kinds] if isinstance(kinds, str) else list(kinds)


class RecordBlock:
    """The documents of a collection or the keys of a family under one block's parent rows."""

    def __init__(self, block: "Block", name: str, spec: "TableProfile", declared: Any):
        self.block, self.name, self.spec = block, name, spec
        self.schema: dict | None = declared if isinstance(declared, dict) else None
        self.family = None if isinstance(declared, dict) else declared
        self.prefix = f"{'mongo' if self.schema is not None else 'redis'}.{name}"
        self.draws, self.plan = block.draws, block.plan
        self._values: dict[str, list] = {}

    @property
    def properties(self) -> dict:
        return (self.schema or {}).get("properties", {})

    @cached_property
    def fields(self) -> list[str]:
        """A document's fields in the schema's order (``_id`` apart), or a key's (hash, stream, JSON string)."""
        names = [f for f in self.properties if f != "_id"]
        return names + [f for f in self.spec.columns if f not in names]

    @cached_property
    def parent_block(self):
        return self.block.rows(self.spec.per)

    @cached_property
    def counts(self) -> list[int]:
        parents, spec = self.parent_block, self.spec
        counts = ([int(x) for x in self.draws.chance(self.prefix + ".share", parents.size, spec.amount)]
                  if spec.share else self.draws.counts(self.prefix + ".n", parents.size, spec.amount))
        for field, wanted in spec.where.items():
            counts = [k if v == wanted else 0 for k, v in zip(counts, parents.values(field))]
        return counts

    @cached_property
    def parent(self) -> list[int]:
        return expand(self.counts)

    @property
    def size(self) -> int:
        return len(self.parent)

    @cached_property
    def ordinals(self) -> list[int]:
        start = self.block.index * CHILD_STRIDE
        return list(range(start, start + self.size))

    def ancestry(self) -> dict[str, list[int]]:
        return self._ancestry

    @cached_property
    def _ancestry(self) -> dict[str, list[int]]:
        """Each ancestor (table, collection or family), with the index of every record's ancestor row."""
        out: dict[str, list[int]] = {}
        rows, block = list(self.parent), self.parent_block
        while block is not None:
            out[block.name] = rows
            rows = [block.parent[r] for r in rows] if block.parent_block is not None else rows
            block = block.parent_block
        return out

    def values(self, field: str) -> list:
        found = self._values.get(field)
        if found is None:
            found = self._values[field] = self._field(field)
        return found

    # -- one field -------------------------------------------------------------------------------------------
    def _field(self, field: str) -> list:
        given = self.spec.columns.get(field)
        schema = self.properties.get(field, {})
        if given is not None and given != _EMPTY:
            values = self._given(field, given, schema)
        else:
            values = self._linked(field)
            if values is None:
                values = self._drawn(field, schema) if self.schema is not None else self._token(field)
        return _typed(values, schema) if self.schema is not None and field in self.properties else values

    def _linked(self, field: str) -> list | None:
        """The nearest ancestor's value of ``field`` (or of the column it is the camelCase of)."""
        for name, rows in self.ancestry().items():
            owner = self.block.rows(name)
            column = _field_of(owner, field)
            if column is not None:
                return _copy(owner, column, rows)
        return None

    def _given(self, field: str, given: "ColumnSpec", schema: dict) -> list:
        if given.source is not None:
            values = self._from(field, given.source, schema)
        elif given.after is not None:
            values = self._after(field, given.after)
        elif given.kind == "region":
            values = self._region()
        elif "array" in kinds_of(schema) and (given.values or given.kind):
            values = self._array(field, given)
        else:
            values = self._kind(field, given, schema)
        if given.nulls:
            nulls = self.draws.chance(f"{self.prefix}.{field}#null", self.size, given.nulls)
            values = [None if null else v for v, null in zip(values, nulls)]
        return values

    def _from(self, field: str, source: str, schema: dict) -> list:
        owner_name, _, column = source.partition(".")
        chain = self.ancestry()
        owner = self.block.rows(owner_name)
        if owner_name in chain:
            return _copy(owner, column, chain[owner_name])
        common = next((name for name in chain if name in owner.ancestry()), None)
        if common is None:
            raise ConfigError(f"Seeding {self.name}.{field}: {owner_name} is neither an ancestor of {self.name} nor "
                              f"under one of its ancestors; name a field of {', '.join(chain)}.")
        return self._siblings(field, owner, column, chain[common], owner.ancestry()[common], "array" in kinds_of(schema))

    def _siblings(self, field: str, owner, column: str, mine: list[int], theirs: list[int], many: bool) -> list:
        """Records of ``owner`` under each record's ancestor row: up to three (an array), or one (else None)."""
        groups: dict[int, list[int]] = {}
        for row, ancestor in enumerate(theirs):
            groups.setdefault(ancestor, []).append(row)
        source = _copy(owner, column, list(range(owner.size)))
        picks = self.draws.u32(f"{self.prefix}.{field}#pick", self.size)
        sizes = self.draws.below(f"{self.prefix}.{field}#n", self.size, 4)
        out = []
        for ancestor, pick, k in zip(mine, picks, sizes):
            found = groups.get(ancestor, [])
            chosen = [source[found[(pick + j) % len(found)]] for j in range(min(k, len(found)))] if found else []
            out.append(chosen if many else (chosen[0] if chosen else source[found[pick % len(found)]] if found
                                            else None))
        return out

    def _after(self, field: str, earlier: str) -> list:
        end = self.plan.clock.datetime(self.plan.window[1] - 1)
        fractions = self.draws.unit(f"{self.prefix}.{field}", self.size)
        return [None if t is None or t is MISSING else t + dt.timedelta(seconds=int((end - t).total_seconds() * f))
                if end > t else t for t, f in zip(self.values(earlier), fractions)]

    def _region(self) -> list[str]:
        """The region of each record's root row: the target's, else drawn once per root row."""
        chain = self.ancestry()
        root, rows = next(reversed(chain.items()))
        pinned = self.plan.profile.region
        if pinned:
            return [pinned] * self.size
        regions = self.draws.pick(f"{root}.region", self.block.rows(root).size, regions_of(self.plan.profile))
        return [regions[r] for r in rows]

    def _array(self, field: str, given: "ColumnSpec") -> list[list]:
        """``min`` to ``max`` distinct values a record (a permutation walk, so no value repeats)."""
        low, high = int(given.low if given.low is not None else ARRAY_ITEMS[0]), int(
            given.high if given.high is not None else ARRAY_ITEMS[1])
        pool = list(given.values) if given.values else self._kind(field + "#pool", given, {}, 16)
        sizes = [low + x for x in self.draws.below(f"{self.prefix}.{field}#n", self.size, max(1, high - low + 1))]
        starts = self.draws.below(f"{self.prefix}.{field}#start", self.size, len(pool))
        steps = _coprime_steps(len(pool))
        picks = self.draws.below(f"{self.prefix}.{field}#step", self.size, len(steps))
        return [list(dict.fromkeys(pool[(s + j * steps[p]) % len(pool)] for j in range(min(k, len(pool)))))
                for k, s, p in zip(sizes, starts, picks)]

    def _kind(self, field: str, given: "ColumnSpec", schema: dict, rows: int | None = None) -> list:
        kinds = [k for k in kinds_of(schema) if k != "null"] or ["string"]
        encoding = _ENCODING.get(kinds[0], "text")
        kind = ("choice" if given.values else "constant" if given.value is not None else given.kind
                or {"int4": "int", "int8": "int", "float8": "float", "bool": "bool", "timestamp": "time"}.get(
                    encoding, "word"))
        plan = ColumnPlan(field, kind, encoding, choices=given.values, value=given.value,
                          low=None if given.low is None else (float(given.low), False),
                          high=None if given.high is None else (float(given.high), False),
                          length=schema.get("maxLength"), min_length=schema.get("minLength"))
        count = self.size if rows is None else rows
        draw = Draw(self.draws, f"{self.prefix}.{field}", count, self.ordinals[:count] if rows is None
                    else list(range(count)), self.plan.window, self.plan)
        values = draw_column(plan, draw)
        clock = self.plan.clock
        if encoding == "timestamp" or kind in ("time", "date"):
            return [None if v is None else clock.datetime(v * DAY if kind == "date" else v) for v in values]
        return values

    def _token(self, placeholder: str) -> list[str]:
        return [SEEDED_PREFIX + h for h in self.draws.hexes(f"{self.prefix}.{placeholder}", self.size, 60)]

    # -- from the field's $jsonSchema ------------------------------------------------------------------------
    def _drawn(self, field: str, schema: dict) -> list:
        values = self._column(field, schema)
        if field in self.schema.get("required", ()):
            return values
        present = self.draws.chance(f"{self.prefix}.{field}#present", self.size, 0.5)
        return [v if ok else MISSING for v, ok in zip(values, present)]

    def _column(self, field: str, schema: dict) -> list:
        stream, n, d = f"{self.prefix}.{field}", self.size, self.draws
        kinds = kinds_of(schema)
        if "enum" in schema:
            return d.pick(stream, n, schema["enum"])
        if len(kinds) > 1:   # one type per record, each type's column drawn in bulk
            chosen = d.below(stream + "#type", n, len(kinds))
            columns = [self._column(f"{field}#{kind}", {**schema, "bsonType": kind}) for kind in kinds]
            return [columns[k][i] for i, k in enumerate(chosen)]
        found = _COLUMNS[kinds[0]](self, stream, schema) if kinds[0] in _COLUMNS else None
        if found is not None:
            return found
        from .documents import Values   # anything else (objects, arrays, patterns): one document at a time

        return [Values(d, f"{self.prefix}.{i}", self.plan).value(schema, "." + field) for i in range(n)]

    def _strings(self, stream: str, schema: dict) -> list[str] | None:
        pattern = schema.get("pattern")
        if pattern:
            import re

            return self.draws.uuids(stream, self.size) if re.search(pattern, UUID_SAMPLE) else None
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        words = [w.ljust(low, "x") if len(w) < low else w for w in self.draws.pick(stream, self.size, vocab.WORDS)]
        return [w[:high] for w in words] if high is not None else words

    def _integers(self, stream: str, schema: dict) -> list[int]:
        low = int(schema.get("minimum", 0))
        high = int(schema.get("maximum", low + 1000))
        return [low + x for x in self.draws.below(stream, self.size, high - low + 1)]

    def _dates(self, stream: str, schema: dict) -> list[dt.datetime]:
        low, high = self.plan.window
        return [self.plan.clock.datetime(low + x) for x in self.draws.below(stream, self.size, max(1, high - low))]


_EMPTY = ColumnSpec()   # a field named with {} takes its ancestor's value (or its schema's)
_COLUMNS = {
    "string": RecordBlock._strings,
    "int": RecordBlock._integers,
    "long": lambda self, stream, schema: [Int64(v) for v in self._integers(stream, schema)],
    "bool": lambda self, stream, schema: self.draws.chance(stream, self.size, 0.5),
    "date": RecordBlock._dates,
    "double": lambda self, stream, schema: [schema.get("minimum", 0) + u * (schema.get("maximum", 1000) -
                                            schema.get("minimum", 0)) for u in self.draws.unit(stream, self.size)],
    "decimal": lambda self, stream, schema: [Decimal128(f"{v:.2f}") for v in _COLUMNS["double"](self, stream, schema)],
    "null": lambda self, stream, schema: [None] * self.size,
    "object": lambda self, stream, schema: None if schema.get("properties") else [{} for _ in range(self.size)],
    "objectId": lambda self, stream, schema: [ObjectId(b) for b in _chunks(self.draws.bytes(stream, 12 * self.size),
                                                                            12)],
}


def _chunks(raw: bytes, width: int) -> list[bytes]:
    return [raw[i:i + width] for i in range(0, len(raw), width)]


def _coprime_steps(size: int) -> list[int]:
    from math import gcd

    return [s for s in range(1, max(2, size)) if gcd(s, size) == 1] or [1]


def _field_of(owner, field: str) -> str | None:
    """The field or column of ``owner`` that ``field`` names (as written or as its camelCase): any field of a
    collection or family; of a table, a key or foreign key column only."""
    if isinstance(owner, RecordBlock):
        return next((f for f in owner.fields if field in (f, camel(f)) or camel(field) == f), None)
    plan = owner.plan
    keys = {c for ref in ((plan.parent,) if plan.parent else ()) + plan.references for c in ref.columns}
    return next((c.name for c in plan.columns if (c.kind in ("uuid", "serial") or c.name in keys)
                 and field in (c.name, camel(c.name))), None)


def _copy(owner, column: str, rows: list[int]) -> list:
    if isinstance(owner, RecordBlock):
        source = owner.values(column)
        return [source[r] for r in rows]
    try:
        plan = owner.plan.column(column)
    except StopIteration:
        raise ConfigError(f"Seeding: table {owner.name} has no generated column {column!r} to copy from.") from None
    source = owner.values(column)
    clock = owner.block.plan.clock
    convert = _FROM_TABLE.get(plan.encoding.split(":")[0])
    if convert is None:
        return [source[r] for r in rows]
    return [None if source[r] is None else convert(source[r], plan, clock) for r in rows]


_FROM_TABLE = {
    "timestamp": lambda v, plan, clock: clock.datetime(v),
    "date": lambda v, plan, clock: clock.datetime(v * DAY),
    "numeric": lambda v, plan, clock: v / 10 ** plan.scale,
    "jsonb": lambda v, plan, clock: json.loads(v),
    "json": lambda v, plan, clock: json.loads(v),
}


def _typed(values: list, schema: dict) -> list:
    """Values in the BSON types the property declares: ids as strings unless it wants numbers, Int64 for
    ``long``, Decimal128 for ``decimal``."""
    kinds = set(kinds_of(schema))
    if not values or kinds & {"array", "object", "date", "bool"}:
        return values
    if "string" in kinds and "enum" not in schema:
        return [v if v is None or v is MISSING or isinstance(v, str) else str(v) for v in values]
    if kinds == {"long"}:
        return [Int64(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in values]
    if kinds == {"decimal"}:
        return [Decimal128(f"{v:.2f}") if isinstance(v, (int, float)) else v for v in values]
    if kinds & {"int", "long", "number", "integer"}:
        return [Int64(v) if isinstance(v, int) and not isinstance(v, bool) and not -2**31 <= v < 2**31
                and "long" in kinds else v for v in values]
    return values


def text(value: Any) -> str:
    """A field's value in a Redis hash, stream entry or set member."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return value.isoformat() + "Z"
    if isinstance(value, (list, tuple)):
        return ",".join(map(text, value))
    if isinstance(value, dict):
        return json.dumps(value, default=str)
    return "" if value is None or value is MISSING else str(value)


def plain(value: Any) -> Any:
    """A field's value in a JSON string key."""
    if isinstance(value, dt.datetime):
        return value.isoformat() + "Z"
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value if isinstance(value, (str, int, float, bool, dict)) or value is None else str(value)
