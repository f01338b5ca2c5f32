"""Shard keys and zones of the collections on both sides, compared only on a mongos."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.storeops import StoreOp
from ...plugin import add_kind_comparator
from ..ops import SetZonesOp, ShardCollectionOp, UnshardCollectionOp
from ..state import CollectionSpec, DatabaseState, pairs_json

if TYPE_CHECKING:
    from alembic.runtime.plugins import Plugin


def compare(declared: DatabaseState, live: DatabaseState) -> list[StoreOp]:
    if not live.sharded:  # the server cannot have them: unsharded_note says so
        return []
    names = sorted(set(declared.collections) & set(live.collections))
    return [op for name in names for op in compare_sharding(declared.collections[name], live.collections[name])]


def compare_sharding(want: CollectionSpec, have: CollectionSpec) -> list[StoreOp]:
    ops: list[StoreOp] = []
    if want.shard_key != have.shard_key:
        if want.shard_key is None and have.shard_key is not None:
            ops.append(UnshardCollectionOp(want.name, pairs_json(have.shard_key.key), have.shard_key.unique))
        elif want.shard_key is not None:
            prior = pairs_json(have.shard_key.key) if have.shard_key else None
            ops.append(ShardCollectionOp(want.name, pairs_json(want.shard_key.key), want.shard_key.unique, prior))
    if want.zones != have.zones:
        ops.append(SetZonesOp(want.name, [z.to_json() for z in want.zones], [z.to_json() for z in have.zones]))
    return ops


def setup(plugin: "Plugin") -> None:
    add_kind_comparator(plugin, "mongo", "sharding", compare)
