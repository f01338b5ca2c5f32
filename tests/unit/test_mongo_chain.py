"""The revision chain as a Mongo reader: pure replay of mongo_* steps."""

from __future__ import annotations

from pathlib import Path

from sovren_db.mongo import ops
from sovren_db.mongo.chain import replay
from sovren_db.mongo.declared import load_declared
from sovren_db.mongo.diff import diff_states
from sovren_db.mongo.state import DatabaseState

REPO = Path(__file__).resolve().parents[2]


def declared() -> DatabaseState:
    return load_declared(REPO / "mongo", display_root=REPO)


def test_replaying_the_creation_steps_gives_the_declared_state():
    want = declared()
    steps = diff_states(want, DatabaseState({}, sharded=True))
    assert diff_states(want, replay(steps)) == []


def test_each_kind_of_step_changes_the_replayed_state():
    want = declared()
    steps = diff_states(want, DatabaseState({}, sharded=True))
    index = {"name": "recipient_1", "key": [["recipient", 1]]}
    steps += [ops.CreateIndexOp("communications", index),
              ops.SetValidatorOp("executives", None),
              ops.DropCollectionOp(collection="analytics_payloads")]
    state = replay(steps)
    assert state.collections["communications"].index("recipient_1") is not None
    assert state.collections["executives"].validator is None
    assert "analytics_payloads" not in state.collections
    back = diff_states(want, state)
    kinds = sorted(type(op).__name__ for op in back)
    assert kinds == ["CreateCollectionOp", "DropIndexOp", "SetValidatorOp"]
    later = replay(steps + [ops.DropIndexOp("communications", index)])
    assert later.collections["communications"].index("recipient_1") is None
