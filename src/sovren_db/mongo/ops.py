"""Mongo operations of a revision: ``op.mongo_<verb>_<noun>(...)``.

One data class per change kind; arguments are JSON values only (a step of an
absent store is kept as op_name + JSON and replayed later). Orders MongoDB
cares about (index keys, shard keys, zone bounds) are ``[[field, value], ...]``
lists, because JSON objects may come back reordered (Postgres ``jsonb`` does).

Frozen data classes named VerbNounOp; :mod:`.toimpl` runs each against the
connected pymongo ``Database`` (:class:`~sovren_db.mongo.backend.MongoBackend`
passes its own) through the convergent functions of :mod:`.execute`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..core.storeops import IrreversibleOp, StoreOp, past_field, store_operation
from .state import (
    DEFAULT_ACTION,
    DEFAULT_LEVEL,
    CollectionSpec,
    IndexSpec,
    ShardKey,
    ZoneRange,
    as_pairs,
    show_pairs,
)

MISSING = "missing in database"
UNDECLARED = "in database but not declared"


class MongoOp(StoreOp):
    store = "mongo"


def contents(spec: CollectionSpec) -> str:
    """What a collection holds besides its documents, in one clause."""
    parts = ["validator" if spec.validator else "no validator", f"{len(spec.indexes)} index(es)"]
    if spec.shard_key:
        parts.append(f"sharded on {show_pairs(spec.shard_key.key)}")
    if spec.zones:
        parts.append(f"{len(spec.zones)} zone range(s)")
    return ", ".join(parts)


@store_operation
@dataclass(frozen=True)
class CreateCollectionOp(MongoOp):
    """A collection with everything it holds: validator, options, indexes, shard key and zones."""

    op_name = "mongo_create_collection"

    collection: str
    validator: dict | None = None
    validation_level: str = DEFAULT_LEVEL
    validation_action: str = DEFAULT_ACTION
    options: dict = field(default_factory=dict)
    indexes: list = field(default_factory=list)
    shard_key: dict | None = None
    zones: list = field(default_factory=list)

    @classmethod
    def of(cls, spec: CollectionSpec) -> "CreateCollectionOp":
        return cls(**spec.to_json())

    def spec(self) -> CollectionSpec:
        return CollectionSpec.from_json(self.arguments())

    def describe(self) -> str:
        return f"create collection {self.collection} ({contents(self.spec())})"

    def drift(self) -> tuple[str, str]:
        return f"collection {self.collection}", MISSING

    def reverse(self) -> "DropCollectionOp":
        return DropCollectionOp(self.collection, past=self.arguments())


@store_operation
@dataclass(frozen=True)
class DropCollectionOp(MongoOp):
    """Drop a collection by name, as Alembic's ``drop_table('x')``; ``past`` (not rendered) is the
    collection as the code that wrote the drop knew it, for ``reverse()``. The ledger's undo step
    is read from the server just before the drop (:func:`.toimpl.undo`)."""

    op_name = "mongo_drop_collection"
    destructive = True

    collection: str
    past: dict | None = past_field()

    @classmethod
    def of(cls, spec: CollectionSpec) -> "DropCollectionOp":
        return cls(spec.name, past=spec.to_json())

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> "DropCollectionOp":
        """Revisions written before drops carried only the name pass the whole collection: kept as
        ``past``, the reverse they always had."""
        past = arguments if set(arguments) - {"collection"} else None
        return cls(arguments["collection"], past=CreateCollectionOp(**past).arguments() if past else None)

    def describe(self) -> str:
        had = f" (had {contents(CollectionSpec.from_json(self.past))})" if self.past else ""
        return f"drop collection {self.collection} and its documents{had}"

    def drift(self) -> tuple[str, str]:
        return f"collection {self.collection}", UNDECLARED

    def reverse(self) -> CreateCollectionOp:
        if self.past is None:
            raise IrreversibleOp(f"{self.describe()} cannot be reversed here: the collection it drops is "
                                 "known only to the revision chain before it")
        return CreateCollectionOp(**self.past)


@store_operation
@dataclass(frozen=True)
class SetValidatorOp(MongoOp):
    """collMod to an exact validator; ``prior`` (None: no validator) makes it reversible.

    Tightening is refused while documents violate the new validator, unless
    ``validation_level="moderate"``, ``validation_action="warn"`` or
    ``allow_violations=True`` says how to proceed.
    """

    op_name = "mongo_set_validator"

    collection: str
    validator: dict | None
    validation_level: str = DEFAULT_LEVEL
    validation_action: str = DEFAULT_ACTION
    prior: dict | None = None
    allow_violations: bool = False

    def describe(self) -> str:
        if self.validator is None:
            return f"remove the validator of {self.collection}"
        return f"set the validator of {self.collection} ({self.validation_level}, {self.validation_action})"

    def drift(self) -> tuple[str, str]:
        before = self.prior or {}
        if not before.get("validator"):
            return f"validator of {self.collection}", MISSING
        if self.validator is None:
            return f"validator of {self.collection}", UNDECLARED
        if json.dumps(before["validator"], sort_keys=True) == json.dumps(self.validator, sort_keys=True):
            return (
                f"validation of {self.collection}",
                f"declared {self.validation_level}/{self.validation_action}, "
                f"database {before.get('validation_level')}/{before.get('validation_action')}",
            )
        return f"validator of {self.collection}", "differs from the declaration"

    def reverse(self) -> "SetValidatorOp":
        before = self.prior or {}
        current = {
            "validator": self.validator,
            "validation_level": self.validation_level,
            "validation_action": self.validation_action,
        }
        return SetValidatorOp(
            self.collection,
            before.get("validator"),
            before.get("validation_level") or DEFAULT_LEVEL,
            before.get("validation_action") or DEFAULT_ACTION,
            prior=current,
        )


@store_operation
@dataclass(frozen=True)
class CreateIndexOp(MongoOp):
    """``index`` is ``{"name": ..., "key": [[field, 1 | -1 | "hashed" | "text"...], ...], options...}``."""

    op_name = "mongo_create_index"

    collection: str
    index: dict

    def spec(self) -> IndexSpec:
        return IndexSpec.from_json(self.index)

    def describe(self) -> str:
        return f"create index {self.spec().describe()} on {self.collection}"

    def drift(self) -> tuple[str, str]:
        return f"index {self.collection}.{self.index['name']}", MISSING

    def reverse(self) -> "DropIndexOp":
        return DropIndexOp(self.collection, self.index)


@store_operation
@dataclass(frozen=True)
class DropIndexOp(MongoOp):
    """Carries the whole index spec so that its reverse recreates it."""

    op_name = "mongo_drop_index"
    destructive = True

    collection: str
    index: dict

    def describe(self) -> str:
        return f"drop index {IndexSpec.from_json(self.index).describe()} of {self.collection}"

    def drift(self) -> tuple[str, str]:
        return f"index {self.collection}.{self.index['name']}", UNDECLARED

    def reverse(self) -> CreateIndexOp:
        return CreateIndexOp(self.collection, self.index)


@store_operation
@dataclass(frozen=True)
class ShardCollectionOp(MongoOp):
    """Shard on ``key``; from ``prior_key`` it refines (key extends it) or reshards."""

    op_name = "mongo_shard_collection"

    collection: str
    key: list
    unique: bool = False
    prior_key: list | None = None

    def describe(self) -> str:
        key = show_pairs(as_pairs(self.key))
        if self.prior_key:
            prior = show_pairs(as_pairs(self.prior_key))
            return f"change the shard key of {self.collection} from {prior} to {key}"
        return f"shard {self.collection} on {key}" + (" (unique)" if self.unique else "")

    def drift(self) -> tuple[str, str]:
        if self.prior_key:
            return f"shard key of {self.collection}", f"database has {show_pairs(as_pairs(self.prior_key))}"
        return f"shard key of {self.collection}", MISSING

    def reverse(self) -> MongoOp:
        if self.prior_key:
            return ShardCollectionOp(self.collection, self.prior_key, prior_key=self.key)
        return UnshardCollectionOp(self.collection, self.key, self.unique)


@store_operation
@dataclass(frozen=True)
class UnshardCollectionOp(MongoOp):
    """unshardCollection (MongoDB 8.0+); ``key`` is kept for the reverse."""

    op_name = "mongo_unshard_collection"

    collection: str
    key: list
    unique: bool = False

    def describe(self) -> str:
        return f"unshard {self.collection} (sharded on {show_pairs(as_pairs(self.key))})"

    def drift(self) -> tuple[str, str]:
        return f"shard key of {self.collection}", UNDECLARED

    def reverse(self) -> ShardCollectionOp:
        return ShardCollectionOp(self.collection, self.key, self.unique)


@store_operation
@dataclass(frozen=True)
class SetZonesOp(MongoOp):
    """The exact zone ranges of a collection: ``[{"zone", "min": [[f, v]...], "max": [...]}]``."""

    op_name = "mongo_set_zones"

    collection: str
    zones: list
    prior: list = field(default_factory=list)

    def ranges(self, which: list) -> list[ZoneRange]:
        return [ZoneRange.from_json(z) for z in which]

    def describe(self) -> str:
        shown = "; ".join(z.describe() for z in self.ranges(self.zones)) or "none"
        return f"set the zone ranges of {self.collection}: {shown}"

    def drift(self) -> tuple[str, str]:
        declared, live = self.ranges(self.zones), self.ranges(self.prior)
        missing = [z.describe() for z in declared if z not in live]
        extra = [z.describe() for z in live if z not in declared]
        parts = ([f"missing in database: {'; '.join(missing)}"] if missing else []) + (
            [f"not declared: {'; '.join(extra)}"] if extra else []
        )
        return f"zones of {self.collection}", ", ".join(parts)

    def reverse(self) -> "SetZonesOp":
        return SetZonesOp(self.collection, self.prior, prior=self.zones)


@store_operation
@dataclass(frozen=True)
class ModifyCollectionOp(MongoOp):
    """Creation options changed in place (capped size/max, time series bucketing, TTL)."""

    op_name = "mongo_modify_collection"

    collection: str
    options: dict
    prior: dict = field(default_factory=dict)

    def changed(self) -> list[str]:
        return sorted(
            k for k in set(self.options) | set(self.prior) if self.options.get(k) != self.prior.get(k)
        )

    def describe(self) -> str:
        return f"change the options of {self.collection}: {', '.join(self.changed())}"

    def drift(self) -> tuple[str, str]:
        shown = ", ".join(
            f"{k} declared {json.dumps(self.options.get(k))}, database {json.dumps(self.prior.get(k))}"
            for k in self.changed()
        )
        return f"options of {self.collection}", shown

    def reverse(self) -> "ModifyCollectionOp":
        return ModifyCollectionOp(self.collection, self.prior, prior=self.options)


MONGO_OPS = (
    CreateCollectionOp,
    DropCollectionOp,
    SetValidatorOp,
    CreateIndexOp,
    DropIndexOp,
    ShardCollectionOp,
    UnshardCollectionOp,
    SetZonesOp,
    ModifyCollectionOp,
)
