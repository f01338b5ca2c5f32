"""The pure diff: declared state on one side, live state on the other, operations out.

Drift is this same diff: ``check`` reports each operation's ``drift()``.
For an existing collection the operations come in the order they must run:
options, validation, dropped indexes (a renamed index must go before its
replacement is built), new indexes, shard key, zones.
"""

from __future__ import annotations

from dataclasses import replace

from ..core.storeops import StoreOp
from .extjson import same
from .ops import (
    CreateCollectionOp,
    CreateIndexOp,
    DropCollectionOp,
    DropIndexOp,
    ModifyCollectionOp,
    SetValidatorOp,
    SetZonesOp,
    ShardCollectionOp,
    UnshardCollectionOp,
)
from .state import CollectionSpec, DatabaseState, pairs_json


def diff_states(declared: DatabaseState, live: DatabaseState) -> list[StoreOp]:
    """Operations that turn ``live`` into ``declared``. Shard keys and zones of existing
    collections are compared only when ``live.sharded`` (a mongos)."""
    ops: list[StoreOp] = []
    for name in sorted(set(declared.collections) | set(live.collections)):
        want, have = declared.collections.get(name), live.collections.get(name)
        if have is None and want is not None:
            ops.append(CreateCollectionOp.of(want))
        elif want is None and have is not None:
            ops.append(DropCollectionOp.of(have))
        elif want is not None and have is not None:
            ops.extend(diff_collection(want, have, sharded=live.sharded))
    return ops


def diff_collection(want: CollectionSpec, have: CollectionSpec, *, sharded: bool) -> list[StoreOp]:
    if want.options.get("capped") and not have.options.get("capped"):
        # convertToCapped keeps only the _id index: every declared index is built again after it
        have = replace(have, indexes=())
    ops = diff_options(want, have) + diff_validation(want, have) + diff_indexes(want, have)
    return ops + (diff_sharding(want, have) if sharded else [])


def diff_options(want: CollectionSpec, have: CollectionSpec) -> list[StoreOp]:
    if same(want.options, have.options):
        return []
    return [ModifyCollectionOp(want.name, want.options, prior=have.options)]


def diff_validation(want: CollectionSpec, have: CollectionSpec) -> list[StoreOp]:
    if same(want.validation(), have.validation()):
        return []
    return [SetValidatorOp(want.name, **want.validation(), prior=have.validation())]


def diff_indexes(want: CollectionSpec, have: CollectionSpec) -> list[StoreOp]:
    wanted = {i.name: i for i in want.indexes}
    present = {i.name: i for i in have.indexes}
    drops = [
        DropIndexOp(want.name, index.to_json())
        for name, index in sorted(present.items())
        if wanted.get(name) != index
    ]
    creates = [
        CreateIndexOp(want.name, index.to_json())
        for name, index in sorted(wanted.items())
        if present.get(name) != index
    ]
    return drops + creates


def diff_sharding(want: CollectionSpec, have: CollectionSpec) -> list[StoreOp]:
    ops: list[StoreOp] = []
    if want.shard_key != have.shard_key:
        if want.shard_key is None and have.shard_key is not None:
            ops.append(UnshardCollectionOp(want.name, pairs_json(have.shard_key.key), have.shard_key.unique))
        elif want.shard_key is not None:
            prior = pairs_json(have.shard_key.key) if have.shard_key else None
            ops.append(
                ShardCollectionOp(want.name, pairs_json(want.shard_key.key), want.shard_key.unique, prior)
            )
    if want.zones != have.zones:
        ops.append(
            SetZonesOp(want.name, [z.to_json() for z in want.zones], [z.to_json() for z in have.zones])
        )
    return ops


def unsharded_note(declared: DatabaseState, live: DatabaseState) -> str | None:
    """Say so when shard keys or zones are declared but the server cannot have them."""
    if live.sharded:
        return None
    names = [n for n, c in sorted(declared.collections.items()) if c.shard_key or c.zones]
    if not names:
        return None
    return (
        f"mongo: the server is not a mongos, so the shard keys and zones of {', '.join(names)} "
        "are neither compared nor applied there."
    )
