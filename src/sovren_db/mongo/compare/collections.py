"""Collections: created and dropped whole; options and validation of the ones on both sides."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.storeops import StoreOp
from ...plugin import add_kind_comparator
from ..extjson import same
from ..ops import CreateCollectionOp, DropCollectionOp, ModifyCollectionOp, SetValidatorOp
from ..state import CollectionSpec, DatabaseState

if TYPE_CHECKING:
    from alembic.runtime.plugins import Plugin


def compare(declared: DatabaseState, live: DatabaseState) -> list[StoreOp]:
    ops: list[StoreOp] = []
    for name in sorted(set(declared.collections) | set(live.collections)):
        want, have = declared.collections.get(name), live.collections.get(name)
        if have is None:
            ops.append(CreateCollectionOp.of(want))
        elif want is None:
            ops.append(DropCollectionOp.of(have))
        else:
            ops += compare_options(want, have) + compare_validation(want, have)
    return ops


def compare_options(want: CollectionSpec, have: CollectionSpec) -> list[StoreOp]:
    if same(want.options, have.options):
        return []
    return [ModifyCollectionOp(want.name, want.options, prior=have.options)]


def compare_validation(want: CollectionSpec, have: CollectionSpec) -> list[StoreOp]:
    if same(want.validation(), have.validation()):
        return []
    return [SetValidatorOp(want.name, **want.validation(), prior=have.validation())]


def setup(plugin: "Plugin") -> None:
    add_kind_comparator(plugin, "mongo", "collections", compare)
