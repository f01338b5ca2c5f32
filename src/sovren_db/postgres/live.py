"""Read the live state of the declared kinds from pg_catalog, one query per kind.

alembic-utils compares functions and triggers by creating each declared one
in a rolled-back transaction and diffing definitions, which costs minutes on
hundreds of tables; reading the catalog in bulk costs a few queries in total.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import text
from sqlalchemy.engine import Connection

from . import sql
from .state import Function, Policy, RowSecurity, Trigger

VOLATILITY = {"v": "VOLATILE", "s": "STABLE", "i": "IMMUTABLE"}
POLCMD = {"*": "ALL", "r": "SELECT", "a": "INSERT", "w": "UPDATE", "d": "DELETE"}


@dataclass
class LivePolicy:
    policy: Policy
    comment: str | None
    # computed by the server with the same SQL as the one kept in the comment (sql.LIVE_POLICY_FINGERPRINT)
    live_fingerprint: str


@dataclass
class LiveTable:
    name: str
    row_security: RowSecurity
    partition_key: str | None         # "RANGE (executed_at)" for a partitioned table
    partitions: set[str] = field(default_factory=set)   # names of the partitions (names carry the month)


@dataclass
class Catalog:
    today: date
    extensions: set[str]
    roles: dict[str, tuple[bool, bool]]          # name -> (login, bypass_rls)
    functions: dict[str, tuple[Function, bool]]  # key -> (function, managed by sovren-db)
    triggers: dict[str, tuple[Trigger, bool]]    # key -> (trigger, enabled)
    policies: dict[str, LivePolicy]
    tables: dict[str, LiveTable]
    grants: dict[tuple[str, str], set[str]]      # (table, role) -> privileges

    @property
    def partition_names(self) -> set[str]:
        return {p for t in self.tables.values() for p in t.partitions}


def read_catalog(conn: Connection, roles: set[str]) -> Catalog:
    today = conn.execute(text("SELECT current_date")).scalar_one()
    return Catalog(
        today=today,
        extensions=set(conn.execute(text("SELECT extname FROM pg_extension")).scalars()),
        roles=_roles(conn, roles),
        functions=_functions(conn),
        triggers=_triggers(conn),
        policies=_policies(conn),
        tables=_tables(conn),
        grants=_grants(conn, roles),
    )


def _roles(conn: Connection, names: set[str]) -> dict[str, tuple[bool, bool]]:
    rows = conn.execute(text("SELECT rolname, rolcanlogin, rolbypassrls FROM pg_roles "
                             "WHERE rolname = ANY(:names)"), {"names": sorted(names)})
    return {r.rolname: (r.rolcanlogin, r.rolbypassrls) for r in rows}


_FUNCTIONS = """
SELECT p.proname, pg_get_function_identity_arguments(p.oid) AS args, pg_get_function_result(p.oid) AS returns,
       l.lanname, p.prosecdef, p.prosrc, p.probin, p.proconfig, p.provolatile,
       COALESCE(obj_description(p.oid, 'pg_proc'), '') = :managed AS managed,
       CASE WHEN p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0) THEN NULL
            ELSE ARRAY(SELECT pg_get_userbyid(a.grantee) FROM aclexplode(p.proacl) a
                        WHERE a.grantee <> p.proowner AND a.privilege_type = 'EXECUTE' ORDER BY 1) END AS callers
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname = current_schema() AND p.prokind = 'f'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                   AND d.objid = p.oid AND d.deptype = 'e')
"""


def _functions(conn: Connection) -> dict[str, tuple[Function, bool]]:
    found = {}
    for r in conn.execute(text(_FUNCTIONS), {"managed": sql.MANAGED}):
        search_path = next((c.split("=", 1)[1] for c in (r.proconfig or []) if c.startswith("search_path=")), None)
        body = f"'{r.probin}', '{r.prosrc}'" if r.lanname == "c" else r.prosrc  # a C function: its AS clause
        fn = Function(r.proname, r.args, r.returns, body, r.lanname, r.prosecdef, search_path,
                      VOLATILITY[r.provolatile], None if r.callers is None else tuple(r.callers))
        found[fn.key] = (fn, r.managed)
    return found


_TRIGGERS = """
SELECT t.tgname, c.relname, t.tgenabled, t.tgtype, p.proname, t.tgdeferrable AND t.tginitdeferred AS deferred,
       concat_ws(' ', 'OLD TABLE AS ' || t.tgoldtable, 'NEW TABLE AS ' || t.tgnewtable) AS referencing
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE n.nspname = current_schema() AND NOT t.tgisinternal AND t.tgparentid = 0
"""


def _trigger_from_type(name: str, table: str, function: str, tgtype: int, referencing: str = "",
                       deferred: bool = False) -> Trigger:
    events = tuple(e for bit, e in ((4, "INSERT"), (16, "UPDATE"), (8, "DELETE"), (32, "TRUNCATE")) if tgtype & bit)
    timing = "INSTEAD OF" if tgtype & 64 else ("BEFORE" if tgtype & 2 else "AFTER")
    return Trigger(name, table, function, timing, events, "ROW" if tgtype & 1 else "STATEMENT",
                   referencing=referencing, deferred=deferred)


def _triggers(conn: Connection) -> dict[str, tuple[Trigger, bool]]:
    found = {}
    for r in conn.execute(text(_TRIGGERS)):
        trigger = _trigger_from_type(r.tgname, r.relname, r.proname, r.tgtype, r.referencing, r.deferred)
        found[trigger.key] = (trigger, r.tgenabled != "D")
    return found


_POLICIES = f"""
SELECT pol.polname, c.relname, pol.polcmd, pol.polpermissive,
       ARRAY(SELECT CASE WHEN r = 0 THEN 'public' ELSE pg_get_userbyid(r) END
               FROM unnest(pol.polroles) AS r ORDER BY 1) AS roles,
       pg_get_expr(pol.polqual, pol.polrelid) AS using_expr,
       pg_get_expr(pol.polwithcheck, pol.polrelid) AS check_expr,
       obj_description(pol.oid, 'pg_policy') AS comment,
       {sql.LIVE_POLICY_FINGERPRINT} AS live_fingerprint
  FROM pg_policy pol
  JOIN pg_class c ON c.oid = pol.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = current_schema()
"""


def _policies(conn: Connection) -> dict[str, LivePolicy]:
    found = {}
    for r in conn.execute(text(_POLICIES)):
        policy = Policy(r.polname, r.relname, r.using_expr, r.check_expr, POLCMD[r.polcmd],
                        tuple(r.roles), r.polpermissive)
        found[policy.key] = LivePolicy(policy, r.comment, r.live_fingerprint)
    return found


_TABLES = """
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END AS partition_key,
       ARRAY(SELECT ch.relname FROM pg_inherits i JOIN pg_class ch ON ch.oid = i.inhrelid
              WHERE i.inhparent = c.oid) AS partitions
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""


def _tables(conn: Connection) -> dict[str, LiveTable]:
    found = {}
    for r in conn.execute(text(_TABLES)):
        found[r.relname] = LiveTable(r.relname, RowSecurity(r.relname, r.relrowsecurity, r.relforcerowsecurity),
                                     r.partition_key, set(r.partitions))
    return found


_GRANTS = """
SELECT c.relname, r.rolname, a.privilege_type
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL aclexplode(c.relacl) AS a
  JOIN pg_roles r ON r.oid = a.grantee
 WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND r.rolname = ANY(:roles)
"""


def _grants(conn: Connection, roles: set[str]) -> dict[tuple[str, str], set[str]]:
    found: dict[tuple[str, str], set[str]] = {}
    for r in conn.execute(text(_GRANTS), {"roles": sorted(roles)}):
        found.setdefault((r.relname, r.rolname), set()).add(r.privilege_type)
    return found
