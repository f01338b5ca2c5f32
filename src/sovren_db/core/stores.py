"""The contract every non-Postgres store backend fulfils.

A backend wraps one connected client (pymongo Database, redis-py client)
plus that store's small step ledger and its position in the revision chain.
``sovren_db.mongo.backend.MongoBackend`` and
``sovren_db.redis.backend.RedisBackend`` implement it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .config import Settings
    from .storeops import StoreOp

BACKENDS = {
    "mongo": "sovren_db.mongo.backend:MongoBackend",
    "redis": "sovren_db.redis.backend:RedisBackend",
}


class StoreBackend(Protocol):
    store: str

    def connect(self) -> None:
        """Open and ping the server; raise StoreUnavailable (one sentence) if not usable."""

    def execute(self, op: "StoreOp") -> None:
        """Run one operation against the server."""

    def ledger_keys(self, prefix: str) -> set[str]:
        """Keys of recorded steps starting with ``prefix``."""

    def undo_of(self, op: "StoreOp") -> "StoreOp | None":
        """The step that would undo ``op``, read from the server before ``op`` runs."""

    def ledger_record(self, key: str, op: "StoreOp", undo: "StoreOp | None" = None) -> None:
        """Record that step ``key`` ran (after it succeeded), with the step that undoes it."""

    def ledger_undo_steps(self, prefix: str) -> "dict[str, StoreOp | None]":
        """Per recorded step starting with ``prefix``, the step that undoes it (None: unknown)."""

    def ledger_forget(self, prefix: str) -> None:
        """Forget recorded steps whose key starts with ``prefix``."""

    def position(self) -> str | None:
        """The revision through which this store's steps are all applied."""

    def set_position(self, revision: str | None) -> None:
        """Record that position."""

    def close(self) -> None:
        """Close the client."""


def backend_class(store: str) -> type:
    module_name, _, class_name = BACKENDS[store].partition(":")
    return getattr(importlib.import_module(module_name), class_name)


def make_backend(store: str, settings: "Settings") -> StoreBackend:
    return backend_class(store)(settings)
