"""How each Redis operation runs: one function per operation, dispatched by its type.

As Alembic's ``operations/toimpl.py`` runs its operations, so :func:`execute` runs the
data classes of :mod:`.ops` against a :class:`~.backend.RedisBackend` (its registry,
configuration and keys); :func:`undo` reads, before a step runs, the step that puts the
server back as it is now (what the ledger keeps).
"""

from __future__ import annotations

from functools import singledispatch
from typing import TYPE_CHECKING, Any

import redis

from ..core.errors import MigrationFailed, Refused
from ..core.storeops import StoreOp
from . import ops
from .keyops import backfill_ttl, delete_family
from .live import stream_groups
from .moves import Move, MoveCount, Pace, move_keys, settle_existing
from .ops import registry_entry
from .patterns import KeyPattern, overlap_witness, parse_pattern
from .state import KeyFamily

if TYPE_CHECKING:
    from .backend import RedisBackend

Declare = ops.DeclareKeyFamilyOp | ops.DeclareChannelOp
Retire = ops.RetireKeyFamilyOp | ops.RetireChannelOp


@singledispatch
def execute(op: StoreOp, target: "RedisBackend") -> None:
    raise TypeError(f"{type(op).__name__} is not a Redis operation")


@execute.register(ops.SkipReverseOp)
def skip(op: ops.SkipReverseOp, target: "RedisBackend") -> None:
    return None


@execute.register(ops.DeclareKeyFamilyOp)
@execute.register(ops.DeclareChannelOp)
def declare_entry(op: Declare, target: "RedisBackend") -> None:
    entry = registry_entry(op.kind, op.document["name"])
    target.publish(entry, op.state.from_json(op.document).to_json())


@execute.register(ops.RetireKeyFamilyOp)
@execute.register(ops.RetireChannelOp)
def retire_entry(op: Retire, target: "RedisBackend") -> None:
    target.unpublish(registry_entry(op.kind, op.name))


def pace(op: Any, target: "RedisBackend") -> Pace:
    """The step's pace, the command's own (``migrate --redis-batch/--redis-rate``) first."""
    return Pace(target.pace.get("batch", op.batch), target.pace.get("rate", op.rate))


@execute.register(ops.RenameKeyFamilyOp)
def rename_family(op: ops.RenameKeyFamilyOp, target: "RedisBackend") -> None:
    """Plain (``overlap`` false): the registry announces the old family until every key has moved, then
    the new one in its place. With ``overlap``: the new family is published first with the old pattern
    as its ``fallback`` beside the old family, and both stay until the contract step.
    ``registry['move:<new name>']`` marks a move in progress, so that a rerun after a crash knows
    every key under the new pattern is the move's own."""
    move = Move(*checked_patterns(op.old, op.new, op.describe()), new_wins=op.overlap)
    paced, marker = pace(op, target), registry_entry("move", op.new["name"])
    if marker not in target.registry():
        settle_existing(target, move, op.on_conflict, paced, MoveCount())
        target.update_registry({marker: {"from": op.old["pattern"], "to": op.new["pattern"]}, **_expanded(op)})
    move_keys(target, move, paced)
    if op.overlap:
        target.unpublish(marker)
        return
    retired = [registry_entry("family", op.old["name"])] if op.new["name"] != op.old["name"] else []
    target.update_registry({registry_entry("family", op.new["name"]): _published(op.new)}, [*retired, marker])


def _expanded(op: ops.RenameKeyFamilyOp) -> dict[str, dict]:
    """With overlap: the new family, published with the old pattern as the fallback for reads."""
    if not op.overlap:
        return {}
    family = KeyFamily.from_json(op.new).with_fallback(op.old["pattern"])
    kept = {registry_entry("family", op.old["name"]): _published(op.old)}
    return {**(kept if op.old["name"] != op.new["name"] else {}),
            registry_entry("family", op.new["name"]): family.to_json()}


@execute.register(ops.ContractKeyFamilyOp)
def contract_family(op: ops.ContractKeyFamilyOp, target: "RedisBackend") -> None:
    move = Move(*checked_patterns(op.old, op.new, op.describe()), new_wins=True)
    move_keys(target, move, pace(op, target))
    retired = [registry_entry("family", op.old["name"])] if op.new["name"] != op.old["name"] else []
    target.update_registry({registry_entry("family", op.new["name"]): _published(op.new)},
                           [*retired, registry_entry("move", op.new["name"])])


def checked_patterns(old: dict[str, Any], new: dict[str, Any], what: str) -> tuple[KeyPattern, KeyPattern]:
    """The two parsed patterns of a move; MigrationFailed when keys could not move between them."""
    old_pattern, new_pattern = parse_pattern(old["pattern"]), parse_pattern(new["pattern"])
    if set(old_pattern.placeholders) != set(new_pattern.placeholders):
        raise MigrationFailed(f"Cannot {what}: both patterns need the same placeholders.")
    witness = overlap_witness(old_pattern, new_pattern)
    if witness is not None:
        raise MigrationFailed(f"Cannot {what}: the key {witness!r} matches both patterns.")
    return old_pattern, new_pattern


def _published(document: dict[str, Any]) -> dict[str, Any]:
    return KeyFamily.from_json(document).with_fallback(None).to_json()


@execute.register(ops.BackfillTtlOp)
def backfill(op: ops.BackfillTtlOp, target: "RedisBackend") -> None:
    family = KeyFamily.from_json(op.family)
    backfill_ttl(target, family.parsed, int(op.ttl), family.ttl.max, pace(op, target))


@execute.register(ops.DeleteKeyFamilyOp)
def delete(op: ops.DeleteKeyFamilyOp, target: "RedisBackend") -> None:
    if registry_entry("family", op.family["name"]) in target.registry():
        raise Refused(f"Refused to {op.describe()}: the family is still published; "
                      "retire it first (redis_retire_family) in this or an earlier revision.")
    delete_family(target, KeyFamily.from_json(op.family).parsed)


@execute.register(ops.SetConfigOp)
def set_config(op: ops.SetConfigOp, target: "RedisBackend") -> None:
    target.config_set(op.name, op.value)


@execute.register(ops.CreateGroupOp)
def create_group(op: ops.CreateGroupOp, target: "RedisBackend") -> None:
    try:
        target.client.xgroup_create(op.key, op.group, id=op.start, mkstream=True)
    except redis.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


@execute.register(ops.DropGroupOp)
def drop_group(op: ops.DropGroupOp, target: "RedisBackend") -> None:
    if target.client.exists(op.key):
        target.client.xgroup_destroy(op.key, op.group)


@singledispatch
def undo(op: StoreOp, target: "RedisBackend") -> StoreOp | None:
    """The step the ledger keeps to undo ``op``: by default its declared reverse."""
    return op.undo(target)


@undo.register(ops.DeclareKeyFamilyOp)
@undo.register(ops.DeclareChannelOp)
def undo_declare(op: Declare, target: "RedisBackend") -> StoreOp:
    current = target.published(registry_entry(op.kind, op.document["name"]))
    if current is None:
        return op.retire_class(op.document["name"], past=op.document)
    return type(op)(current, op.document)


@undo.register(ops.RetireKeyFamilyOp)
@undo.register(ops.RetireChannelOp)
def undo_retire(op: Retire, target: "RedisBackend") -> StoreOp:
    current = target.published(registry_entry(op.kind, op.name))
    return ops.SkipReverseOp(op.describe()) if current is None else op.declare_class(current)


@undo.register(ops.SetConfigOp)
def undo_set_config(op: ops.SetConfigOp, target: "RedisBackend") -> StoreOp:
    values = target.config_values([op.name])[op.name]
    return ops.SetConfigOp(op.name, values[0], op.value) if values else ops.SkipReverseOp(op.describe())


@undo.register(ops.CreateGroupOp)
def undo_create_group(op: ops.CreateGroupOp, target: "RedisBackend") -> StoreOp:
    if op.group in (stream_groups(target.client, op.key.encode()) or set()):
        return ops.SkipReverseOp(op.describe())
    return ops.DropGroupOp(op.key, op.group)


@undo.register(ops.DropGroupOp)
def undo_drop_group(op: ops.DropGroupOp, target: "RedisBackend") -> StoreOp:
    if op.group in (stream_groups(target.client, op.key.encode()) or set()):
        return ops.CreateGroupOp(op.key, op.group)
    return ops.SkipReverseOp(op.describe())
