"""x1xx: changes that lose data."""

from __future__ import annotations

from typing import Iterator

from ...mongo.ops import CreateCollectionOp, CreateIndexOp, DropCollectionOp, DropIndexOp, ModifyCollectionOp
from ...redis.ops import BackfillTtlOp, DeclareKeyFamilyOp, DeleteKeyFamilyOp, RenameKeyFamilyOp
from ...redis.state import TtlRule
from ..facts import RevisionFacts
from . import Hit, LintContext, rule
from .common import shown_seconds


@rule("MG101", "drop-collection", "mongo", "a collection is dropped with its documents")
def drop_collection(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    for op, line in facts.steps_of(DropCollectionOp):
        yield Hit(line, f"collection {op.collection}",
                  "dropped with every document in it; stop every reader and writer first and keep a backup")


@rule("MG102", "drop-index", "mongo", "an index is dropped (queries scan; a unique index stops enforcing)")
def drop_index(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    for op, line in facts.steps_of(DropIndexOp):
        unique = " and stops enforcing uniqueness" if op.index.get("unique") else ""
        yield Hit(line, f"index {op.collection}.{op.index['name']}",
                  f"dropped: queries that use it scan the collection until an index serves them again{unique}; "
                  "hide it first (hidden = true) to see what slows down")


def _ttl_before(facts: RevisionFacts, op: CreateIndexOp) -> tuple[bool, int | None]:
    """(replaced, TTL) of the index this one replaces in the same revision (same name or key)."""
    for dropped, _ in facts.steps_of(DropIndexOp):
        if dropped.collection == op.collection and (
                dropped.index["name"] == op.index["name"] or dropped.index["key"] == op.index["key"]):
            return True, dropped.index.get("expireAfterSeconds")
    return False, None


def _created_here(facts: RevisionFacts, collection: str) -> bool:
    return any(op.collection == collection for op, _ in facts.steps_of(CreateCollectionOp))


@rule("MG103", "ttl-shortened", "mongo", "a TTL index or a time series TTL expires documents sooner (or at all)")
def mongo_ttl_shortened(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    for op, line in facts.steps_of(CreateIndexOp):
        ttl = op.index.get("expireAfterSeconds")
        if ttl is None or _created_here(facts, op.collection):
            continue
        replaced, before = _ttl_before(facts, op)
        if before is None or ttl < before:
            what = "index" if replaced else "new TTL index"
            yield Hit(line, f"index {op.collection}.{op.index['name']}",
                      f"{what} expires documents after {shown_seconds(ttl)} (before: {shown_seconds(before)}); "
                      "documents older than that are deleted at the next TTL pass")
    for op, line in facts.steps_of(ModifyCollectionOp):
        ttl, before = op.options.get("expireAfterSeconds"), op.prior.get("expireAfterSeconds")
        if ttl is not None and (before is None or ttl < before):
            yield Hit(line, f"collection {op.collection}",
                      f"time series documents expire after {shown_seconds(ttl)} (before: {shown_seconds(before)})")


@rule("RD101", "delete-family", "redis", "every key of a family is deleted")
def delete_family(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    for op, line in facts.steps_of(DeleteKeyFamilyOp):
        yield Hit(line, f"key family {op.family['name']}",
                  f"every key matching {op.family['pattern']!r} is deleted; make sure nothing reads them any more")


def ttl_shortened(before: TtlRule, after: TtlRule) -> bool:
    if after.policy != "required":
        return False
    if before.policy != "required":
        return True
    return after.max is not None and (before.max is None or after.max < before.max)


def _family_pairs(facts: RevisionFacts) -> Iterator[tuple[dict, dict, int | None]]:
    for op, line in facts.steps_of(DeclareKeyFamilyOp):
        if op.previous:
            yield op.previous, op.family, line
    for op, line in facts.steps_of(RenameKeyFamilyOp):
        yield op.old, op.new, line


@rule("RD102", "ttl-shortened", "redis", "a family's keys expire sooner (or at all)")
def redis_ttl_shortened(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    reported = set()
    for before, after, line in _family_pairs(facts):
        old, new = TtlRule.from_json(before.get("ttl") or {}), TtlRule.from_json(after.get("ttl") or {})
        if ttl_shortened(old, new):
            reported.add(after["name"])
            yield Hit(line, f"key family {after['name']}",
                      f"TTL goes from {old.describe()} to {new.describe()}: keys expire sooner, "
                      "existing ones are cut down by the TTL backfill")
    for op, line in facts.steps_of(BackfillTtlOp):
        if op.family["name"] not in reported:
            yield Hit(line, f"key family {op.family['name']}",
                      f"keys without a TTL get one of {shown_seconds(op.ttl)} and expire")
