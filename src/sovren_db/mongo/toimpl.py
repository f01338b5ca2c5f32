"""How each Mongo operation runs: one function per operation, dispatched by its type.

As Alembic's ``operations/toimpl.py`` runs its operations, so :func:`execute` runs the
data classes of :mod:`.ops` against a pymongo ``Database`` (the backend passes its own);
the commands are built and sent by the convergent functions of :mod:`.execute`.
:func:`undo` reads, before a step runs, the step that puts the server back as it is.
"""

from __future__ import annotations

from functools import singledispatch
from typing import Any

from ..core.storeops import StoreOp
from . import execute as server
from . import ops
from .live import read_collection
from .state import ShardKey, as_pairs


@singledispatch
def execute(op: StoreOp, db: Any) -> None:
    raise TypeError(f"{type(op).__name__} is not a Mongo operation")


@execute.register(ops.CreateCollectionOp)
def create_collection(op: ops.CreateCollectionOp, db: Any) -> None:
    server.create_collection(db, op.spec())


@execute.register(ops.DropCollectionOp)
def drop_collection(op: ops.DropCollectionOp, db: Any) -> None:
    server.drop_collection(db, op.collection)


@execute.register(ops.SetValidatorOp)
def set_validator(op: ops.SetValidatorOp, db: Any) -> None:
    server.set_validation(db, op.collection, op.validator, op.validation_level, op.validation_action,
                          allow_violations=op.allow_violations)


@execute.register(ops.CreateIndexOp)
def create_index(op: ops.CreateIndexOp, db: Any) -> None:
    server.create_indexes(db, op.collection, [op.spec()])


@execute.register(ops.DropIndexOp)
def drop_index(op: ops.DropIndexOp, db: Any) -> None:
    server.drop_index(db, op.collection, op.index["name"])


@execute.register(ops.ShardCollectionOp)
def shard_collection(op: ops.ShardCollectionOp, db: Any) -> None:
    server.shard_collection(db, op.collection, ShardKey(as_pairs(op.key), op.unique))


@execute.register(ops.UnshardCollectionOp)
def unshard_collection(op: ops.UnshardCollectionOp, db: Any) -> None:
    server.unshard_collection(db, op.collection)


@execute.register(ops.SetZonesOp)
def set_zones(op: ops.SetZonesOp, db: Any) -> None:
    server.set_zones(db, op.collection, op.ranges(op.zones))


@execute.register(ops.ModifyCollectionOp)
def modify_collection(op: ops.ModifyCollectionOp, db: Any) -> None:
    server.modify_collection(db, op.collection, op.options, op.prior)


@singledispatch
def undo(op: StoreOp, db: Any) -> StoreOp | None:
    """The step the ledger keeps to undo ``op``: by default its declared reverse."""
    return op.undo(db)


@undo.register(ops.DropCollectionOp)
def undo_drop_collection(op: ops.DropCollectionOp, db: Any) -> ops.CreateCollectionOp | None:
    """The collection as the server holds it just before the drop (None: there is none)."""
    spec = read_collection(db, op.collection)
    return None if spec is None else ops.CreateCollectionOp.of(spec)
