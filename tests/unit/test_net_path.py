"""The net path a store takes back to Postgres, as a property over random moves (pure, Mongo steps).

A Mongo store is the state its steps describe (``mongo.chain.replay``, the reader
``check`` uses without a server); no server is claimed here. Whatever Postgres did
while the store was away, the store's state after the net path equals the state of
a store migrated straight there, and a revision left half-way is undone by the
undo steps its ledger keeps.
"""

from __future__ import annotations

import random

import pytest

from sovren_db.mongo.chain import replay, with_past
from sovren_db.mongo.ops import (
    CreateCollectionOp,
    CreateIndexOp,
    DropCollectionOp,
    ModifyCollectionOp,
    SetValidatorOp,
)
from sovren_db.resync import net_path, unaccounted

VALIDATOR = {"$jsonSchema": {"bsonType": "object", "required": ["userId"]}}
CHAIN = ["r1", "r2", "r3", "r4", "r5"]
UP = {
    "r1": [CreateCollectionOp("personas"), CreateCollectionOp("drafts")],
    "r2": [CreateIndexOp("personas", {"name": "userId_1", "key": [["userId", 1]]}),
           SetValidatorOp("drafts", VALIDATOR, prior={})],
    "r3": [DropCollectionOp("drafts")],
    "r4": [CreateCollectionOp("communications", indexes=[{"name": "at_1", "key": [["at", 1]]}])],
    "r5": [ModifyCollectionOp("communications", {"expireAfterSeconds": 60}, prior={}),
           SetValidatorOp("personas", VALIDATOR, prior={})],
}
_BOUND = iter(with_past([op for revision in CHAIN for op in UP[revision]]))
# each step's undo as the store reads it before the step runs: the drop's, from the chain before it
UNDO = {revision: [next(_BOUND).reverse() for _ in steps] for revision, steps in UP.items()}
DOWN = {revision: list(reversed(undo)) for revision, undo in UNDO.items()}


def lineage(position: str | None) -> list[str]:
    return [] if position is None else list(reversed(CHAIN[:CHAIN.index(position) + 1]))


def straight(position: str | None):
    return replay([op for r in reversed(lineage(position)) for op in UP[r]])


def walk(rng: random.Random, start: str | None, count: int) -> list[str | None]:
    """Postgres's positions after each of ``count`` random moves (migrate, downgrade -1/base, migrate REV)."""
    positions, at = [], start
    for _ in range(count):
        move = rng.choice(["head", "-1", "base", "rev"])
        index = -1 if at is None else CHAIN.index(at)
        if move == "head":
            at = CHAIN[-1]
        elif move == "-1":
            at = None if index <= 0 else CHAIN[index - 1]
        elif move == "base":
            at = None
        else:
            at = CHAIN[max(index, rng.randrange(len(CHAIN)))]   # upgrade never goes down
        positions.append(at)
    return positions


def collapsed_log(positions: list[str | None], start: str | None) -> list[tuple[str, str]]:
    """The deferred table as ``defer_steps`` keeps it: a revision undone while waiting cancels out."""
    log: list[tuple[str, str]] = []
    at = start
    for target in positions:
        for revision, direction, _ in net_path(lineage(at), lineage(target)):
            other = "down" if direction == "up" else "up"
            if (revision, other) in log:
                log.remove((revision, other))
            else:
                log.append((revision, direction))
        at = target
    return log


@pytest.mark.parametrize("seed", range(200))
def test_the_net_path_from_the_store_position_ends_where_a_straight_migrate_does(seed):
    rng = random.Random(seed)
    start = rng.choice([None, *CHAIN])
    positions = walk(rng, start, rng.randint(1, 6))
    end = positions[-1]

    moves = net_path(lineage(start), lineage(end))
    steps = [op for revision, direction, _ in moves for op in (UP if direction == "up" else DOWN)[revision]]
    assert replay([op for r in reversed(lineage(start)) for op in UP[r]] + steps) == straight(end)
    assert [(r, d) for r, d, _ in moves] == collapsed_log(positions, start)
    assert all(after == (r if d == "up" else (lineage(r)[1:] or [None])[0]) for r, d, after in moves)


@pytest.mark.parametrize("seed", range(50))
def test_a_revision_killed_half_way_is_undone_from_its_ledger(seed):
    rng = random.Random(seed)
    at = rng.choice([None, *CHAIN[:-1]])
    nxt = CHAIN[0 if at is None else CHAIN.index(at) + 1]
    done = UP[nxt][:rng.randint(1, len(UP[nxt]))]
    state_steps = [op for r in reversed(lineage(at)) for op in UP[r]] + done
    ledger = {f"{r}:up:{i}": undo for r in lineage(at) for i, undo in enumerate(UNDO[r])}
    ledger.update({f"{nxt}:up:{i}": UNDO[nxt][i] for i in range(len(done))})

    order = {r: i for i, r in enumerate(reversed(CHAIN))}
    stray = unaccounted(list(ledger), set(lineage(at)), order)
    assert stray == [f"{nxt}:up:{i}" for i in reversed(range(len(done)))]
    assert replay(state_steps + [ledger[key] for key in stray]) == straight(at)


def test_down_steps_of_an_applied_revision_and_unknown_revisions_are_unaccounted():
    order = {r: i for i, r in enumerate(reversed(CHAIN))}
    keys = ["r1:up:0", "r2:down:0", "r2:down:1", "gone:up:0", "r3:down:0"]
    assert unaccounted(keys, {"r1", "r2"}, order) == ["gone:up:0", "r2:down:1", "r2:down:0"]
