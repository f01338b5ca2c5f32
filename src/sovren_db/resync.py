"""Bring a fresh or wiped store up to the revision Postgres stands at.

A store whose position is unknown (never migrated, or emptied since, like a
development Redis restarted without persistence) while Postgres has
revisions applied gets the chain's steps for that store, oldest first: each
revision's ``upgrade()`` is run offline to collect them (no Postgres statement
runs), then they run against the store through the usual ledger, so a step the
store already has is skipped. Store steps are convergent, so replaying the
whole history ends in the state the chain describes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alembic import command as alembic_command
from sqlalchemy.engine import Connection

from .core.config import Settings
from .core.runtime import Runtime, has_deferred
from .core.storeops import StoreOp


@dataclass
class _CollectingRuntime(Runtime):
    """An offline run's runtime that keeps each revision's store steps instead of printing them."""

    steps: dict[str, list[StoreOp]] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)

    def collect(self, operation: StoreOp, operations: Any) -> None:
        self._pending.append(operation)

    def on_version_apply(self, *, ctx: Any, step: Any, heads: Any, run_args: Any) -> None:
        revision = step.up_revision_id
        self.order.append(revision)
        self.steps[revision], self._pending = self._pending, []


def chain_steps(settings: Settings, target: str) -> list[tuple[str, list[StoreOp]]]:
    """(revision, store steps) from base to ``target``, collected by running the chain offline."""
    from .commands import alembic_config

    collector = _CollectingRuntime(settings)
    config = alembic_config(settings, collector)
    alembic_command.upgrade(config, target, sql=True)
    return [(revision, collector.steps[revision]) for revision in collector.order]


def unpositioned_stores(runtime: Runtime) -> list[str]:
    """Configured stores that record no position: fresh, or emptied since they were migrated."""
    return [store for store in runtime.stores
            if (backend := runtime.backend(store)) is not None and backend.position() is None]


def stores_to_resync(candidates: list[str], connection: Connection, heads: tuple[str, ...]) -> list[str]:
    """Of ``candidates``, those Postgres is ahead of and that have no deferred steps to replay instead."""
    if not heads:
        return []
    return [store for store in candidates if not has_deferred(connection, store)]


def resync(runtime: Runtime, connection: Connection, stores: list[str], head: str,
           reason: str = "its position was unknown (a fresh or emptied store)") -> int:
    """Run the chain's steps of ``stores`` up to ``head``; returns how many steps were considered."""
    total = 0
    for revision, steps in chain_steps(runtime.settings, head):
        for store in stores:
            mine = [op for op in steps if op.store == store]
            runtime._apply_store_steps(connection, store, revision, "up", mine, revision)
            total += len(mine)
    for store in stores:
        runtime.note(f"{store}: {reason}; replayed the chain's {store} steps up to {head}.")
    return total
