"""Server settings: ``CONFIG GET`` on every master against the declared values, compared normalised."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ...core.storeops import StoreOp
from ...plugin import add_kind_comparator
from ..ops import SetConfigOp
from ..state import RedisState

if TYPE_CHECKING:
    from alembic.runtime.plugins import Plugin

    from ..live import LiveRedis


def compare(declared: RedisState, live: LiveRedis) -> list[StoreOp]:
    return diff_config(declared.server, live.config)


_MEMORY = re.compile(r"(\d+)(b|k|kb|m|mb|g|gb)?\Z")
_MEMORY_UNITS = {None: 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000 ** 2, "mb": 1024 ** 2,
                 "g": 1000 ** 3, "gb": 1024 ** 3}
_ALL_EVENTS = "g$lshzxetd"  # what 'A' stands for in notify-keyspace-events


def normalize_config(name: str, value: str) -> object:
    """A comparable form: flags as a set, memory sizes in bytes, words lower-cased."""
    value = str(value).strip().lower() if name != "notify-keyspace-events" else str(value).strip()
    if name == "notify-keyspace-events":
        return frozenset(value.replace("A", _ALL_EVENTS))
    match = _MEMORY.match(value)
    if match:
        return int(match[1]) * _MEMORY_UNITS[match[2]]
    return " ".join(value.split())


def diff_config(expected: dict[str, str], live: dict[str, list[str]]) -> list[StoreOp]:
    ops: list[StoreOp] = []
    for name, value in sorted(expected.items()):
        values = live.get(name, [])
        wanted = normalize_config(name, value)
        wrong = [v for v in values if normalize_config(name, v) != wanted]
        if wrong or not values:
            ops.append(SetConfigOp(name, value, wrong[0] if wrong else None))
    return ops


def setup(plugin: "Plugin") -> None:
    add_kind_comparator(plugin, "redis", "config", compare)
