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

from sqlalchemy.engine import Connection

from .core.config import Settings
from .core.runtime import CollectingRuntime, Runtime
from .core.storeops import StoreOp

Chain = list[tuple[str, list[StoreOp]]]


def chain_steps(settings: Settings, target: str) -> Chain:
    """(revision, store steps) from base to ``target``, collected by running the chain offline."""
    from .commands import run_offline

    collector = CollectingRuntime(settings)
    run_offline(settings, collector, target)
    return list(collector.steps.items())


def unpositioned_stores(runtime: Runtime) -> list[str]:
    """Configured stores that record no position: fresh, or emptied since they were migrated."""
    return [store for store in runtime.stores
            if (backend := runtime.backend(store)) is not None and backend.position() is None]


def stores_to_resync(runtime: Runtime, candidates: list[str], connection: Connection) -> list[str]:
    """Of ``candidates``, those with no deferred steps to replay instead (Postgres has revisions applied)."""
    return [store for store in candidates if not runtime.has_deferred(connection, store)]


def resync(runtime: Runtime, connection: Connection, stores: list[str], head: str,
           reason: str = "its position was unknown (a fresh or emptied store)", chain: Chain | None = None) -> int:
    """Run the chain's steps of ``stores`` up to ``head``; returns how many steps were considered.

    ``chain`` is :func:`chain_steps` up to ``head`` when the caller already has it.
    """
    total = 0
    for revision, steps in chain if chain is not None else chain_steps(runtime.settings, head):
        for store in stores:
            mine = [op for op in steps if op.store == store]
            runtime._apply_store_steps(connection, store, revision, "up", mine, revision)
            total += len(mine)
    for store in stores:
        runtime.note(f"{store}: {reason}; replayed the chain's {store} steps up to {head}.")
    return total
