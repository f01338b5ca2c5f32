"""Pure diff: declared Redis state against what the server holds -> operations.

Families and channels are compared with the published registry, server
expectations with ``CONFIG GET`` on every master, consumer groups with the
streams that have a fixed key. A declared family whose ``renamed_from`` is the
pattern of a published family is a rename (its keys move); a family whose
TTL became required, or whose maximum TTL shrank, gets its TTL backfilled
when it declares a default.
"""

from __future__ import annotations

import re
from dataclasses import replace

from ..core.storeops import StoreOp
from .live import LiveRedis
from .ops import (
    BackfillTtlOp,
    ContractKeyFamilyOp,
    CreateGroupOp,
    DeclareChannelOp,
    DeclareKeyFamilyOp,
    RenameKeyFamilyOp,
    RetireChannelOp,
    RetireKeyFamilyOp,
    SetConfigOp,
)
from .state import KeyFamily, RedisState

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


def diff_redis(declared: RedisState, live: LiveRedis) -> list[StoreOp]:
    return [*diff_families(declared.families, live.registry.families),
            *diff_channels(declared, live.registry),
            *diff_groups(declared, live),
            *diff_config(declared.server, live.config)]


def diff_families(declared: dict[str, KeyFamily], published: dict[str, KeyFamily]) -> list[StoreOp]:
    ops: list[StoreOp] = []
    by_pattern = {f.pattern: f for f in published.values()}
    renamed = set()
    for family in declared.values():
        before = published.get(family.name)
        source = by_pattern.get(family.renamed_from) if family.renamed_from else None
        if source is not None and family.pattern not in by_pattern:
            ops.append(RenameKeyFamilyOp(source.to_json(), family.to_json(), overlap=family.overlap))
            renamed.add(source.name)
        elif before is not None and before.fallback:
            ops.extend(_overlap(family, before, by_pattern, renamed))
        elif before is None:
            ops.append(DeclareKeyFamilyOp(family.to_json()))
        elif before != family:
            ops.append(DeclareKeyFamilyOp(family.to_json(), before.to_json()))
            ops.extend(_backfill(before, family))
    ops.extend(RetireKeyFamilyOp(name, past=f.to_json()) for name, f in published.items()
               if name not in declared and name not in renamed)
    return ops


def _overlap(family: KeyFamily, before: KeyFamily, by_pattern: dict[str, KeyFamily], kept: set) -> list[StoreOp]:
    """A family published with a fallback (an overlap): kept while declared with ``overlap``,
    contracted once the declaration drops it. The old family is the contract's to retire."""
    old = by_pattern.get(before.fallback) or replace(before, pattern=before.fallback)
    kept.add(old.name)
    ops: list[StoreOp] = []
    if before != family:
        ops.append(DeclareKeyFamilyOp(family.with_fallback(before.fallback).to_json(), before.to_json()))
        ops.extend(_backfill(before, family))
    kept_open = family.fallback == before.fallback or (family.overlap and family.renamed_from == before.fallback)
    if not kept_open:  # (a family replayed from the chain carries the fallback itself)
        ops.append(ContractKeyFamilyOp(old.with_fallback(None).to_json(), family.to_json()))
    return ops


def _backfill(before: KeyFamily, after: KeyFamily) -> list[StoreOp]:
    rule, old = after.ttl, before.ttl
    if rule.policy != "required" or not rule.default:
        return []
    newly_required = old.policy != "required"
    max_shrank = rule.max is not None and (old.max is None or rule.max < old.max)
    return [BackfillTtlOp(after.to_json(), rule.default)] if newly_required or max_shrank else []


def diff_channels(declared: RedisState, published: RedisState) -> list[StoreOp]:
    ops: list[StoreOp] = []
    for channel in declared.channels.values():
        before = published.channels.get(channel.name)
        if before != channel:
            ops.append(DeclareChannelOp(channel.to_json(), before.to_json() if before else None))
    ops.extend(RetireChannelOp(name, past=c.to_json()) for name, c in published.channels.items()
               if name not in declared.channels)
    return ops


def diff_groups(declared: RedisState, live: LiveRedis) -> list[StoreOp]:
    ops: list[StoreOp] = []
    for family in declared.families.values():
        key = family.fixed_key.decode() if family.fixed_key is not None else None
        if key in live.groups:
            ops.extend(CreateGroupOp(key, group) for group in family.groups if group not in live.groups[key])
    return ops


def diff_config(expected: dict[str, str], live: dict[str, list[str]]) -> list[StoreOp]:
    ops: list[StoreOp] = []
    for name, value in sorted(expected.items()):
        values = live.get(name, [])
        wanted = normalize_config(name, value)
        wrong = [v for v in values if normalize_config(name, v) != wanted]
        if wrong or not values:
            ops.append(SetConfigOp(name, value, wrong[0] if wrong else None))
    return ops
