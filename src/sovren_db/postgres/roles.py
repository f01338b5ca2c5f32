"""Acting as the declared BYPASSRLS role: how seeding, erasure, rotation and snapshots see every tenant.

Row-level security is never switched off: the work runs as the role declared
with ``bypass_rls=True`` (``sovren_migrator`` for Sovren), reached with
``SET LOCAL ROLE`` for the current transaction only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from ..core.errors import ConfigError, Refused
from .state import Role

if TYPE_CHECKING:
    from .state import Schema


def bypass_role(schema: "Schema", *, grants: str = "SELECT, UPDATE and DELETE", purpose: str = "erasure") -> str:
    """The declared role with BYPASSRLS; ConfigError naming the ``grants`` that ``purpose`` needs when none is."""
    roles = [r.name for r in schema.of(Role) if r.bypass_rls]
    if not roles:
        raise ConfigError("No declared Postgres role has BYPASSRLS: declare one (Role(name, bypass_rls=True)) "
                          f"with {grants} grants so that {purpose} respects row-level security.")
    return roles[0]


def act_as(conn: psycopg.Connection, role: str, what: str, *, remedy: str = "") -> None:
    """``SET LOCAL ROLE role`` for the current transaction.

    When the login may not, the (aborted) transaction is rolled back and Refused says
    ``"{what} refused: ..."``, suggesting the GRANT (and ``remedy``, e.g. ``", or seed as a user who may"``).
    """
    try:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
    except psycopg.errors.InsufficientPrivilege:
        conn.rollback()
        user = conn.info.user
        raise Refused(f"{what} refused: Postgres user {user!r} may not act as {role!r} "
                      f"(GRANT {role} TO {user}{remedy}).") from None
