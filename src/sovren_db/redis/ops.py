"""Redis operations of the revision chain (``op.redis_declare_family(...)`` and the rest).

Frozen data classes named VerbNounOp; what each does to a server is in :mod:`.toimpl`.
Families and channels travel as their JSON form (:meth:`KeyFamily.to_json`),
so that a deferred step can be stored and replayed. Every operation is
convergent: publishing a document, moving what is left to move, setting a
TTL only where none is, creating a group that may exist.
"""

from __future__ import annotations

import json

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import redis

from ..core.errors import MigrationFailed, Refused
from ..core.storeops import IrreversibleOp, StoreOp, past_field, store_operation
from .keyops import backfill_ttl, delete_family
from .live import stream_groups
from .moves import BATCH, Move, MoveCount, Pace, move_keys, settle_existing
from .patterns import KeyPattern, overlap_witness, parse_pattern, printable
from .state import Channel, KeyFamily, format_duration

if TYPE_CHECKING:
    from .backend import RedisBackend


_WHAT = {"family": "key family", "channel": "channel"}


def registry_entry(kind: str, name: str) -> str:
    """The registry hash's field for a family or a channel: ``family:session``."""
    return f"{kind}:{name}"


class RedisOp(StoreOp):
    store = "redis"


@store_operation
@dataclass(frozen=True)
class SkipReverseOp(RedisOp):
    """The documented inverse of a step that cannot be undone: it does nothing."""

    of: str
    op_name = "redis_skip_reverse"

    def describe(self) -> str:
        return f"nothing to undo in Redis for: {self.of}"

    def reverse(self) -> StoreOp:
        return self


def field_changes(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[tuple[str, str, str]]:
    """(field, old value, new value) of every field that differs, nested tables as ``ttl.max``."""
    changes = []
    for name in sorted(set(old) | set(new)):
        before, after = old.get(name), new.get(name)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            changes += field_changes(before, after, f"{prefix}{name}.")
        else:
            field = f"{prefix}{name}"
            changes.append((field, _shown(field, before), _shown(field, after)))
    return changes


def _shown(field: str, value: Any) -> str:
    if value is None:
        return "(none)"
    if field.startswith("ttl.") and isinstance(value, int):
        return format_duration(value)  # seconds in the registry, written as in the declarations
    return str(value) if isinstance(value, (int, float)) else json.dumps(value)


class _DeclareEntry(RedisOp):
    """Publish one registry entry (a family or a channel); ``previous``: what it replaces."""

    kind: ClassVar[str]                    # "family" | "channel": the name of the JSON field
    state: ClassVar[type]                  # KeyFamily | Channel
    retire_class: ClassVar[type["_RetireEntry"]]
    previous: dict[str, Any] | None

    @property
    def document(self) -> dict[str, Any]:
        return getattr(self, self.kind)

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> StoreOp:
        """A revision writes only the fields that differ from the declaration's defaults (name and
        pattern always): the step holds the whole published form again."""
        whole = {k: None if v is None else cls.state.from_json(v).to_json() for k, v in arguments.items()
                 if k in (cls.kind, "previous")}
        return cls(**{**arguments, **whole})

    def rendered_arguments(self) -> dict[str, Any]:
        arguments = super().rendered_arguments()
        for key in (self.kind, "previous"):
            if arguments.get(key):
                arguments[key] = self._without_defaults(arguments[key])
        return arguments

    def _without_defaults(self, document: dict[str, Any]) -> dict[str, Any]:
        kept = {k: document[k] for k in ("name", "pattern", "type") if k in document}
        defaults = self.state.from_json(kept).to_json()
        return {k: v for k, v in document.items() if k in kept or v != defaults.get(k, ...)}

    def describe(self) -> str:
        return f"{'update' if self.previous else 'declare'} {self.state.from_json(self.document).describe()}"

    def drift(self) -> tuple[str, str]:
        message = "not published in the registry"
        if self.previous:
            changes = "; ".join(f"{field}: {old} -> {new}" for field, old, new in field_changes(self.previous,
                                                                                               self.document))
            message = f"published with another declaration (published -> declared: {changes or 'same fields'})"
        return (f"{_WHAT[self.kind]} {self.document['name']}", message)

    def reverse(self) -> StoreOp:
        if self.previous:
            return type(self)(self.previous, self.document)
        return self.retire_class(self.document["name"], past=self.document)


class _RetireEntry(RedisOp):
    """Take an entry out of the registry by name; keys of a retired family stay (see redis_delete_family).

    ``past`` (not rendered) is the published document where the code that wrote the retirement knew
    it, for ``reverse()``; the ledger's undo step is read from the registry just before."""

    kind: ClassVar[str]
    declare_class: ClassVar[type[_DeclareEntry]]
    past: dict[str, Any] | None

    @property
    def name(self) -> str:
        return getattr(self, self.kind)

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> StoreOp:
        """Revisions written before retirements carried only the name pass the whole document: kept
        as ``past``, the reverse they always had."""
        entry = arguments[cls.kind]
        if isinstance(entry, dict):
            return cls(entry["name"], past=entry)
        return cls(entry)

    def describe(self) -> str:
        pattern = f" ({printable(self.past['pattern'])})" if self.past else ""
        kept = "; its keys are left as they are" if self.kind == "family" else ""
        return f"retire {_WHAT[self.kind]} {self.name}{pattern}{kept}"

    def drift(self) -> tuple[str, str]:
        return (f"{_WHAT[self.kind]} {self.name}", "published in the registry but no longer declared")

    def reverse(self) -> StoreOp:
        if self.past is None:
            raise IrreversibleOp(f"{self.describe()} cannot be reversed here: its declaration is known only "
                                 "to the revision chain before it")
        return self.declare_class(self.past)


@store_operation
@dataclass(frozen=True)
class DeclareKeyFamilyOp(_DeclareEntry):
    family: dict[str, Any]
    previous: dict[str, Any] | None = None
    op_name = "redis_declare_family"
    kind, state = "family", KeyFamily


@store_operation
@dataclass(frozen=True)
class RetireKeyFamilyOp(_RetireEntry):
    family: str
    past: dict[str, Any] | None = past_field()
    op_name = "redis_retire_family"
    kind = "family"


@store_operation
@dataclass(frozen=True)
class DeclareChannelOp(_DeclareEntry):
    channel: dict[str, Any]
    previous: dict[str, Any] | None = None
    op_name = "redis_declare_channel"
    kind, state = "channel", Channel


@store_operation
@dataclass(frozen=True)
class RetireChannelOp(_RetireEntry):
    channel: str
    past: dict[str, Any] | None = past_field()
    op_name = "redis_retire_channel"
    kind = "channel"


# each kind's declare and retire reverse into one another
DeclareKeyFamilyOp.retire_class, RetireKeyFamilyOp.declare_class = RetireKeyFamilyOp, DeclareKeyFamilyOp
DeclareChannelOp.retire_class, RetireChannelOp.declare_class = RetireChannelOp, DeclareChannelOp


class _PacedStep(RedisOp):
    """What a step that works through a family's keys shares: its pace (``batch`` keys per SCAN,
    at most ``rate`` keys a second); the command's own (``migrate --redis-batch/--redis-rate``) wins
    (:func:`.toimpl.pace`)."""

    batch: int
    rate: float | None


@store_operation
@dataclass(frozen=True)
class RenameKeyFamilyOp(_PacedStep):
    """Move every key from the old pattern to the new one, then publish the new family.

    Plain (``overlap`` false): the registry announces the old family until every key has
    moved, then the new one in its place. With ``overlap``: first the new family is
    published with the old pattern as its ``fallback`` (writers use the new pattern, readers
    that miss try the old one) beside the old family, the keys move, and both stay published
    until :class:`ContractKeyFamilyOp` retires the old name. ``registry['move:<new name>']``
    marks a move in progress, so that a rerun after a crash knows every key under the new
    pattern is the move's own."""

    old: dict[str, Any]
    new: dict[str, Any]
    on_conflict: str = "fail"
    overlap: bool = False
    batch: int = BATCH
    rate: float | None = None
    op_name = "redis_rename_family"

    def describe(self) -> str:
        phase = ", keeping the old pattern for reads until a contract step" if self.overlap else ""
        return (f"rename key family {self.old['name']} ({printable(self.old['pattern'])}) to {self.new['name']} "
                f"({printable(self.new['pattern'])}), moving its keys{phase}")

    def drift(self) -> tuple[str, str]:
        return (f"key family {self.new['name']}", f"keys still follow the old pattern {printable(self.old['pattern'])}")

    def reverse(self) -> StoreOp:
        return RenameKeyFamilyOp(self.new, self.old, self.on_conflict, batch=self.batch, rate=self.rate)


@store_operation
@dataclass(frozen=True)
class ContractKeyFamilyOp(_PacedStep):
    """End an overlap: a last sweep of keys still under the old pattern (the new copy wins), then the
    new family is published without its fallback and the old name is retired."""

    old: dict[str, Any]
    new: dict[str, Any]
    batch: int = BATCH
    rate: float | None = None
    op_name = "redis_contract_family"

    def describe(self) -> str:
        return (f"retire the old pattern {printable(self.old['pattern'])} of key family {self.new['name']} "
                f"({printable(self.new['pattern'])}), moving keys still written under it")

    def drift(self) -> tuple[str, str]:
        return (f"key family {self.new['name']}",
                f"still publishes the old pattern {printable(self.old['pattern'])} for reads (overlap not contracted)")

    def reverse(self) -> StoreOp:
        return RenameKeyFamilyOp(self.old, self.new, "keep-new", overlap=True, batch=self.batch, rate=self.rate)


@store_operation
@dataclass(frozen=True)
class BackfillTtlOp(_PacedStep):
    """Give a TTL to the family's keys that have none, or one above the family's maximum."""

    family: dict[str, Any]
    ttl: int
    batch: int = BATCH
    rate: float | None = None
    op_name = "redis_backfill_ttl"

    def describe(self) -> str:
        return (f"set a TTL of {format_duration(self.ttl)} on keys of {self.family['name']} without one "
                "or above its maximum")

    def drift(self) -> tuple[str, str]:
        return (f"key family {self.family['name']}", f"keys need a TTL of {format_duration(self.ttl)} backfilled")

    def reverse(self) -> StoreOp:
        return SkipReverseOp(self.describe())


@store_operation
@dataclass(frozen=True)
class DeleteKeyFamilyOp(RedisOp):
    """Delete every key of a retired family. Destructive: refused while it is still published."""

    family: dict[str, Any]
    op_name = "redis_delete_family"
    destructive = True

    def describe(self) -> str:
        return f"delete every key of family {self.family['name']} ({printable(self.family['pattern'])})"

    def reverse(self) -> StoreOp:
        return SkipReverseOp(self.describe())


@store_operation
@dataclass(frozen=True)
class SetConfigOp(RedisOp):
    """CONFIG SET on the server (every node of a cluster); ``previous`` makes it reversible."""

    name: str
    value: str
    previous: str | None = None
    op_name = "redis_set_config"

    def describe(self) -> str:
        return f"set server configuration {self.name} to {self.value!r}"

    def drift(self) -> tuple[str, str]:
        if self.previous is None:  # no value read (e.g. the revision chain never set it)
            return (f"server configuration {self.name}", f"is not set to {self.value!r}")
        return (f"server configuration {self.name}", f"is {self.previous!r}, expected {self.value!r}")

    def reverse(self) -> StoreOp:
        if self.previous is None:
            return SkipReverseOp(self.describe())
        return SetConfigOp(self.name, self.previous, self.value)


@store_operation
@dataclass(frozen=True)
class CreateGroupOp(RedisOp):
    """XGROUP CREATE ... MKSTREAM on a stream family's key; an existing group is left as is."""

    key: str
    group: str
    start: str = "$"
    op_name = "redis_create_group"

    def describe(self) -> str:
        return f"create consumer group {self.group} on stream {self.key}"

    def drift(self) -> tuple[str, str]:
        return (f"stream {self.key}", f"has no consumer group {self.group}")

    def reverse(self) -> StoreOp:
        return DropGroupOp(self.key, self.group)


@store_operation
@dataclass(frozen=True)
class DropGroupOp(RedisOp):
    """XGROUP DESTROY: its pending entries are forgotten. Destructive."""

    key: str
    group: str
    op_name = "redis_drop_group"
    destructive = True

    def describe(self) -> str:
        return f"drop consumer group {self.group} of stream {self.key}"

    def reverse(self) -> StoreOp:
        return CreateGroupOp(self.key, self.group)
