"""MongoDB Extended JSON: canonical comparable values, BSON values, document files.

Three forms of one value travel through this package:

- *BSON values* (``Int64``, ``ObjectId``, ``datetime``, ``MinKey``...): what
  pymongo sends and receives;
- *canonical JSON*: plain JSON where every number that is integral is an
  ``int`` (so ``1``, ``1.0`` and ``Int64(1)`` compare equal, as the server
  compares them) and every other BSON value is its relaxed Extended JSON
  (``{"$oid": ...}``, ``{"$minKey": 1}``). States, diffs and operation
  arguments hold this form, which survives a trip through Postgres ``jsonb``;
- *Extended JSON text*, read from declaration and document files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from bson import json_util
from bson.decimal128 import Decimal128
from bson.objectid import ObjectId

from ..core.errors import DeclarationError

_RELAXED = json_util.RELAXED_JSON_OPTIONS
_JSON_SCALARS = (str, type(None))


def canonical(value: Any) -> Any:
    """The canonical JSON form of a BSON value (see the module docstring)."""
    if isinstance(value, bool) or isinstance(value, _JSON_SCALARS):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
            return int(value)
        return value if math.isfinite(value) else json.loads(json_util.dumps(value))
    if isinstance(value, Mapping):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    return json.loads(json_util.dumps(value, json_options=_RELAXED))


def from_extjson(value: Any) -> Any:
    """BSON values from JSON-shaped data holding Extended JSON (``{"$date": ...}``)."""
    if isinstance(value, Mapping):
        return json_util.object_hook({k: from_extjson(v) for k, v in value.items()}, _RELAXED)
    if isinstance(value, list):
        return [from_extjson(v) for v in value]
    return value


def pairs_to_document(pairs: list) -> dict:
    """An ordered BSON document from ``[[field, value], ...]`` (key order kept)."""
    return {str(field): from_extjson(value) for field, value in pairs}


def document_to_pairs(document: Mapping) -> list[list]:
    return [[str(field), canonical(value)] for field, value in document.items()]


def same(a: Any, b: Any) -> bool:
    """Equality of canonical values that also tells ``true`` from ``1``."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def pointer(*parts: object) -> str:
    """An RFC 6901 JSON pointer: ``pointer("indexes", 2, "key")`` -> ``/indexes/2/key``."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts) or ""


def show_id(value: Any) -> str:
    """A document ``_id`` as people read it: ObjectId hex, quoted string, else Extended JSON."""
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return json_util.dumps(value, json_options=_RELAXED)


def to_python_number(value: Any) -> Any:
    """``Decimal128`` as ``decimal.Decimal`` (comparable with int and float), recursively."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, Mapping):
        return {k: to_python_number(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_python_number(v) for v in value]
    return value


def _unique_keys(path: Path | str):
    def hook(items: list[tuple[str, Any]]) -> dict:
        seen: dict[str, Any] = {}
        for key, value in items:
            if key in seen:
                raise DeclarationError(path, None, f"the key {key!r} appears twice in one object")
            seen[key] = value
        return seen

    return hook


def load_json_file(path: Path, display: str | None = None) -> Any:
    """Parse a JSON file strictly (a key twice is an error); DeclarationError naming ``display``."""
    shown = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeclarationError(shown, None, f"cannot be read ({exc})") from None
    try:
        return json.loads(text, object_pairs_hook=_unique_keys(shown))
    except json.JSONDecodeError as exc:
        raise DeclarationError(shown, f"line {exc.lineno}", f"not valid JSON: {exc.msg}") from None


def read_documents(path: Path) -> Iterator[tuple[int, int | None, Any]]:
    """(index, line or None, document) from a JSON array file or a JSON-lines file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DeclarationError(path, None, f"cannot be read ({exc})") from None
    if text.lstrip().startswith("["):
        yield from _array_documents(path, text)
        return
    index = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            yield index, number, _parse_document(path, line, f"line {number}")
            index += 1


def _array_documents(path: Path, text: str) -> Iterator[tuple[int, None, Any]]:
    try:
        documents = json_util.loads(text, json_options=_RELAXED)
    except ValueError as exc:
        raise DeclarationError(path, None, f"not valid Extended JSON: {exc}") from None
    if not isinstance(documents, list):
        raise DeclarationError(path, None, "expected a JSON array of documents")
    for index, document in enumerate(documents):
        yield index, None, document


def _parse_document(path: Path, text: str, where: str) -> Any:
    try:
        return json_util.loads(text, json_options=_RELAXED)
    except ValueError as exc:
        raise DeclarationError(path, where, f"not valid Extended JSON: {exc}") from None


__all__ = [
    "canonical",
    "from_extjson",
    "pairs_to_document",
    "document_to_pairs",
    "same",
    "pointer",
    "show_id",
    "to_python_number",
    "load_json_file",
    "read_documents",
]
