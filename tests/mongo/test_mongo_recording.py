"""The Mongo test double says what it is: unknown commands are refused, cursors look like the server's."""

from __future__ import annotations

import mongo_replies as R
import pytest
from bson import Int64
from mongo_support import RecordingDatabase
from pymongo.errors import OperationFailure

from sovren_db.mongo.commands import violations_command, violations_from_reply


@pytest.mark.parametrize("misspelt", ["createIndex", "colMod", "aggregation", "dropIndex"])
def test_a_command_the_server_does_not_have_is_refused_as_the_server_refuses_it(misspelt):
    db = RecordingDatabase(replies={misspelt: {"ok": 1.0}})  # a canned reply does not make it a command
    with pytest.raises(OperationFailure) as refused:
        db.command({misspelt: "communications"})
    assert refused.value.code == 59 and refused.value.details["codeName"] == "CommandNotFound"
    assert str(refused.value).startswith(f"no such command: '{misspelt}'")


def test_aggregate_answers_an_exhausted_cursor_on_its_namespace():
    db = RecordingDatabase("sovren_ai")
    reply = db.command(violations_command("communications", {"status": {"$exists": True}}))
    assert reply == {"cursor": {"firstBatch": [], "id": Int64(0), "ns": "sovren_ai.communications"}, "ok": 1.0}
    assert violations_from_reply(reply) == (0, [])
    assert db.command({"aggregate": 1, "pipeline": [], "cursor": {}})["cursor"]["ns"] == "sovren_ai.$cmd.aggregate"


def test_the_default_cursor_reply_has_the_keys_of_a_recorded_server_reply():
    recorded = R.VIOLATIONS_NONE["cursor"]
    assert set(RecordingDatabase().command({"find": "c", "filter": {}})["cursor"]) == set(recorded)
