"""The Mongo backend of the revision chain: client, step ledger, position.

The ledger is the collection ``sovren_db_ledger`` of the configured database
(``settings.mongo_database``): one document per step that ran
(``_id`` = ``<revision>:<up|down>:<seq>``, ``kind: "step"``) and one
``_id: "position"`` document. sovren-db never diffs that collection.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import TYPE_CHECKING, Any

from pymongo import MongoClient
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError, ServerSelectionTimeoutError

from ..core.errors import StoreUnavailable
from ..core.storeops import op_record, undo_from_record
from . import toimpl
from .live import introspect, is_mongos
from .state import LEDGER_COLLECTION, DatabaseState

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..core.storeops import StoreOp

AUTH_FAILED = 18
POSITION_ID = "position"


class MongoBackend:
    store = "mongo"
    server_timeout_ms = 3000

    def __init__(self, settings: "Settings"):
        self.settings = settings
        self.url = settings.mongo_url
        self.client: MongoClient | None = None
        self.db: Any = None
        self.mongos = False

    def connect(self) -> None:
        """Open the client and say hello; StoreUnavailable (one sentence, no password) if unusable."""
        url = self.settings.require_url("mongo")
        try:
            self.client = MongoClient(
                url,
                serverSelectionTimeoutMS=self.server_timeout_ms,
                connectTimeoutMS=self.server_timeout_ms,
                appname="sovren-db",
            )
            self.db = self.client.get_database(self.settings.mongo_database)
            self.mongos = is_mongos(self.db.command({"hello": 1}))
        except (PyMongoError, OSError) as exc:  # OSError: a TLS file of the URL's (tlsCAFile...) is unreadable
            self.close()
            raise StoreUnavailable("mongo", url, unavailable_reason(exc, self.server_timeout_ms)) from None

    def execute(self, op: "StoreOp") -> None:
        toimpl.execute(op, self.db)

    def introspect(self) -> DatabaseState:
        try:
            return introspect(self.db)
        except PyMongoError as exc:
            raise StoreUnavailable(
                "mongo", self.url, unavailable_reason(exc, self.server_timeout_ms)
            ) from None

    # -- ledger -----------------------------------------------------------
    @property
    def ledger(self) -> Any:
        return self.db[LEDGER_COLLECTION]

    def ledger_keys(self, prefix: str) -> set[str]:
        found = self.ledger.find({"_id": {"$regex": "^" + re.escape(prefix)}, "kind": "step"}, {"_id": 1})
        return {doc["_id"] for doc in found}

    def undo_of(self, op: "StoreOp") -> "StoreOp | None":
        return toimpl.undo(op, self.db)

    def ledger_record(self, key: str, op: "StoreOp", undo: "StoreOp | None" = None) -> None:
        # arguments as JSON text: validators hold "$"-prefixed field names
        entry = {
            "kind": "step",
            "op_name": op.op_name,
            "arguments": json.dumps(op.arguments()),
            "undo": json.dumps(op_record(undo)),
            "description": op.describe(),
            "applied_at": _now(),
        }
        self.ledger.replace_one({"_id": key}, entry, upsert=True)

    def ledger_undo_steps(self, prefix: str) -> "dict[str, StoreOp | None]":
        found = self.ledger.find({"_id": {"$regex": "^" + re.escape(prefix)}, "kind": "step"}, {"undo": 1})
        return {doc["_id"]: undo_from_record(json.loads(doc.get("undo") or "null")) for doc in found}

    def ledger_forget(self, prefix: str) -> None:
        self.ledger.delete_many({"_id": {"$regex": "^" + re.escape(prefix)}, "kind": "step"})

    def position(self) -> str | None:
        doc = self.ledger.find_one({"_id": POSITION_ID})
        return doc.get("revision") if doc else None

    def set_position(self, revision: str | None) -> None:
        entry = {"kind": "position", "revision": revision, "updated_at": _now()}
        self.ledger.replace_one({"_id": POSITION_ID}, entry, upsert=True)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None


def unavailable_reason(exc: Exception, timeout_ms: int) -> str:
    """One clause saying why the server is not usable."""
    if isinstance(exc, ServerSelectionTimeoutError):
        cause = str(exc).split(", Timeout:", 1)[0].split(" (configured timeouts", 1)[0]
        return f"no server answered within {timeout_ms / 1000:g}s ({cause})"
    if isinstance(exc, OperationFailure) and exc.code == AUTH_FAILED:
        return "authentication failed (check the user and password of MONGO_URL)"
    if isinstance(exc, ConfigurationError):
        return f"the URL cannot be used ({exc})"
    return f"{type(exc).__name__}: {exc}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
