"""Load and validate the key conventions declared in ``redis/*.toml``.

Each file may hold ``[families.<name>]``, ``[channels.<name>]`` and one
``[server]`` table (expected server configuration). Everything is checked
before anything is sent to a server; the first problem raises a
DeclarationError naming the file and the entry.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from ..core.errors import DeclarationError
from .patterns import KeyPattern, PatternError, overlap_witness, parse_pattern
from .state import FRAMEWORK_FAMILIES, TTL_POLICIES, TYPES, Channel, KeyFamily, RedisState, TtlRule, parse_duration

FAMILY_KEYS = {"pattern", "type", "ttl", "pii", "subject", "owner", "description", "max_elements",
               "max_bytes", "hash_tag", "groups", "foreign", "renamed_from", "overlap", "subject_field"}
FIELD_TYPES = ("stream", "hash", "string")   # where subject_field may name the subject (strings: JSON objects)
CHANNEL_KEYS = {"pattern", "owner", "description", "pii", "subject"}
TTL_KEYS = {"policy", "min", "max", "default"}
_SIZE = re.compile(r"\s*(\d+)\s*(b|kb|mb|gb)?\s*\Z", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3}


class _Entry:
    """Where a declaration came from, to raise errors that name it."""

    def __init__(self, path: Path, where: str):
        self.path, self.where = path, where

    def error(self, problem: str) -> DeclarationError:
        return DeclarationError(self.path, self.where, problem)


def load_declarations(folder: Path) -> RedisState:
    """Every ``*.toml`` in ``folder`` (sorted), validated as a whole."""
    state = RedisState(sources={})
    for path in sorted(Path(folder).glob("*.toml")) if Path(folder).is_dir() else ():
        _load_file(path, state)
    _check_overlaps(state.sources, [*FRAMEWORK_FAMILIES, *state.families.values()], "families", "key")
    _check_overlaps(state.sources, list(state.channels.values()), "channels", "channel")
    return state


def _load_file(path: Path, state: RedisState) -> None:
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DeclarationError(path, None, f"is not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"families", "channels", "server"})
    if unknown:
        raise DeclarationError(path, unknown[0], "unknown table; expected families, channels or server")
    for name, body in _tables(path, data, "families"):
        entry = _Entry(path, f"families.{name}")
        _add(state.families, state.sources, entry, parse_family(entry, name, body))
    for name, body in _tables(path, data, "channels"):
        entry = _Entry(path, f"channels.{name}")
        _add(state.channels, state.sources, entry, parse_channel(entry, name, body))
    if "server" in data:
        state.server.update(parse_server(_Entry(path, "server"), data["server"], state.server))


def _tables(path: Path, data: dict, section: str) -> list[tuple[str, dict]]:
    tables = data.get(section, {})
    if not isinstance(tables, dict) or not all(isinstance(v, dict) for v in tables.values()):
        raise DeclarationError(path, section, f"must hold one table per entry ([{section}.<name>])")
    return list(tables.items())


def _add(registry: dict, sources: dict, entry: _Entry, item: KeyFamily | Channel) -> None:
    if item.name in registry:
        raise entry.error(f"is declared twice (first in {sources[entry.where]})")
    registry[item.name] = item
    sources[entry.where] = entry.path


def _pattern(entry: _Entry, text: object, what: str = "pattern") -> KeyPattern:
    if not isinstance(text, str):
        raise entry.error(f"{what} must be a string such as 'session:{{user_id}}'")
    try:
        return parse_pattern(text)
    except PatternError as exc:
        raise entry.error(f"malformed {what} {text!r}: {exc}") from None


def _check_keys(entry: _Entry, body: dict, allowed: set[str]) -> None:
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise entry.error(f"unknown setting {unknown[0]!r} (expected one of {', '.join(sorted(allowed))})")


def _pii_subject(entry: _Entry, body: dict, pattern: KeyPattern, field: str | None = None
                 ) -> tuple[bool, str | None]:
    pii, subject = body.get("pii", False), body.get("subject")
    if not isinstance(pii, bool):
        raise entry.error("pii must be true or false")
    if pii and not subject:
        raise entry.error("holds personal data (pii = true) but names no subject placeholder")
    if subject is not None and subject not in pattern.placeholders and field is None:
        raise entry.error(f"subject {subject!r} is not a placeholder of {pattern.text!r} (name the field holding "
                          "it with subject_field)")
    return pii, subject


def _subject_field(entry: _Entry, body: dict, kind: str) -> str | None:
    field = body.get("subject_field")
    if field is None:
        return None
    if not isinstance(field, str) or not field:
        raise entry.error("subject_field must be a field name")
    if kind not in FIELD_TYPES:
        raise entry.error(f"subject_field is for {', '.join(FIELD_TYPES)} families, not {kind}")
    if body.get("pii") is not True:
        raise entry.error("subject_field names the data subject: the family must be pii = true with a subject")
    return field


def parse_family(entry: _Entry, name: str, body: dict) -> KeyFamily:
    _check_keys(entry, body, FAMILY_KEYS)
    pattern = _pattern(entry, body.get("pattern"))
    kind = body.get("type")
    if kind not in TYPES:
        raise entry.error(f"unknown type {kind!r} (expected one of {', '.join(TYPES)})")
    field = _subject_field(entry, body, kind)
    pii, subject = _pii_subject(entry, body, pattern, field)
    groups = body.get("groups", [])
    if groups and (kind != "stream" or not all(isinstance(g, str) and g for g in groups)):
        raise entry.error("groups (consumer group names) are only for stream families")
    renamed_from = body.get("renamed_from")
    if renamed_from is not None and set(_pattern(entry, renamed_from, "renamed_from").placeholders) != set(
            pattern.placeholders):
        raise entry.error("renamed_from must have the same placeholders as pattern")
    overlap = body.get("overlap", False)
    if not isinstance(overlap, bool) or (overlap and renamed_from is None):
        raise entry.error("overlap must be true or false, and goes with renamed_from (the pattern read on a miss)")
    return KeyFamily(
        name=name, pattern=pattern.text, type=kind, ttl=parse_ttl(entry, body.get("ttl", "optional")),
        pii=pii, subject=subject, owner=str(body.get("owner", "")), description=str(body.get("description", "")),
        max_elements=_size(entry, body, "max_elements"), max_bytes=_size(entry, body, "max_bytes"),
        hash_tag=_hash_tag(entry, body.get("hash_tag"), pattern), groups=tuple(groups),
        foreign=bool(body.get("foreign", False)), renamed_from=renamed_from, overlap=overlap, subject_field=field,
    )


def parse_channel(entry: _Entry, name: str, body: dict) -> Channel:
    _check_keys(entry, body, CHANNEL_KEYS)
    pattern = _pattern(entry, body.get("pattern"))
    pii, subject = _pii_subject(entry, body, pattern)
    return Channel(name, pattern.text, str(body.get("owner", "")), str(body.get("description", "")), pii, subject)


def parse_ttl(entry: _Entry, value: Any) -> TtlRule:
    if isinstance(value, str):
        value = {"policy": value}
    if not isinstance(value, dict):
        raise entry.error("ttl must be 'required', 'none', 'optional' or a table {policy, min, max, default}")
    _check_keys(entry, value, TTL_KEYS)
    policy = value.get("policy", "required")
    if policy not in TTL_POLICIES:
        raise entry.error(f"unknown ttl policy {policy!r} (expected one of {', '.join(TTL_POLICIES)})")
    try:
        bounds = {k: parse_duration(value[k]) if k in value else None for k in ("min", "max", "default")}
    except ValueError as exc:
        raise entry.error(f"ttl: {exc}") from None
    if policy != "required" and any(v is not None for v in bounds.values()):
        raise entry.error("ttl bounds and default only apply to policy 'required'")
    numbers = [v for v in (bounds["min"], bounds["default"], bounds["max"]) if v is not None]
    if numbers != sorted(numbers) or 0 in numbers:
        raise entry.error("ttl must satisfy 0 < min <= default <= max")
    return TtlRule(policy, bounds["min"], bounds["max"], bounds["default"])


def _size(entry: _Entry, body: dict, key: str) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    match = _SIZE.match(value) if isinstance(value, str) and key == "max_bytes" else None
    number = int(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()] if match else value
    if isinstance(number, bool) or not isinstance(number, int) or number <= 0:
        sizes = " or a size such as '64kb'" if key == "max_bytes" else ""
        raise entry.error(f"{key} must be a positive integer{sizes}")
    return number


def _hash_tag(entry: _Entry, declared: object, pattern: KeyPattern) -> str | None:
    actual = pattern.hash_tag()
    if declared is None:
        return actual
    if declared != actual:
        shown = f"{{{{{declared}}}}}" if declared else ""
        raise entry.error(f"hash_tag {declared!r} is not the pattern's cluster hash tag "
                          f"({'it has ' + repr(actual) if actual else 'it has none'}; write {shown} in the pattern)")
    return actual


def parse_server(entry: _Entry, body: object, known: dict[str, str]) -> dict[str, str]:
    if not isinstance(body, dict):
        raise entry.error("must be a table of configuration parameters, e.g. maxmemory-policy = 'volatile-lru'")
    expected = {}
    for name, value in body.items():
        if isinstance(value, (dict, list)) or isinstance(value, bool):
            raise entry.error(f"{name} must be a string or a number")
        if name in known and known[name] != str(value):
            raise entry.error(f"{name} is expected as {known[name]!r} in another file")
        expected[name.lower()] = str(value)
    return expected


def _check_overlaps(sources: dict, items: list, section: str, what: str) -> None:
    for i, first in enumerate(items):
        for second in items[i + 1:]:
            witness = overlap_witness(first.parsed, second.parsed)
            if witness is not None:
                where = f"{section}.{second.name}"
                raise DeclarationError(
                    sources.get(where, "sovren-db"), where,
                    f"pattern {second.pattern!r} overlaps {section}.{first.name} ({first.pattern!r}): "
                    f"the {what} {witness!r} matches both")
