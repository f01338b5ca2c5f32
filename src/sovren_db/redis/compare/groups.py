"""Consumer groups of the declared streams that have a fixed key."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.storeops import StoreOp
from ...plugin import add_kind_comparator
from ..ops import CreateGroupOp
from ..state import RedisState

if TYPE_CHECKING:
    from alembic.runtime.plugins import Plugin

    from ..live import LiveRedis


def compare(declared: RedisState, live: LiveRedis) -> list[StoreOp]:
    ops: list[StoreOp] = []
    for family in declared.families.values():
        key = family.fixed_key.decode() if family.fixed_key is not None else None
        if key in live.groups:
            ops.extend(CreateGroupOp(key, group) for group in family.groups if group not in live.groups[key])
    return ops


def setup(plugin: "Plugin") -> None:
    add_kind_comparator(plugin, "redis", "groups", compare)
