"""MongoDB documents from a collection's ``$jsonSchema`` and the profile's fields (:mod:`.records`).

A profile names the collection with its parent
(``[mongo.reviews] per = "users", mean = 2``); each document belongs to one
parent record of the block, and its fields are drawn as :mod:`.records` says:
the profile's generator, else the nearest ancestor's field of that name (so
``userId`` holds the user's seeded id), else the field's schema:
``bsonType`` (or ``type``), ``enum``, ``minLength``/``maxLength``,
``minimum``/``maximum``, ``pattern`` (the uuid pattern, else words and digits
tried against it), ``required`` (optional properties are present about half
the time), nested objects and arrays (``minItems``/``maxItems``,
``uniqueItems``), and ``additionalProperties`` (only declared properties are
written). Each ``_id`` is deterministic (the window's last second, then eight
bytes of the document's own draw), so a second load of the same seed inserts
nothing new. The documents then go through the offline validator like any other.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from bson import Decimal128, Int64, ObjectId

from ..core.errors import ConfigError
from . import vocab
from .draws import Draws
from .records import MISSING, RecordBlock, camel

if TYPE_CHECKING:
    from .entities import Block
    from .profiles import TableProfile

MAX_ITEMS = 3
_CANDIDATES = ("seed", "a", "x1", "ab12", "item-1", "A1", "2026-01-01", "12:00", "US", "EUR", "0")


def documents_of(name: str, block: "Block") -> list[dict]:
    """The documents of collection ``name`` in ``block``."""
    return build(block.rows(name))


def build(records: RecordBlock) -> list[dict]:
    names = list(records.fields)
    columns = [records.values(field) for field in names]
    schema = records.schema or {}
    if "_id" in schema.get("properties", {}) or schema.get("additionalProperties", True):
        raw = records.draws.bytes(records.prefix + "._id", 8 * records.size)
        stamp = records.plan.clock.unix(records.plan.window[1] - 1).to_bytes(4, "big")
        names.insert(0, "_id")
        columns.insert(0, [ObjectId(stamp + raw[i:i + 8]) for i in range(0, len(raw), 8)])
    documents = [dict(zip(names, row)) for row in zip(*columns)] if names else [{} for _ in range(records.size)]
    for name, values in zip(names, columns):
        if any(v is MISSING for v in values):   # optional fields a document leaves out
            for document, value in zip(documents, values):
                if value is MISSING:
                    del document[name]
    return documents


class Values:
    """Values of one document, drawn from its own stream (one per document and path)."""

    def __init__(self, draws: Draws, stream: str, plan):
        self.draws, self.stream, self.plan = draws, stream, plan

    def unit(self, path: str) -> float:
        return self.draws.unit(f"{self.stream}{path}", 1)[0]

    def below(self, path: str, bound: int) -> int:
        return self.draws.below(f"{self.stream}{path}", 1, bound)[0]

    def value(self, schema: dict, path: str) -> Any:
        if "enum" in schema:
            return schema["enum"][self.below(path, len(schema["enum"]))]
        kinds = schema.get("bsonType", schema.get("type", "string"))
        kinds = [kinds] if isinstance(kinds, str) else [k for k in kinds if k != "null"] or ["null"]
        kind = kinds[self.below(path + "#type", len(kinds))]
        return getattr(self, "_" + _KIND.get(kind, kind))(schema, path)

    def object(self, schema: dict, path: str, skip: set = frozenset()) -> dict:
        properties = schema.get("properties", {})
        required = set(schema.get("required", []))
        out = {}
        for name, sub in properties.items():
            if name in skip or (name not in required and self.unit(f"{path}.{name}#present") >= 0.5):
                continue
            out[name] = self.value(sub, f"{path}.{name}")
        return out

    def _object(self, schema: dict, path: str) -> dict:
        return self.object(schema, path)

    def _array(self, schema: dict, path: str) -> list:
        low = schema.get("minItems", 0)
        high = max(low, min(schema.get("maxItems", MAX_ITEMS), low + MAX_ITEMS))
        items = schema.get("items", {"bsonType": "string"})
        out: list = []
        for j in range(low + self.below(path + "#n", high - low + 1)):
            value = self.value(items, f"{path}[{j}]")
            if schema.get("uniqueItems") and value in out:
                continue
            out.append(value)
        return out

    def _string(self, schema: dict, path: str) -> str:
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        pattern = schema.get("pattern")
        if pattern:
            return self._matching(pattern, low, high, path)
        text = vocab.WORDS[self.below(path, len(vocab.WORDS))]
        if len(text) < low:
            text = text.ljust(low, "x")
        return text[:high] if high is not None else text

    def _matching(self, pattern: str, low: int, high: int | None, path: str) -> str:
        regex = re.compile(pattern)
        uuid = self.draws.uuids(f"{self.stream}{path}", 1)[0]
        word = vocab.WORDS[self.below(path, len(vocab.WORDS))]
        for candidate in (uuid, word, f"{word}{self.below(path + '#n', 100)}", *_CANDIDATES):
            if regex.search(candidate) and low <= len(candidate) <= (high if high is not None else len(candidate)):
                return candidate
        raise ConfigError(f"Seeding: no generated value matches the pattern {pattern!r} at {path.lstrip('.')}; "
                          "name a generator for it or loosen the pattern.")

    def _number(self, schema: dict, path: str) -> float:
        low = schema.get("minimum", 0)
        high = schema.get("maximum", low + 1000)
        return low + self.unit(path) * (high - low)

    def _decimal(self, schema: dict, path: str) -> Decimal128:
        return Decimal128(f"{self._number(schema, path):.2f}")

    def _int(self, schema: dict, path: str) -> int:
        low = int(schema.get("minimum", 0))
        high = int(schema.get("maximum", low + 1000))
        return low + self.below(path, high - low + 1)

    def _long(self, schema: dict, path: str) -> Int64:
        return Int64(self._int(schema, path))

    def _bool(self, schema: dict, path: str) -> bool:
        return self.unit(path) < 0.5

    def _date(self, schema: dict, path: str) -> dt.datetime:
        low, high = self.plan.window
        return self.plan.clock.datetime(low + self.below(path, max(1, high - low)))

    def _objectId(self, schema: dict, path: str) -> ObjectId:
        return ObjectId(self.draws.bytes(f"{self.stream}{path}", 12))

    def _null(self, schema: dict, path: str) -> None:
        return None


_KIND = {"double": "number", "number": "number", "integer": "int", "boolean": "bool"}


def seeded_filter(schema: dict, spec: "TableProfile", graph, profile=None) -> dict:
    """The filter finding seeded documents: a property holding a seeded id (uuid or integer key) of the
    parent chain, through the collections and families of ``profile`` up to a table (what --reset and the
    presence probe ask for)."""
    from .mongo_load import SEEDED_USER_ID
    from .rows import serial_range

    properties = schema.get("properties", {})
    per = spec.per
    while per not in graph.names() and profile is not None and profile.records(per) is not None:
        per = profile.records(per).per
    table = graph.table(per)
    while table is not None:
        if table.marker and table.marker[1] in ("uuid", "serial") and camel(table.marker[0]) in properties:
            field = camel(table.marker[0])
            if table.marker[1] == "uuid":
                return {field: SEEDED_USER_ID}
            low, high = serial_range(table.column(table.marker[0]).encoding)
            return {field: {"$gte": low, "$lte": high}}
        table = graph.table(table.parent.target) if table.parent else None
    marker = graph.table(per).marker
    raise ConfigError(f"MongoDB collection documents per {spec.per} need a property holding a seeded id of "
                      f"{per} or its parents (such as {camel(marker[0]) if marker else 'userId'}).")
