"""Write a live MongoDB database as the ``mongo/`` folder: ``<name>.toml`` and ``<name>.schema.json``.

The inverse of :mod:`sovren_db.mongo.declared`: loading what this writes gives
back the same :class:`CollectionSpec` (tested with replies shaped like the
server's). TOML is written by hand: the values are JSON-shaped (canonical
Extended JSON), and tomllib reads but does not write.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..mongo.extjson import canonical
from ..mongo.normalise import default_index_name
from ..mongo.state import CollectionSpec, DatabaseState, pairs_json

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    raise TypeError(f"{value!r} has no TOML form")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _document(pairs) -> dict:
    return {field: value for field, value in pairs_json(pairs)}


def render_collection(spec: CollectionSpec, note: str = "") -> str:
    lines = [f"description = {toml_value(note or 'Read from the live database by sovren-db inspect.')}"]
    if spec.validator is not None:
        lines += [f"validationLevel = {toml_value(spec.validation_level)}",
                  f"validationAction = {toml_value(spec.validation_action)}"]
    options = dict(spec.options)
    if options.pop("capped", False):  # declared as capped = { size = ..., max = ... }
        options = {"capped": {k: options.pop(k) for k in ("size", "max") if k in options}, **options}
    for key, value in options.items():
        lines.append(f"{toml_key(key)} = {toml_value(canonical(value))}")
    for index in spec.indexes:
        lines += ["", "[[indexes]]", f"key = {toml_value(_document(index.key))}"]
        if index.name != default_index_name(list(index.key)):
            lines.append(f"name = {toml_value(index.name)}")
        lines += [f"{toml_key(k)} = {toml_value(v)}" for k, v in index.options.items()]
    if spec.shard_key is not None:
        lines += ["", "[shard]", f"key = {toml_value(_document(spec.shard_key.key))}"]
        if spec.shard_key.unique:
            lines.append("unique = true")
    for zone in spec.zones:
        lines += ["", "[[zones]]", f"zone = {toml_value(zone.zone)}", f"min = {toml_value(_document(zone.min))}",
                  f"max = {toml_value(_document(zone.max))}"]
    return "\n".join(lines) + "\n"


def write_mongo(state: DatabaseState, folder: Path, notes: dict[str, str] | None = None) -> list[Path]:
    """One ``.toml`` per collection, and its ``.schema.json`` where it has a ``$jsonSchema`` validator."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, spec in sorted(state.collections.items()):
        toml_path = folder / f"{name}.toml"
        toml_path.write_text(render_collection(spec, (notes or {}).get(name, "")))
        written.append(toml_path)
        schema = (spec.validator or {}).get("$jsonSchema")
        if schema is not None:
            schema_path = folder / f"{name}.schema.json"
            schema_path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
            written.append(schema_path)
    return written
