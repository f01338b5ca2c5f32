"""The revision chain as a reader: the Mongo state its steps describe, without a server.

Atlas-style, the current state can come from the live server or from the
migration directory replayed. Where no MongoDB is configured, autogenerate
and check compare the declarations with the state the chain's ``mongo_*``
steps build (pure: each operation applied to plain data), so a changed
declaration still gets its revision written and an unwritten one is found.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from ..core.storeops import StoreOp
from . import ops
from .state import CollectionSpec, DatabaseState, IndexSpec, ShardKey, ZoneRange, as_pairs, sorted_zones

Collections = dict[str, CollectionSpec]


def _create(op: ops.CreateCollectionOp, state: Collections) -> None:
    state[op.collection] = op.spec()


def _drop(op: ops.DropCollectionOp, state: Collections) -> None:
    state.pop(op.collection, None)


def _change(state: Collections, name: str, **changes: object) -> None:
    spec = state.get(name) or CollectionSpec(name)
    state[name] = replace(spec, **changes)


def _set_validator(op: ops.SetValidatorOp, state: Collections) -> None:
    _change(state, op.collection, validator=op.validator, validation_level=op.validation_level,
            validation_action=op.validation_action)


def _indexes(state: Collections, name: str) -> list[IndexSpec]:
    return list(state[name].indexes) if name in state else []


def _create_index(op: ops.CreateIndexOp, state: Collections) -> None:
    index = op.spec()
    kept = [i for i in _indexes(state, op.collection) if i.name != index.name]
    _change(state, op.collection, indexes=tuple(sorted([*kept, index], key=lambda i: i.name)))


def _drop_index(op: ops.DropIndexOp, state: Collections) -> None:
    kept = [i for i in _indexes(state, op.collection) if i.name != op.index["name"]]
    _change(state, op.collection, indexes=tuple(kept))


def _shard(op: ops.ShardCollectionOp, state: Collections) -> None:
    _change(state, op.collection, shard_key=ShardKey(as_pairs(op.key), op.unique))


def _unshard(op: ops.UnshardCollectionOp, state: Collections) -> None:
    _change(state, op.collection, shard_key=None)


def _set_zones(op: ops.SetZonesOp, state: Collections) -> None:
    _change(state, op.collection, zones=sorted_zones(ZoneRange.from_json(z) for z in op.zones))


def _modify(op: ops.ModifyCollectionOp, state: Collections) -> None:
    _change(state, op.collection, options=dict(op.options))


APPLY: dict[type, Callable] = {
    ops.CreateCollectionOp: _create,
    ops.DropCollectionOp: _drop,
    ops.SetValidatorOp: _set_validator,
    ops.CreateIndexOp: _create_index,
    ops.DropIndexOp: _drop_index,
    ops.ShardCollectionOp: _shard,
    ops.UnshardCollectionOp: _unshard,
    ops.SetZonesOp: _set_zones,
    ops.ModifyCollectionOp: _modify,
}


def replay(steps: list[StoreOp]) -> DatabaseState:
    """The database the ``mongo_*`` steps describe, applied in order from an empty one."""
    state: Collections = {}
    for op in steps:
        if op.store == "mongo":
            APPLY[type(op)](op, state)
    return DatabaseState(state, sharded=True)


def with_past(steps: list[StoreOp]) -> list[StoreOp]:
    """``steps`` with each drop given the collection it drops as the steps before it left it, so
    that its ``reverse()`` recreates it (Django's ``state_forwards``): a drop carries its name only."""
    state: Collections = {}
    bound: list[StoreOp] = []
    for op in steps:
        if isinstance(op, ops.DropCollectionOp) and op.collection in state:
            op = replace(op, past=state[op.collection].to_json())
        if op.store == "mongo":
            APPLY[type(op)](op, state)
        bound.append(op)
    return bound
