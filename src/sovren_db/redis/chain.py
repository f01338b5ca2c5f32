"""The revision chain as a reader: the Redis state its steps describe, without a server.

As for Mongo (``mongo/chain.py``): where no Redis is configured, autogenerate
and check compare the declarations with what the chain's ``redis_*`` steps
leave behind, replayed on plain data instead of read from a server: the
registry's families and channels and the server configuration they set (a
:class:`RedisState`, the declarations' own shape) and the consumer groups of
each stream key. Steps that only work on keys' values and TTLs change none of
it, except that deleting or moving a stream takes its groups along.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Callable

from ..core.storeops import StoreOp
from . import ops
from .compare.channels import diff_channels
from .compare.config import diff_config
from .compare.families import diff_families
from .live import LiveRedis, grouped_streams, registry_state, stream_groups
from .state import Channel, KeyFamily, RedisState

if TYPE_CHECKING:
    from .backend import RedisBackend


def _declare_family(op: ops.DeclareKeyFamilyOp, live: LiveRedis) -> None:
    live.registry.families[op.family["name"]] = KeyFamily.from_json(op.family)


def _retire_family(op: ops.RetireKeyFamilyOp, live: LiveRedis) -> None:
    live.registry.families.pop(op.family, None)


def _declare_channel(op: ops.DeclareChannelOp, live: LiveRedis) -> None:
    live.registry.channels[op.channel["name"]] = Channel.from_json(op.channel)


def _retire_channel(op: ops.RetireChannelOp, live: LiveRedis) -> None:
    live.registry.channels.pop(op.channel, None)


def _streams_of(family: dict, live: LiveRedis) -> dict[str, dict[str, str]]:
    """The stream keys with groups that belong to ``family``, with their placeholder values."""
    regex = KeyFamily.from_json(family).parsed.regex()
    matches = {key: regex.fullmatch(key.encode()) for key in live.groups}
    return {key: {k: v.decode() for k, v in m.groupdict().items()} for key, m in matches.items() if m}


def _rename_family(op: ops.RenameKeyFamilyOp, live: LiveRedis) -> None:
    new = KeyFamily.from_json(op.new)
    for key, values in _streams_of(op.old, live).items():  # a moved stream keeps its groups
        groups, destination = live.groups.pop(key), new.parsed.render(values).decode()
        if destination not in live.groups or op.on_conflict != "keep-new":
            live.groups[destination] = groups
    if op.overlap:  # the old family stays published until the contract step
        live.registry.families[new.name] = new.with_fallback(op.old["pattern"])
        return
    if op.new["name"] != op.old["name"]:
        live.registry.families.pop(op.old["name"], None)
    live.registry.families[new.name] = new


def _contract_family(op: ops.ContractKeyFamilyOp, live: LiveRedis) -> None:
    if op.new["name"] != op.old["name"]:
        live.registry.families.pop(op.old["name"], None)
    live.registry.families[op.new["name"]] = KeyFamily.from_json(op.new).with_fallback(None)


def _delete_family(op: ops.DeleteKeyFamilyOp, live: LiveRedis) -> None:
    for key in _streams_of(op.family, live):
        del live.groups[key]


def _set_config(op: ops.SetConfigOp, live: LiveRedis) -> None:
    live.registry.server[op.name] = op.value
    live.config[op.name] = [op.value]


def _create_group(op: ops.CreateGroupOp, live: LiveRedis) -> None:
    live.groups.setdefault(op.key, set()).add(op.group)


def _drop_group(op: ops.DropGroupOp, live: LiveRedis) -> None:
    live.groups.get(op.key, set()).discard(op.group)


def _keys_only(op: StoreOp, live: LiveRedis) -> None:
    """TTLs of keys, and a step that does nothing, are not part of the compared state."""


APPLY: dict[type, Callable] = {
    ops.DeclareKeyFamilyOp: _declare_family,
    ops.RetireKeyFamilyOp: _retire_family,
    ops.DeclareChannelOp: _declare_channel,
    ops.RetireChannelOp: _retire_channel,
    ops.RenameKeyFamilyOp: _rename_family,
    ops.ContractKeyFamilyOp: _contract_family,
    ops.DeleteKeyFamilyOp: _delete_family,
    ops.BackfillTtlOp: _keys_only,
    ops.SetConfigOp: _set_config,
    ops.CreateGroupOp: _create_group,
    ops.DropGroupOp: _drop_group,
    ops.SkipReverseOp: _keys_only,
}


def replay(steps: list[StoreOp]) -> LiveRedis:
    """What the ``redis_*`` steps describe, applied in order from an empty Redis.

    ``registry`` holds the published families and channels and, as ``server``,
    the configuration the steps set; ``config`` and ``groups`` are shaped as
    the server would report them.
    """
    live = LiveRedis(RedisState())
    for op in steps:
        if op.store == "redis":
            APPLY[type(op)](op, live)
    return live


def with_past(steps: list[StoreOp]) -> list[StoreOp]:
    """``steps`` with each retirement given the entry it retires as the steps before it published it,
    so that its ``reverse()`` declares it again (Django's ``state_forwards``)."""
    live, bound = LiveRedis(RedisState()), []
    for op in steps:
        if isinstance(op, (ops.RetireKeyFamilyOp, ops.RetireChannelOp)):
            published = live.registry.families if op.kind == "family" else live.registry.channels
            op = replace(op, past=published[op.name].to_json()) if op.name in published else op
        if op.store == "redis":
            APPLY[type(op)](op, live)
        bound.append(op)
    return bound


def read_chain(steps: list[StoreOp], declared: RedisState) -> LiveRedis:
    """The replayed chain as :func:`.live.read_live` reads a server: a declared stream the
    chain gave no group to has none."""
    live = replay(steps)
    groups = {key.decode(): live.groups.get(key.decode(), set()) for key in grouped_streams(declared)}
    return LiveRedis(live.registry, live.config, groups)


def chain_drift(backend: "RedisBackend", steps: list[StoreOp]) -> list[StoreOp]:
    """The operations that give the server back what ``steps`` set and it lost on its own
    (CONFIG SET is not persisted; a stream deleted takes its groups along; a registry entry
    deleted by hand): one read per kind, the registry, the configuration set, the groups."""
    want = replay(steps)
    live = LiveRedis(registry_state(backend.registry()), backend.config_values(sorted(want.registry.server)),
                     {key: stream_groups(backend.client, key.encode()) or set() for key in want.groups})
    return [*diff_families(want.registry.families, live.registry.families),
            *diff_channels(want.registry, live.registry),
            *diff_config(want.registry.server, live.config),
            *(ops.CreateGroupOp(key, group) for key, groups in sorted(want.groups.items())
              for group in sorted(groups - live.groups[key]))]
