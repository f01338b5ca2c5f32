"""Seeding happens only where every store is at the head of the revision chain.

Postgres' ``alembic_version`` must be the script directory's single head;
every configured MongoDB or Redis must report that head as its position, with
no steps deferred for it. A store that is not configured is skipped in
development (the runtime notes it; steps deferred for it wait until it is
configured and migrated) and is an error under ``--strict``.
Protected environments refuse unless explicitly allowed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from ..core.errors import Refused, RevisionError
from ..core.runtime import has_deferred

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from ..core.config import Settings
    from ..core.runtime import Runtime


def refuse_protected(settings: "Settings", allow_protected: bool) -> None:
    if settings.protected and not allow_protected:
        raise Refused(f"Seeding refused: environment {settings.environment!r} is protected "
                      "(pass --allow-protected to seed it anyway).")


def script_head(settings: "Settings") -> str:
    if not (settings.migrations_dir / "env.py").is_file():
        raise RevisionError(f"{settings.migrations_dir} has no env.py: it is not a revision directory.")
    heads = ScriptDirectory(str(settings.migrations_dir)).get_heads()
    if len(heads) != 1:
        raise Refused(f"Seeding refused: the revision chain has {len(heads)} heads "
                      f"({', '.join(heads) or 'none'}); it needs exactly one.")
    return heads[0]


def check_lockstep(settings: "Settings", connection: "Connection", runtime: "Runtime") -> str:
    """The head revision, once every configured store is known to be at it; Refused otherwise."""
    head = script_head(settings)
    current = MigrationContext.configure(connection).get_current_heads()
    if tuple(current) != (head,):
        at = ", ".join(current) or "base"
        raise Refused(f"Seeding refused: Postgres is at revision {at}, not at the head {head} "
                      "(run 'sovren-db migrate' first).")
    for store in runtime.stores:
        backend = runtime.backend(store)
        if backend is None:
            continue   # not configured: skipped, with the runtime's note (its deferred steps wait for it)
        if has_deferred(connection, store):
            raise Refused(f"Seeding refused: {store} has revision steps deferred while it was unreachable "
                          f"(run 'sovren-db migrate' with {store} reachable first).")
        position = backend.position()
        if position != head:
            raise Refused(f"Seeding refused: {store} is at revision {position or 'base'}, not at the head {head} "
                          "(run 'sovren-db migrate' first).")
    return head
