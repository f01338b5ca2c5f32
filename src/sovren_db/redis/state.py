"""Plain, comparable Redis state: key families, channels, server expectations.

The same types describe the declarations in ``redis/``, the registry
published in Redis and the arguments of operations (``to_json``/``from_json``
give the JSON form stored in a revision file and in the registry).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from .patterns import KeyPattern, parse_pattern, printable

TYPES = ("string", "hash", "list", "set", "zset", "stream")
TTL_POLICIES = ("required", "none", "optional")
RESERVED_TAG = "sovren-db"
RESERVED_KEYS = {
    "ledger": "{sovren-db}:ledger",
    "registry": "{sovren-db}:registry",
    "position": "{sovren-db}:position",
}
_DURATION = re.compile(r"\s*(\d+)\s*(ms|s|m|h|d|w)?\s*\Z")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}


def as_text(value: bytes | str) -> str:
    """A reply's bytes (or a decoded reply's str) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_duration(value: object) -> int:
    """Seconds from ``30``, ``"30s"``, ``"15m"``, ``"2h"``, ``"7d"``, ``"1w"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, int) and value >= 0:
        return value
    match = _DURATION.match(value) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{value!r} is not a duration (use seconds or 30s, 15m, 2h, 7d, 1w)")
    return max(1, int(int(match[1]) * _UNIT_SECONDS[match[2]])) if int(match[1]) else 0


def format_duration(seconds: int | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class TtlRule:
    """``required`` (with optional bounds), ``none`` (keys never expire) or ``optional``.

    ``max`` bounds the remaining TTL of live keys; ``min`` is the shortest TTL a
    writer may set (remaining TTLs always fall below it, so the audit cannot
    check it); ``default`` is the TTL that ``redis_backfill_ttl`` sets.
    """

    policy: str = "optional"
    min: int | None = None
    max: int | None = None
    default: int | None = None

    def describe(self) -> str:
        if self.policy != "required":
            return "no TTL" if self.policy == "none" else "TTL optional"
        bounds = [f"{k} {format_duration(v)}" for k, v in (("min", self.min), ("max", self.max)) if v is not None]
        return "TTL required" + (f" ({', '.join(bounds)})" if bounds else "")

    def to_json(self) -> dict[str, Any]:
        return {"policy": self.policy, "min": self.min, "max": self.max, "default": self.default}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TtlRule":
        return cls(data.get("policy", "optional"), data.get("min"), data.get("max"), data.get("default"))


@dataclass(frozen=True)
class KeyFamily:
    name: str
    pattern: str
    type: str
    ttl: TtlRule = field(default_factory=TtlRule)
    pii: bool = False
    subject: str | None = None
    owner: str = ""
    description: str = ""
    max_elements: int | None = None
    max_bytes: int | None = None
    hash_tag: str | None = None
    groups: tuple[str, ...] = ()
    foreign: bool = False
    renamed_from: str | None = field(default=None, compare=False)
    overlap: bool = field(default=False, compare=False)      # declared: keep the old pattern for reads
    fallback: str | None = field(default=None, compare=False)  # published: the old pattern, during an overlap
    # The field naming the subject inside each stream entry, hash or JSON string (the key does not name it).
    subject_field: str | None = None

    @cached_property
    def parsed(self) -> KeyPattern:
        return parse_pattern(self.pattern)

    @property
    def fixed_key(self) -> bytes | None:
        """The one key of a family without placeholders."""
        return None if self.parsed.placeholders else self.parsed.render({})

    def describe(self) -> str:
        kind = "foreign " if self.foreign else ""
        return f"{kind}key family {self.name} ({printable(self.pattern)}, {self.type}, {self.ttl.describe()})"

    def to_json(self) -> dict[str, Any]:
        """The published form (``renamed_from`` and ``overlap`` are declaration details, not published;
        ``fallback``, the pattern readers try on a miss, is published during an overlap only)."""
        return {
            "name": self.name, "pattern": self.pattern, "type": self.type, "ttl": self.ttl.to_json(),
            "pii": self.pii, "subject": self.subject, "owner": self.owner, "description": self.description,
            "max_elements": self.max_elements, "max_bytes": self.max_bytes, "hash_tag": self.hash_tag,
            "groups": list(self.groups), "foreign": self.foreign,
            **({"fallback": self.fallback} if self.fallback else {}),
            # only when set, so that the published form of the other families does not change
            **({"subject_field": self.subject_field} if self.subject_field else {}),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "KeyFamily":
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["ttl"] = TtlRule.from_json(data.get("ttl") or {})
        values["groups"] = tuple(data.get("groups") or ())
        return cls(**values)

    def renamed(self, name: str, pattern: str) -> "KeyFamily":
        return replace(self, name=name, pattern=pattern, renamed_from=None)

    def with_fallback(self, pattern: str | None) -> "KeyFamily":
        return replace(self, fallback=pattern, renamed_from=None, overlap=False)


@dataclass(frozen=True)
class Channel:
    """A pub/sub channel pattern (same grammar as keys)."""

    name: str
    pattern: str
    owner: str = ""
    description: str = ""
    pii: bool = False
    subject: str | None = None

    @cached_property
    def parsed(self) -> KeyPattern:
        return parse_pattern(self.pattern)

    def describe(self) -> str:
        return f"channel {self.name} ({printable(self.pattern)})"

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "pattern": self.pattern, "owner": self.owner,
                "description": self.description, "pii": self.pii, "subject": self.subject}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Channel":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class RedisState:
    """Families and channels by name, plus server configuration expectations."""

    families: dict[str, KeyFamily] = field(default_factory=dict)
    channels: dict[str, Channel] = field(default_factory=dict)
    server: dict[str, str] = field(default_factory=dict)
    sources: dict[str, object] = field(default_factory=dict, compare=False)  # "families.x" -> file


FRAMEWORK_FAMILIES = (
    KeyFamily("sovren_db_ledger", "{{sovren-db}}:ledger", "hash", TtlRule("none"), owner="sovren-db",
              description="Steps of the revision chain already applied to Redis.", foreign=True,
              hash_tag=RESERVED_TAG),
    KeyFamily("sovren_db_registry", "{{sovren-db}}:registry", "hash", TtlRule("none"), owner="sovren-db",
              description="The published key conventions (one JSON document per family and channel).",
              foreign=True, hash_tag=RESERVED_TAG),
    KeyFamily("sovren_db_position", "{{sovren-db}}:position", "string", TtlRule("none"), owner="sovren-db",
              description="The revision through which Redis steps are applied.", foreign=True,
              hash_tag=RESERVED_TAG),
    KeyFamily("sovren_db_audit_checkpoints", "sovren:audit:checkpoints", "list", TtlRule("none"), owner="sovren-db",
              description="Signed checkpoints of the audit chain's head ('audit seal --to redis').", foreign=True),
)
