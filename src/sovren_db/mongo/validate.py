"""Offline ``$jsonSchema`` validation: does MongoDB accept this document?

Built on jsonschema's draft 4 validator (MongoDB's dialect is draft 4) with
MongoDB's differences:

- ``bsonType`` tells BSON types apart: ``int`` (32-bit) from ``long`` from
  ``double`` from ``decimal``, ``date`` and ``objectId`` from ``string``...,
  with the alias ``number`` for all four numeric types;
- ``type`` knows the JSON names only (``number`` matches every numeric BSON
  type; ``integer`` does not exist: declarations using it fail to load);
- numbers compare across types (``Decimal128`` included), ``true`` is not ``1``;
- documents keep their BSON types because they are read as Extended JSON
  (``{"$oid": ...}``, ``{"$date": ...}``, ``{"$numberLong": ...}``).

Unsupported keywords (``$ref``, ``format``...) never get here: loading a
declaration rejects them (:mod:`.dialect`).
"""

from __future__ import annotations

import datetime
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp, json_util
from bson.datetime_ms import DatetimeMS
from jsonschema import Draft4Validator, TypeChecker, ValidationError, validators

from .dialect import schema_problem
from .extjson import from_extjson, pointer, to_python_number

INT32 = range(-(2**31), 2**31)
NUMERIC = frozenset({"int", "long", "double", "decimal"})


def bson_type(value: Any) -> str:
    """The BSON type name (as in ``$type``/``bsonType``) a Python value is stored as."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Int64):
        return "long"
    if isinstance(value, int):
        return "int" if value in INT32 else "long"
    for kinds, name in _TYPE_NAMES:
        if isinstance(value, kinds):
            return name
    if isinstance(value, Code):
        return "javascriptWithScope" if value.scope is not None else "javascript"
    return type(value).__name__


_TYPE_NAMES: tuple[tuple[Any, str], ...] = (
    (float, "double"),
    ((Decimal, Decimal128), "decimal"),
    (str, "string"),
    ((Mapping, DBRef), "object"),
    ((list, tuple), "array"),
    (type(None), "null"),
    (ObjectId, "objectId"),
    ((datetime.datetime, DatetimeMS), "date"),
    ((Binary, bytes, uuid.UUID), "binData"),
    ((Regex, re.Pattern), "regex"),
    (Timestamp, "timestamp"),
    (MinKey, "minKey"),
    (MaxKey, "maxKey"),
)


def matches_bson_type(value: Any, name: str) -> bool:
    actual = bson_type(value)
    return actual == name or (name == "number" and actual in NUMERIC)


def _json_type(name: str):
    names = {
        "number": NUMERIC,
        "string": {"string"},
        "object": {"object"},
        "array": {"array"},
        "boolean": {"bool"},
        "null": {"null"},
    }[name]
    return lambda checker, value: bson_type(value) in names


_TYPES = TypeChecker().redefine_many(
    {name: _json_type(name) for name in ("number", "string", "object", "array", "boolean", "null")}
)


def _bson_type_keyword(validator, names, instance, schema) -> Iterator[ValidationError]:
    names = [names] if isinstance(names, str) else list(names)
    if not any(matches_bson_type(instance, name) for name in names):
        wanted = names[0] if len(names) == 1 else f"one of {', '.join(names)}"
        yield ValidationError(
            f"{bson_type(instance)} value {show_value(instance)} is not of bsonType {wanted}"
        )


def show_value(value: Any) -> str:
    """A value as Extended JSON, the way it was written in the document."""
    if isinstance(value, Decimal):
        value = Decimal128(str(value))
    try:
        return json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS)
    except (TypeError, ValueError):
        return repr(value)


def _multiple_of(validator, divisor, instance, schema) -> Iterator[ValidationError]:
    if validator.is_type(instance, "number") and Decimal(str(instance)) % Decimal(str(divisor)) != 0:
        yield ValidationError(f"{instance!r} is not a multiple of {divisor}")


def _encrypt(validator, spec, instance, schema) -> Iterator[ValidationError]:
    if not (isinstance(instance, Binary) and instance.subtype == 6):
        yield ValidationError(f"{instance!r} is not encrypted (binData subtype 6)")


MongoSchemaValidator = validators.extend(
    Draft4Validator,
    validators={"bsonType": _bson_type_keyword, "multipleOf": _multiple_of, "encrypt": _encrypt},
    type_checker=_TYPES,
)


@dataclass(frozen=True)
class Rejection:
    index: int
    reasons: tuple[str, ...]
    line: int | None = None


class DocumentValidator:
    """A compiled ``$jsonSchema``; ``errors(document)`` lists why MongoDB would reject it."""

    def __init__(self, schema: Mapping):
        schema = from_extjson(dict(schema))
        problem = schema_problem(schema)
        if problem:
            raise ValueError(f"not a MongoDB $jsonSchema at {pointer(*problem[0]) or '/'}: {problem[1]}")
        self._validator = MongoSchemaValidator(to_python_number(schema))

    def errors(self, document: Any) -> list[str]:
        if not isinstance(document, Mapping):
            return [f"a document must be an object, not {bson_type(document)}"]
        found = self._validator.iter_errors(to_python_number(document))
        return [_reason(e) for e in sorted(found, key=lambda e: list(map(str, e.absolute_path)))]

    def accepts(self, document: Any) -> bool:
        return isinstance(document, Mapping) and self._validator.is_valid(to_python_number(document))

    def rejections(self, documents: Iterable[tuple[int, int | None, Any]]) -> list[Rejection]:
        """The rejected ones among (index, line, document) triples."""
        out = []
        for index, line, document in documents:
            reasons = self.errors(document)
            if reasons:
                out.append(Rejection(index=index, reasons=tuple(reasons), line=line))
        return out


def _reason(error: ValidationError) -> str:
    where = pointer(*error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def validator_schema(validator: Mapping | None) -> dict | None:
    """The ``$jsonSchema`` of a collection validator, if it has one."""
    return (validator or {}).get("$jsonSchema")
