"""x2xx: changes that break code written for the old shape."""

from __future__ import annotations

from typing import Iterator

from ...mongo.ops import ShardCollectionOp, UnshardCollectionOp
from ...mongo.state import as_pairs, show_pairs
from ...redis.ops import RenameKeyFamilyOp
from ..facts import RevisionFacts
from . import Hit, LintContext, rule


@rule("MG201", "shard-key-changed", "mongo", "a shard key is changed or removed")
def shard_key_changed(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    for op, line in facts.steps_of(ShardCollectionOp):
        if op.prior_key:
            yield Hit(line, f"shard key of {op.collection}",
                      f"changes from {show_pairs(as_pairs(op.prior_key))} to {show_pairs(as_pairs(op.key))}: "
                      "the collection is resharded (copied) and queries targeted by the old key go to every shard")
    for op, line in facts.steps_of(UnshardCollectionOp):
        yield Hit(line, f"shard key of {op.collection}",
                  f"removed ({show_pairs(as_pairs(op.key))}): every document moves to one shard")


@rule("RD201", "family-renamed", "redis", "a family's keys move to a new pattern")
def family_renamed(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    for op, line in facts.steps_of(RenameKeyFamilyOp):
        if op.overlap:  # the registry announces both patterns until a contract step: followers see no miss
            continue
        yield Hit(line, f"key family {op.old['name']}",
                  f"keys move from {op.old['pattern']!r} to {op.new['pattern']!r}: code still using the old "
                  "pattern finds nothing; deploy code that reads both patterns first, or move with overlap=True")
