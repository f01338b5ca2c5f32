"""A ``$jsonSchema`` inferred from sampled documents (pure: documents in, schema out).

Every path gets the BSON types seen there (``bsonType`` a list where types
mix); ``required`` lists the fields present in every sampled document of
that object; nested documents recurse, arrays get ``items`` from all their
elements. The description says how many documents it rests on.
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

from bson import Binary, Decimal128, Int64, ObjectId, Regex, Timestamp
from bson.max_key import MaxKey
from bson.min_key import MinKey

# In the order checks must run: bool before int, Int64 before int.
_TYPES = ((bool, "bool"), (Int64, "long"), (int, "int"), (float, "double"), (str, "string"),
          (ObjectId, "objectId"), (datetime.datetime, "date"), (Decimal128, "decimal"), (Binary, "binData"),
          (uuid.UUID, "binData"), (bytes, "binData"), (type(None), "null"), (Timestamp, "timestamp"),
          ((Regex, re.Pattern), "regex"), (MinKey, "minKey"), (MaxKey, "maxKey"), (dict, "object"),
          (list, "array"))


def bson_type(value: Any) -> str:
    for kind, name in _TYPES:
        if isinstance(value, kind):
            return "int" if name == "int" and not -2**31 <= value < 2**31 else name
    return "object" if hasattr(value, "items") else "string"


@dataclass
class Node:
    seen: int = 0                                   # values seen at this path
    types: Counter = field(default_factory=Counter)
    fields: dict[str, "Node"] = field(default_factory=dict)
    objects: int = 0                                # of them documents
    items: "Node | None" = None

    def add(self, value: Any) -> None:
        self.seen += 1
        kind = bson_type(value)
        self.types[kind] += 1
        if kind == "object":
            self.objects += 1
            for key, item in value.items():
                self.fields.setdefault(key, Node()).add(item)
        elif kind == "array":
            self.items = self.items or Node()
            for item in value:
                self.items.add(item)

    def schema(self) -> dict:
        kinds = sorted(self.types)
        out: dict[str, Any] = {"bsonType": kinds[0] if len(kinds) == 1 else kinds}
        if self.fields:
            required = [k for k, node in self.fields.items() if node.seen == self.objects]
            if required:
                out["required"] = required
            out["properties"] = {k: node.schema() for k, node in self.fields.items()}
        if self.items is not None and self.items.seen:
            out["items"] = self.items.schema()
        return out


def infer_schema(documents: Iterable[dict], collection: str, total: int | None = None) -> dict | None:
    """The $jsonSchema of ``documents``; None when there is none to learn from."""
    root = Node()
    for document in documents:
        root.add(document)
    if not root.seen:
        return None
    schema = root.schema()
    schema["bsonType"] = "object"
    share = f" of about {total}" if total is not None else ""
    schema["description"] = (f"Inferred by sovren-db inspect from {root.seen} sampled documents{share} of "
                             f"{collection}; fields in every sampled document are required.")
    return schema
