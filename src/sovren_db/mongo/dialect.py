"""MongoDB's ``$jsonSchema`` dialect: what the server accepts, checked before anything is sent.

MongoDB implements JSON Schema draft 4 with its own differences: ``bsonType``
beside ``type`` (never both in one schema), no ``integer`` type, no ``$ref``,
``$schema``, ``default``, ``definitions``, ``format`` or ``id``, unknown
keywords rejected, ``enum``/``required``/type lists without duplicates,
``exclusiveMinimum``/``exclusiveMaximum`` as booleans next to
``minimum``/``maximum``, ``encrypt`` never beside ``encryptMetadata`` and
``encryptMetadata`` never empty. :func:`schema_problem` finds the first
problem and its JSON pointer.

Two top-level checks are sovren-db's own, not the server's: a top-level
schema that does not allow ``object``, and ``additionalProperties: false``
with neither ``properties`` nor ``patternProperties`` covering ``_id``.
MongoDB accepts both schemas; the validator then rejects every document, so
they are refused here as mistakes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

from bson.decimal128 import Decimal128

from .extjson import canonical

BSON_TYPES = frozenset(
    {
        "double",
        "string",
        "object",
        "array",
        "binData",
        "undefined",
        "objectId",
        "bool",
        "date",
        "null",
        "regex",
        "dbPointer",
        "javascript",
        "symbol",
        "javascriptWithScope",
        "int",
        "timestamp",
        "long",
        "decimal",
        "minKey",
        "maxKey",
        "number",
    }
)
JSON_TYPES = frozenset({"object", "array", "number", "boolean", "string", "null"})
UNSUPPORTED_KEYWORDS = frozenset({"$ref", "$schema", "default", "definitions", "format", "id"})

Path = tuple
Problem = tuple[Path, str]


def schema_problem(schema: Any) -> Problem | None:
    """The first problem of a top-level ``$jsonSchema`` as (path, sentence), or None."""
    for problem in _schema_problems(schema, ()):
        return problem
    return _top_level_problem(schema)


def _top_level_problem(schema: dict) -> Problem | None:
    """sovren-db's guards against a validator that rejects every document (the server accepts it)."""
    types = schema.get("bsonType", schema.get("type"))
    if types is not None and "object" not in ([types] if isinstance(types, str) else types):
        keyword = "bsonType" if "bsonType" in schema else "type"
        return (keyword,), "the top-level schema must allow 'object': MongoDB stores only documents"
    if schema.get("additionalProperties") is False and not _allows_id(schema):
        return (
            ("additionalProperties",),
            "is false but '_id' is not in properties (nor matched by patternProperties), "
            "so MongoDB would reject every document",
        )
    return None


def _allows_id(schema: dict) -> bool:
    """``_id`` is named in properties or matched by a patternProperties regex (a search, as PCRE does)."""
    patterns = schema.get("patternProperties", {})
    return "_id" in schema.get("properties", {}) or any(re.search(p, "_id") for p in patterns)


def _schema_problems(node: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(node, dict):
        yield path, "a schema must be a JSON object"
        return
    for keyword in node:
        if keyword in UNSUPPORTED_KEYWORDS:
            yield path + (keyword,), f"MongoDB's $jsonSchema does not support the keyword {keyword!r}"
        elif keyword not in KEYWORDS:
            yield path + (keyword,), f"{keyword!r} is not a $jsonSchema keyword"
    yield from _combination_problems(node, path)
    for keyword, value in node.items():
        yield from KEYWORDS[keyword](value, path + (keyword,))


def _combination_problems(node: dict, path: Path) -> Iterator[Problem]:
    if "type" in node and "bsonType" in node:
        yield path, "'type' and 'bsonType' cannot both be given in one schema"
    if "encrypt" in node and ("type" in node or "bsonType" in node):
        yield path, "'encrypt' implies bsonType binData and cannot be combined with a type"
    if "encrypt" in node and "encryptMetadata" in node:
        yield path, "'encrypt' and 'encryptMetadata' cannot both be given in one schema"
    for bound in ("Maximum", "Minimum"):
        if f"exclusive{bound}" in node and bound.lower() not in node:
            yield path + (f"exclusive{bound}",), f"needs {bound.lower()!r} in the same schema"


def _types(allowed: frozenset, keyword: str) -> Callable[[Any, Path], Iterator[Problem]]:
    def check(value: Any, path: Path) -> Iterator[Problem]:
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            yield path, f"{keyword} must be a type name or a non-empty list of type names"
            return
        for i, name in enumerate(names):
            where = path if isinstance(value, str) else path + (i,)
            if name == "integer":
                yield where, "type 'integer' is not supported by MongoDB; use bsonType 'int' or 'long'"
            elif name not in allowed:
                yield where, f"unknown {keyword} {name!r} (known: {', '.join(sorted(allowed))})"
        if len(set(names)) != len(names):
            yield path, f"{keyword} lists a type twice"

    return check


def _schema(value: Any, path: Path) -> Iterator[Problem]:
    yield from _schema_problems(value, path)


def _schema_map(value: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(value, dict):
        yield path, "must be an object mapping names to schemas"
        return
    for name, schema in value.items():
        yield from _schema_problems(schema, path + (name,))


def _pattern_map(value: Any, path: Path) -> Iterator[Problem]:
    if isinstance(value, dict):
        for name in value:
            yield from _regex(name, path + (name,))
    yield from _schema_map(value, path)


def _schema_list(value: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(value, list) or not value:
        yield path, "must be a non-empty array of schemas"
        return
    for i, schema in enumerate(value):
        yield from _schema_problems(schema, path + (i,))


def _bool_or_schema(value: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(value, bool):
        yield from _schema_problems(value, path)


def _items(value: Any, path: Path) -> Iterator[Problem]:
    """A schema, or an array of schemas by position; unlike allOf/anyOf/oneOf, ``[]`` is accepted."""
    if not isinstance(value, list):
        yield from _schema_problems(value, path)
        return
    for i, schema in enumerate(value):
        yield from _schema_problems(schema, path + (i,))


def _unique_strings(value: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        yield path, "must be a non-empty array of strings"
    elif len(set(value)) != len(value):
        yield path, "must not list a name twice"


def _enum(value: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(value, list) or not value:
        yield path, "must be a non-empty array"
        return
    seen = [json.dumps(canonical(v), sort_keys=True) for v in value]
    if len(set(seen)) != len(seen):
        yield path, "must not contain duplicate values"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, Decimal128)) and not isinstance(value, bool)


def _number(value: Any, path: Path) -> Iterator[Problem]:
    if not _is_number(value):
        yield path, "must be a number"


def _positive_number(value: Any, path: Path) -> Iterator[Problem]:
    number = value.to_decimal() if isinstance(value, Decimal128) else value
    if not _is_number(value) or not number > 0:
        yield path, "must be a positive number"


def _count(value: Any, path: Path) -> Iterator[Problem]:
    integral = _is_number(value) and not isinstance(value, Decimal128) and float(value).is_integer()
    if not integral or value < 0:
        yield path, "must be a non-negative integer"


def _boolean(value: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(value, bool):
        yield path, "must be true or false"


def _string(value: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(value, str):
        yield path, "must be a string"


def _object(value: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(value, dict):
        yield path, "must be an object"


def _non_empty_object(value: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(value, dict) or not value:
        yield path, "must be a non-empty object"


def _regex(value: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(value, str):
        yield path, "must be a regular expression string"
        return
    try:
        # MongoDB compiles with PCRE, not re: rare constructs (Unicode \d...) may pass here and fail there.
        re.compile(value)
    except re.error as exc:
        yield path, f"is not a valid regular expression ({exc})"


def _dependencies(value: Any, path: Path) -> Iterator[Problem]:
    if not isinstance(value, dict):
        yield path, "must be an object"
        return
    for name, dependency in value.items():
        check = _unique_strings if isinstance(dependency, list) else _schema_problems
        yield from check(dependency, path + (name,))


KEYWORDS: dict[str, Callable[[Any, Path], Iterator[Problem]]] = {
    "type": _types(JSON_TYPES, "type"),
    "bsonType": _types(BSON_TYPES, "bsonType"),
    "properties": _schema_map,
    "patternProperties": _pattern_map,
    "additionalProperties": _bool_or_schema,
    "additionalItems": _bool_or_schema,
    "items": _items,
    "allOf": _schema_list,
    "anyOf": _schema_list,
    "oneOf": _schema_list,
    "not": _schema,
    "required": _unique_strings,
    "enum": _enum,
    "dependencies": _dependencies,
    "minimum": _number,
    "maximum": _number,
    "multipleOf": _positive_number,
    "exclusiveMinimum": _boolean,
    "exclusiveMaximum": _boolean,
    "uniqueItems": _boolean,
    "minLength": _count,
    "maxLength": _count,
    "minItems": _count,
    "maxItems": _count,
    "minProperties": _count,
    "maxProperties": _count,
    "pattern": _regex,
    "title": _string,
    "description": _string,
    "encrypt": _object,
    "encryptMetadata": _non_empty_object,
}
