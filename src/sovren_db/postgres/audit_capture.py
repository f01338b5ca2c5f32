"""Which capture path the audit trail runs: the C library (pgext/sovren_audit) or plpgsql.

A revision calls :func:`choose` while it runs (online): with ``capture = "auto"`` (the default,
``[tool.sovren-db.audit]`` or SOVREN_DB_AUDIT_CAPTURE) it replaces ``sovren_audit_stage`` by the C
function when the server loads the library, inside a savepoint, and keeps the plpgsql function
otherwise (a managed Postgres, a role that may not create C functions, no library on the server);
``native`` makes a server that cannot load it an error naming the server and the library;
``plpgsql`` never tries. ``check`` accepts either (``Function.native``), so whichever path the
revision chose is not drift.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from ..core.context import configured_runtime
from ..core.errors import ConfigError
from ..core.urls import redact

LIBRARY = "sovren_audit"
# The C function's AS clause, as `check` reads it back: one event per row before revision a4d8c1e6f2b3,
# bulk events for a bulk statement since (the library holds both; the revision chooses which).
ROWS_AS = f"'{LIBRARY}', 'sovren_audit_stage'"
NATIVE_AS = f"'{LIBRARY}', 'sovren_audit_stage_bulk'"


def native_stage(native_as: str = NATIVE_AS) -> str:
    """The statement installing the C stage function linked to ``native_as``."""
    return f"CREATE OR REPLACE FUNCTION sovren_audit_stage() RETURNS trigger LANGUAGE c VOLATILE AS {native_as}"


NATIVE_STAGE = native_stage()
OWNER_ONLY = "REVOKE ALL ON FUNCTION sovren_audit_stage() FROM PUBLIC"


def capture_setting(op: Any) -> str:
    """The configured capture of the settings this migration runs with (auto when run without sovren-db)."""
    runtime = configured_runtime(op.get_context())
    return getattr(getattr(runtime, "settings", None), "audit_capture", "auto")


def choose(op: Any, native_as: str = NATIVE_AS) -> str:
    """Install the native capture (the C function ``native_as``) if the setting and the server allow it;
    which path is installed."""
    setting = capture_setting(op)
    if setting == "plpgsql" or op.get_context().as_sql:  # offline SQL cannot try: it keeps plpgsql
        return "plpgsql"
    bind = op.get_bind()
    try:
        with bind.begin_nested():
            bind.execute(text(native_stage(native_as)))
            bind.execute(text(OWNER_ONLY))
    except Exception as exc:  # noqa: BLE001 - any refusal (no library, not a superuser) means plpgsql
        if setting == "native":
            raise ConfigError(
                f"Postgres at {redact(str(bind.engine.url.render_as_string(hide_password=False)))} cannot load "
                f"the audit capture library {LIBRARY} (build it with `make pgext`, install it with "
                f"`make -C pgext/sovren_audit install`, or set [tool.sovren-db.audit] capture = \"auto\"): "
                f"{str(getattr(exc, 'orig', exc)).splitlines()[0]}") from None
        return "plpgsql"
    return "native"


NATIVE_INSTALLED = ("SELECT COALESCE(bool_or(l.lanname = 'c'), false) FROM pg_proc p "
                    "JOIN pg_language l ON l.oid = p.prolang WHERE p.proname = 'sovren_audit_stage' "
                    "AND p.pronamespace = current_schema()::regnamespace")


def native_installed(conn: Any) -> bool:
    """Whether sovren_audit_stage is the C function on this psycopg connection's database."""
    return bool(conn.execute(NATIVE_INSTALLED).fetchone()[0])
