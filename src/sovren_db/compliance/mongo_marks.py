"""The Mongo half of the personal-data declarations: ``mongo/privacy.cfg`` (TOML).

The collection loader rejects unknown keys in ``mongo/<name>.toml`` and reads
every ``*.toml`` of ``mongo/`` as a collection, so the marks are TOML in a
file it ignores, one table per collection::

    [communications]
    subject = "userId"          # the field naming the data subject (default "userId")
    erase = "delete"            # the subject's documents are deleted
    personal = ["recipient", "message"]
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import DeclarationError

MARKS_FILE = "privacy.cfg"
DEFAULT_SUBJECT = "userId"
MONGO_ERASE_RULES = ("delete",)
KEYS = {"subject", "erase", "personal"}


@dataclass(frozen=True)
class CollectionRule:
    collection: str
    subject: str
    erase: str = "delete"
    personal: tuple[str, ...] = ()


def marks_path(mongo_dir: Path) -> Path:
    return mongo_dir / MARKS_FILE


def load_marks(mongo_dir: Path, properties: dict[str, set[str]], root: Path | None = None
               ) -> dict[str, CollectionRule]:
    """The rules of ``mongo/privacy.cfg``, checked against the declared properties
    (collection -> top-level property names); DeclarationError naming the file (relative to ``root``)
    and the entry otherwise."""
    if not marks_path(mongo_dir).is_file():
        return {}
    path = marks_path(mongo_dir)
    if root is not None and path.is_relative_to(root):
        path = path.relative_to(root)
    try:
        data = tomllib.loads(marks_path(mongo_dir).read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DeclarationError(path, None, f"is not valid TOML ({exc})") from None
    return {name: _rule(path, name, body, properties) for name, body in sorted(data.items())}


def _rule(path: Path, name: str, body: object, properties: dict[str, set[str]]) -> CollectionRule:
    if not isinstance(body, dict):
        raise DeclarationError(path, name, "must be a table ([<collection>] with subject, erase, personal)")
    unknown = sorted(set(body) - KEYS)
    if unknown:
        raise DeclarationError(path, name, f"unknown setting {unknown[0]!r} "
                                           f"(expected one of {', '.join(sorted(KEYS))})")
    if name not in properties:
        raise DeclarationError(path, name, "is not a declared collection")
    subject = body.get("subject", DEFAULT_SUBJECT)
    erase = body.get("erase", "delete")
    personal = body.get("personal", [])
    if erase not in MONGO_ERASE_RULES:
        raise DeclarationError(path, f"{name}.erase", f"must be one of {', '.join(MONGO_ERASE_RULES)}")
    if not isinstance(personal, list) or not all(isinstance(p, str) for p in personal):
        raise DeclarationError(path, f"{name}.personal", "must be a list of field names")
    for field in (subject, *personal):
        if field not in properties[name]:
            raise DeclarationError(path, name, f"field {field!r} is not a property of the collection's $jsonSchema")
    return CollectionRule(name, subject, erase, tuple(personal))


def declared_properties(collections: dict) -> dict[str, set[str]]:
    """collection -> top-level property names of its ``$jsonSchema``."""
    found = {}
    for name, spec in collections.items():
        schema = (spec.validator or {}).get("$jsonSchema", {})
        found[name] = set(schema.get("properties", {}))
    return found
