"""MongoDB documents from a collection's ``$jsonSchema``, for collections Sovren's generators do not know.

A profile names the collection with its parent Postgres table
(``[mongo] reviews = { per = "users", mean = 2 }``); each document belongs to
one parent row of the block. A property whose name is a parent's (or an
ancestor's) key or foreign key column in camelCase (``userId`` for
``user_id``) holds that row's value, so documents reference seeded rows. Every other property is drawn from
its schema: ``bsonType`` (or ``type``), ``enum``, ``minLength``/``maxLength``,
``minimum``/``maximum``, ``pattern`` (the uuid pattern, else words and digits
tried against it), ``required`` (optional properties are present about half
the time), nested objects and arrays (``minItems``/``maxItems``,
``uniqueItems``), and ``additionalProperties`` (only declared properties are
written). The documents then go through the offline validator like any other.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

from bson import Decimal128, Int64, ObjectId

from ..core.errors import ConfigError
from . import vocab
from .draws import Draws

if TYPE_CHECKING:
    from .entities import Block
    from .profiles import TableProfile

MAX_ITEMS = 3
_CANDIDATES = ("seed", "a", "x1", "ab12", "item-1", "A1", "2026-01-01", "12:00", "US", "EUR", "0")


def camel(column: str) -> str:
    head, *rest = column.split("_")
    return head + "".join(part.title() for part in rest)


def owners_of(block: "Block", spec: "TableProfile", prefix: str) -> tuple[Any, list[int]]:
    """(the parent table's rows in the block, the parent row of each record): ``spec``'s mean or share."""
    parents = block.rows(spec.per)
    counts = ([int(x) for x in block.draws.chance(prefix + ".share", parents.size, spec.amount)]
              if spec.share else block.draws.counts(prefix + ".n", parents.size, spec.amount))
    return parents, [p for p, k in enumerate(counts) for _ in range(k)]


def key_columns(parents, names) -> dict[str, tuple[str, str, list[int]]]:
    """Name -> (table, column, ancestor row of each parent row) for the names that are a key or foreign key
    column of the parent chain, as written or in camelCase."""
    chain = {parents.name: list(range(parents.size)), **parents.ancestry()}
    found: dict[str, tuple[str, str, list[int]]] = {}
    for table, rows in chain.items():
        plan = parents.block.plan.graph.table(table)
        keys = {c for ref in ((plan.parent,) if plan.parent else ()) + plan.references for c in ref.columns}
        for column in plan.columns:
            if column.kind in ("uuid", "serial") or column.name in keys:
                for name in names:
                    if name not in found and name in (column.name, camel(column.name)):
                        found[name] = (table, column.name, rows)
    return found


class Documents:
    """The documents of one collection in one block."""

    def __init__(self, name: str, schema: dict, spec: "TableProfile", block: "Block"):
        self.name, self.schema, self.spec, self.block = name, schema, spec, block
        self.draws: Draws = block.draws

    def build(self) -> list[dict]:
        prefix = f"mongo.{self.name}"
        parents, owners = owners_of(self.block, self.spec, prefix)
        linked = key_columns(parents, self.schema.get("properties", {}))
        raw = self.draws.bytes(prefix + "._id", 8 * len(owners))
        stamp = self.block.plan.clock.unix(self.block.plan.window[1] - 1).to_bytes(4, "big")
        documents = []
        for i, owner in enumerate(owners):
            values = Values(self.draws, f"{prefix}.{i}", self.block.plan)
            document = values.object(self.schema, "", skip={"_id", *linked})
            for field, (table, column, rows) in linked.items():
                document[field] = linked_value(self.block.rows(table).values(column)[rows[owner]],
                                               self.schema["properties"][field])
            if "_id" in self.schema.get("properties", {}) or self.schema.get("additionalProperties", True):
                document = {"_id": ObjectId(stamp + raw[8 * i:8 * i + 8]), **document}
            documents.append(document)
        return documents


def linked_value(value: Any, schema: dict) -> Any:
    """A Postgres value in the BSON type the property declares (ids are strings unless it wants numbers)."""
    kinds = schema.get("bsonType", schema.get("type", "string"))
    kinds = {kinds} if isinstance(kinds, str) else set(kinds)
    if isinstance(value, int) and not isinstance(value, bool) and kinds & {"int", "long", "number", "integer"}:
        return value if "int" in kinds and -2**31 <= value < 2**31 else Int64(value)
    return value if value is None else str(value)


def fit_to_schema(documents: list[dict], schema: dict, block: "Block", name: str) -> list[dict]:
    """Sovren's hand-written documents, kept valid when the declaration moves: a required property the
    generator does not write is drawn from its schema; with ``additionalProperties: false``, a property
    the schema no longer declares is left out."""
    properties = schema.get("properties", {})
    required = [p for p in schema.get("required", []) if p in properties]
    closed = schema.get("additionalProperties", True) is False
    if not documents or (all(p in documents[0] for p in required) and not (closed and set(documents[0]) - set(
            properties))):
        return documents
    out = []
    for i, document in enumerate(documents):
        values = Values(block.draws, f"mongo.{name}.{i}", block.plan)
        document = {k: v for k, v in document.items() if k in properties} if closed else dict(document)
        for field in required:
            if field not in document:
                document[field] = values.value(properties[field], "." + field)
        out.append(document)
    return out


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


def seeded_filter(schema: dict, spec: "TableProfile", graph) -> dict:
    """The filter finding seeded documents: a property holding a seeded id (uuid or integer key) of the
    parent chain (what --reset and the presence probe ask for)."""
    from .mongo_load import SEEDED_USER_ID
    from .rows import serial_range

    properties = schema.get("properties", {})
    table = graph.table(spec.per)
    while table is not None:
        if table.marker and table.marker[1] in ("uuid", "serial") and camel(table.marker[0]) in properties:
            field = camel(table.marker[0])
            if table.marker[1] == "uuid":
                return {field: SEEDED_USER_ID}
            low, high = serial_range(table.column(table.marker[0]).encoding)
            return {field: {"$gte": low, "$lte": high}}
        table = graph.table(table.parent.target) if table.parent else None
    raise ConfigError(f"MongoDB collection documents per {spec.per} need a property holding a seeded id of "
                      f"{spec.per} or its parents (such as {camel(graph.table(spec.per).marker[0]) if graph.table(spec.per).marker else 'userId'}).")
