"""Pub/sub channels: declared, updated, retired, against the published registry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...core.storeops import StoreOp
from ...plugin import add_kind_comparator
from ..ops import DeclareChannelOp, RetireChannelOp
from ..state import RedisState

if TYPE_CHECKING:
    from alembic.runtime.plugins import Plugin

    from ..live import LiveRedis


def compare(declared: RedisState, live: LiveRedis) -> list[StoreOp]:
    return diff_channels(declared, live.registry)


def diff_channels(declared: RedisState, published: RedisState) -> list[StoreOp]:
    ops: list[StoreOp] = []
    for channel in declared.channels.values():
        before = published.channels.get(channel.name)
        if before != channel:
            ops.append(DeclareChannelOp(channel.to_json(), before.to_json() if before else None))
    ops.extend(RetireChannelOp(name, past=c.to_json()) for name, c in published.channels.items()
               if name not in declared.channels)
    return ops


def setup(plugin: "Plugin") -> None:
    add_kind_comparator(plugin, "redis", "channels", compare)
