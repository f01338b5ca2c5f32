"""What the server holds, read in a few round trips: the published registry,
the configuration parameters that are declared, and the consumer groups of
streams with a fixed key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from .state import as_text
from .state import Channel, KeyFamily, RedisState

if TYPE_CHECKING:
    from .backend import RedisBackend


@dataclass(frozen=True)
class LiveRedis:
    registry: RedisState
    config: dict[str, list[str]] = field(default_factory=dict)        # parameter -> value on each master
    groups: dict[str, set[str]] = field(default_factory=dict)         # fixed stream key -> its groups


def registry_state(documents: dict[str, dict]) -> RedisState:
    """The registry's entries as state; an entry that does not parse counts as absent."""
    state = RedisState()
    for entry, document in documents.items():
        kind, _, name = entry.partition(":")
        try:
            if kind == "family":
                state.families[name] = KeyFamily.from_json(document)
            elif kind == "channel":
                state.channels[name] = Channel.from_json(document)
        except (TypeError, ValueError, KeyError):
            continue
    return state


def stream_groups(client: redis.Redis, key: bytes) -> set[str] | None:
    """The consumer groups of stream ``key``; None when there is no such stream."""
    try:
        groups = client.xinfo_groups(key)
    except redis.ResponseError:
        return None
    return {as_text(g["name"]) for g in groups}


def grouped_streams(declared: RedisState) -> list[bytes]:
    """The keys of declared streams with a fixed key that name consumer groups: those compared."""
    return [family.fixed_key for family in declared.families.values()
            if family.type == "stream" and family.groups and family.fixed_key is not None]


def read_live(backend: "RedisBackend", declared: RedisState) -> LiveRedis:
    groups = {key.decode(): stream_groups(backend.client, key) or set() for key in grouped_streams(declared)}
    return LiveRedis(
        registry=registry_state(backend.registry()),
        config=backend.config_values(sorted(declared.server)),
        groups=groups,
    )
