"""Plain comparable data describing collections: the *state* both sides of a diff share.

Every value inside is canonical JSON (see :mod:`.extjson`). Orders that
MongoDB treats as significant (the fields of an index key, of a shard key, of
a zone bound) are kept as ``[[field, value], ...]`` pairs; everything else is
compared regardless of key order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .extjson import same

Pairs = tuple[tuple[str, Any], ...]

LEDGER_COLLECTION = "sovren_db_ledger"  # the backend's step ledger, never diffed
DEFAULT_LEVEL = "strict"
DEFAULT_ACTION = "error"


def as_pairs(items: Iterable) -> Pairs:
    return tuple((str(f), v) for f, v in items)


def pairs_json(pairs: Pairs) -> list[list]:
    return [[f, v] for f, v in pairs]


def show_pairs(pairs: Pairs) -> str:
    """``{userId: 1, timestamp: -1}`` as people write it in mongosh."""
    return "{" + ", ".join(f"{f}: {json.dumps(v)}" for f, v in pairs) + "}"


class _JsonEquality:
    """Equality by canonical JSON (``true`` is not ``1``; option order does not matter)."""

    __hash__ = None  # type: ignore[assignment]

    def to_json(self) -> dict:
        raise NotImplementedError

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and same(self.to_json(), other.to_json())  # type: ignore[attr-defined]


@dataclass(frozen=True, eq=False)
class IndexSpec(_JsonEquality):
    name: str
    key: Pairs
    options: dict = field(default_factory=dict)

    @property
    def ttl(self) -> int | None:
        return self.options.get("expireAfterSeconds")

    @property
    def hashed(self) -> bool:
        return any(v == "hashed" for _, v in self.key)

    def to_json(self) -> dict:
        return {"name": self.name, "key": pairs_json(self.key), **self.options}

    @classmethod
    def from_json(cls, data: dict) -> "IndexSpec":
        options = {k: v for k, v in data.items() if k not in ("name", "key")}
        return cls(name=data["name"], key=as_pairs(data["key"]), options=options)

    def describe(self) -> str:
        extras = ", ".join(f"{k}={json.dumps(v)}" for k, v in self.options.items())
        return f"{self.name} {show_pairs(self.key)}" + (f" ({extras})" if extras else "")


@dataclass(frozen=True, eq=False)
class ShardKey(_JsonEquality):
    key: Pairs
    unique: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(f for f, _ in self.key)

    def to_json(self) -> dict:
        return {"key": pairs_json(self.key), "unique": self.unique}

    @classmethod
    def from_json(cls, data: dict | None) -> "ShardKey | None":
        if not data:
            return None
        return cls(key=as_pairs(data["key"]), unique=bool(data.get("unique", False)))


@dataclass(frozen=True, eq=False)
class ZoneRange(_JsonEquality):
    zone: str
    min: Pairs
    max: Pairs

    def to_json(self) -> dict:
        return {"zone": self.zone, "min": pairs_json(self.min), "max": pairs_json(self.max)}

    @classmethod
    def from_json(cls, data: dict) -> "ZoneRange":
        return cls(zone=data["zone"], min=as_pairs(data["min"]), max=as_pairs(data["max"]))

    def sort_key(self) -> str:
        return json.dumps(self.to_json(), sort_keys=True)

    def describe(self) -> str:
        return f"{self.zone} [{show_pairs(self.min)}, {show_pairs(self.max)})"


def sorted_zones(zones: Iterable[ZoneRange]) -> tuple[ZoneRange, ...]:
    return tuple(sorted(zones, key=ZoneRange.sort_key))


@dataclass(frozen=True, eq=False)
class CollectionSpec(_JsonEquality):
    """One collection: validator and its level/action, creation options, indexes, sharding."""

    name: str
    validator: dict | None = None
    validation_level: str = DEFAULT_LEVEL
    validation_action: str = DEFAULT_ACTION
    options: dict = field(default_factory=dict)
    indexes: tuple[IndexSpec, ...] = ()
    shard_key: ShardKey | None = None
    zones: tuple[ZoneRange, ...] = ()

    def index(self, name: str) -> IndexSpec | None:
        return next((i for i in self.indexes if i.name == name), None)

    def to_json(self) -> dict:
        """The arguments of ``mongo_create_collection`` / ``mongo_drop_collection``."""
        return {
            "collection": self.name,
            "validator": self.validator,
            "validation_level": self.validation_level,
            "validation_action": self.validation_action,
            "options": self.options,
            "indexes": [i.to_json() for i in self.indexes],
            "shard_key": self.shard_key.to_json() if self.shard_key else None,
            "zones": [z.to_json() for z in self.zones],
        }

    @classmethod
    def from_json(cls, data: dict) -> "CollectionSpec":
        return cls(
            name=data["collection"],
            validator=data.get("validator"),
            validation_level=data.get("validation_level") or DEFAULT_LEVEL,
            validation_action=data.get("validation_action") or DEFAULT_ACTION,
            options=dict(data.get("options") or {}),
            indexes=tuple(
                sorted((IndexSpec.from_json(i) for i in data.get("indexes") or ()), key=lambda i: i.name)
            ),
            shard_key=ShardKey.from_json(data.get("shard_key")),
            zones=sorted_zones(ZoneRange.from_json(z) for z in data.get("zones") or ()),
        )

    def validation(self) -> dict:
        return {
            "validator": self.validator,
            "validation_level": self.validation_level,
            "validation_action": self.validation_action,
        }


@dataclass(frozen=True)
class DatabaseState:
    """Every collection of one database; ``sharded`` is False when the server is no mongos."""

    collections: dict[str, CollectionSpec]
    sharded: bool = True

    def names(self) -> list[str]:
        return sorted(self.collections)
