"""Key families: declared, updated (with a TTL backfill where the rule tightened), renamed
(their keys move), contracted after an overlap, retired. A declared family whose ``renamed_from``
is the pattern of a published family is a rename; a family whose TTL became required, or whose
maximum TTL shrank, gets its TTL backfilled when it declares a default."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ...core.storeops import StoreOp
from ...plugin import add_kind_comparator
from ..ops import BackfillTtlOp, ContractKeyFamilyOp, DeclareKeyFamilyOp, RenameKeyFamilyOp, RetireKeyFamilyOp
from ..state import KeyFamily, RedisState

if TYPE_CHECKING:
    from alembic.runtime.plugins import Plugin

    from ..live import LiveRedis


def compare(declared: RedisState, live: LiveRedis) -> list[StoreOp]:
    return diff_families(declared.families, live.registry.families)


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


def setup(plugin: "Plugin") -> None:
    add_kind_comparator(plugin, "redis", "families", compare)
