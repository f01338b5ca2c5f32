"""Helpers of the Mongo tests (a module of its own name: conftest is not importable reliably).

``RecordingDatabase`` is not a server: it records the command documents
sovren-db builds and answers with canned replies shaped like the server's.
Tests using it check command construction, never MongoDB behaviour.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mongo_replies as R
from pymongo.errors import OperationFailure

from sovren_db.core.config import Settings

REPO = Path(__file__).resolve().parents[2]
SOVREN_MONGO_DIR = REPO / "mongo"
UUID = "0e9d1f7c-1111-4a4a-8b8b-123456789abc"
# A communications document that Sovren's validator accepts, as Extended JSON
COMMUNICATION = {
    "_id": {"$oid": "65f1a2b3c4d5e6f708091b01"},
    "messageId": UUID,
    "userId": UUID,
    "recipient": "cfo@example.com",
    "message": "Q3 forecast attached.",
    "status": "delivered",
    "timestamp": {"$date": "2024-03-13T10:00:00Z"},
}


# The commands sovren-db sends, by their server names; any other is refused as the server
# refuses it (CommandNotFound), so a misspelt command fails here as it would there.
KNOWN_COMMANDS = frozenset({
    "hello", "serverStatus", "currentOp", "balancerStatus", "listCollections", "listIndexes",
    "create", "collMod", "convertToCapped", "drop", "createIndexes", "dropIndexes",
    "find", "aggregate", "insert", "update", "delete",
    "shardCollection", "refineCollectionShardKey", "reshardCollection", "unshardCollection",
    "updateZoneKeyRange", "addShardToZone", "removeShardFromZone",
})
_CURSOR_COMMANDS = ("find", "aggregate", "listCollections", "listIndexes")


class RecordingDatabase:
    """Stands in for a pymongo Database to record commands; knows nothing of MongoDB.

    ``replies`` maps ``(database, verb, target)``, ``(database, verb)`` or ``verb`` to a reply
    document (or a function of the command); a reply with ``ok: 0`` is raised as pymongo's
    OperationFailure, as pymongo does. Without one, a command of ``KNOWN_COMMANDS`` gets
    ``{ok: 1}``, or an empty first batch shaped like the server's for a cursor command; any
    other command is refused with the server's CommandNotFound.
    """

    def __init__(self, name: str = "sovren_ai", replies: dict | None = None, sent: list | None = None):
        self.name = name
        self.replies = replies if replies is not None else {}
        self.sent: list[tuple[str, dict]] = sent if sent is not None else []
        self.client = _RecordingClient(self)

    def command(self, command: dict) -> dict:
        command = dict(command)
        self.sent.append((self.name, command))
        verb = next(iter(command))
        target = command[verb] if isinstance(command[verb], str) else None
        reply = self._reply(verb, target)
        reply = reply(command) if callable(reply) else reply
        if reply.get("ok") == 0:
            raise OperationFailure(reply["errmsg"], reply["code"], reply)
        return reply

    def _reply(self, verb: str, target: str | None) -> Any:
        if verb not in KNOWN_COMMANDS:
            return R.no_such_command(verb)
        for key in ((self.name, verb, target), (self.name, verb), verb):
            if key in self.replies:
                return self.replies[key]
        if verb in _CURSOR_COMMANDS:
            return R.cursor_reply(f"{self.name}.{target}" if target else f"{self.name}.$cmd.{verb}")
        return {"ok": 1.0}

    def verbs(self) -> list[str]:
        return [f"{db}.{next(iter(cmd))}" for db, cmd in self.sent]

    def commands(self, verb: str) -> list[dict]:
        return [cmd for _, cmd in self.sent if next(iter(cmd)) == verb]


class _RecordingClient:
    def __init__(self, owner: RecordingDatabase):
        self._owner = owner

    def get_database(self, name: str) -> RecordingDatabase:
        return RecordingDatabase(name, self._owner.replies, self._owner.sent)


def make_settings(root: Path, mongo_url: str | None = None, database: str = "sovren_ai") -> Settings:
    return Settings(
        root=root,
        urls={"postgres": None, "mongo": mongo_url, "redis": None},
        postgres_dir=root / "postgres",
        mongo_dir=root / "mongo",
        redis_dir=root / "redis",
        seeds_dir=root / "seeds",
        migrations_dir=root / "migrations",
        mongo_database=database,
    )


def write_declarations(root: Path, files: dict[str, str]) -> Path:
    """A project at ``root`` (pyproject.toml + mongo/ with ``files``); returns the mongo folder."""
    (root / "pyproject.toml").write_text('[project]\nname = "t"\n\n[tool.sovren-db]\n')
    folder = root / "mongo"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder
