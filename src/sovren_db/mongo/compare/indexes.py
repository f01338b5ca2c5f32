"""Indexes of the collections on both sides: a changed index is dropped, then built again."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ...core.storeops import StoreOp
from ...plugin import add_kind_comparator
from ..ops import CreateIndexOp, DropIndexOp
from ..state import CollectionSpec, DatabaseState

if TYPE_CHECKING:
    from alembic.runtime.plugins import Plugin


def compare(declared: DatabaseState, live: DatabaseState) -> list[StoreOp]:
    ops: list[StoreOp] = []
    for name in sorted(set(declared.collections) & set(live.collections)):
        want, have = declared.collections[name], live.collections[name]
        if want.options.get("capped") and not have.options.get("capped"):
            # convertToCapped keeps only the _id index: every declared index is built again after it
            have = replace(have, indexes=())
        ops += compare_indexes(want, have)
    return ops


def compare_indexes(want: CollectionSpec, have: CollectionSpec) -> list[StoreOp]:
    wanted = {i.name: i for i in want.indexes}
    present = {i.name: i for i in have.indexes}
    drops = [DropIndexOp(want.name, index.to_json()) for name, index in sorted(present.items())
             if wanted.get(name) != index]
    creates = [CreateIndexOp(want.name, index.to_json()) for name, index in sorted(wanted.items())
               if present.get(name) != index]
    return drops + creates


def setup(plugin: "Plugin") -> None:
    add_kind_comparator(plugin, "mongo", "indexes", compare)
