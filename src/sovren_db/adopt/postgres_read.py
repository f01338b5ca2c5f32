"""Read a live Postgres database into declarations: SQLAlchemy tables plus sovren-db's kinds.

Tables come from SQLAlchemy's reflection (bulk queries), catalog objects from
:func:`sovren_db.postgres.live.read_catalog`, the reader ``check`` uses, so what
``inspect`` writes is what ``check`` will compare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from sqlalchemy import MetaData, text
from sqlalchemy.dialects.postgresql import DOMAIN, ExcludeConstraint
from sqlalchemy.dialects.postgresql.base import ischema_names
from sqlalchemy.engine import Connection

from ..postgres.live import read_catalog
from ..postgres.state import (
    PRIVILEGE_ORDER, Extension, Grant, PartitionRule, Role, partition_name,
)
from ..core.runtime import FRAMEWORK_TABLES


@dataclass
class Partition:
    name: str
    parent: str
    bound: str          # "FOR VALUES FROM ('2026-01-01') TO ('2026-02-01')" or "DEFAULT"


@dataclass
class Inspected:
    """The live database as declarations, and what could not be expressed as one."""

    metadata: MetaData
    objects: list = field(default_factory=list)
    partitions: dict[str, list[Partition]] = field(default_factory=dict)  # parent -> partitions kept as SQL
    views: list[tuple[str, str]] = field(default_factory=list)            # (qualified name, definition)
    schemas: list[str] = field(default_factory=list)                      # besides the default one
    serials: list[tuple[str, str, str]] = field(default_factory=list)     # (table, column, nextval default)


# sovren_db is the tool's own bookkeeping (migration lease, backfill progress), never a declaration.
_SCHEMAS = """
SELECT nspname FROM pg_namespace
 WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'sovren_db') AND nspname NOT LIKE 'pg_temp_%'
   AND nspname NOT LIKE 'pg_toast_temp_%' AND nspname <> current_schema()
   AND EXISTS (SELECT 1 FROM pg_class c WHERE c.relnamespace = pg_namespace.oid AND c.relkind IN ('r', 'p', 'v'))
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass
                   AND d.objid = pg_namespace.oid AND d.deptype = 'e')
 ORDER BY 1
"""

_PARTITIONS = """
SELECT c.relname, p.relname AS parent, n.nspname, pg_get_expr(c.relpartbound, c.oid) AS bound
  FROM pg_class c
  JOIN pg_inherits i ON i.inhrelid = c.oid
  JOIN pg_class p ON p.oid = i.inhparent
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relispartition AND c.relkind IN ('r', 'p')
 ORDER BY p.relname, c.relname
"""

_VIEWS = """
SELECT n.nspname, c.relname, pg_get_viewdef(c.oid, true) AS definition
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'v' AND n.nspname = ANY(:schemas)
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                   AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY c.oid
"""

# Roles a declaration may name: not the built-in ones, not the one running the inspection (the
# owner of what it creates, not a role the schema declares).
_ROLES = """
SELECT rolname, rolcanlogin, rolbypassrls FROM pg_roles
 WHERE rolname NOT LIKE 'pg\\_%' AND rolname <> current_user AND NOT rolsuper
"""


def read_postgres(conn: Connection) -> Inspected:
    schemas = list(conn.execute(text(_SCHEMAS)).scalars())
    default = conn.execute(text("SELECT current_schema()")).scalar_one()
    partitions = [Partition(r.relname, r.parent, r.bound) for r in conn.execute(text(_PARTITIONS))]
    metadata, serials = _reflect_tables(conn, schemas, {p.name for p in partitions})
    roles = {r.rolname: (r.rolcanlogin, r.rolbypassrls) for r in conn.execute(text(_ROLES))}
    catalog = read_catalog(conn, set(roles))
    inspected = Inspected(metadata, schemas=schemas, serials=serials)
    inspected.objects = _objects(catalog, roles, metadata)
    rules, kept = _partition_rules(metadata, partitions, catalog.today)
    inspected.objects += rules
    inspected.partitions = kept
    inspected.views = [(f"{r.relname}" if r.nspname == default else f"{r.nspname}.{r.relname}", r.definition)
                       for r in conn.execute(text(_VIEWS), {"schemas": [default, *schemas]})]
    return inspected


def _reflect_tables(conn: Connection, schemas: list[str], partitions: set[str]):
    """SQLAlchemy's reflection of every table but partitions, completed where it falls short."""
    metadata = MetaData()
    for schema in [None, *schemas]:
        metadata.reflect(conn, schema=schema, resolve_fks=False,
                         only=lambda name, _: name not in partitions and name not in FRAMEWORK_TABLES)
    _drop_partition_clones(metadata, partitions)
    serials = _drop_serial_defaults(conn, metadata)
    _partition_keys(conn, metadata)
    _plain_reflection(metadata)
    _exclusion_constraints(conn, metadata)
    _domains_created(conn, metadata)
    return metadata, serials


def _plain_reflection(metadata: MetaData) -> None:
    """Leave out what reflection fills with the defaults (``autoincrement=False``, an empty
    INCLUDE list), so that the written tables read as a person writes them."""
    for table in metadata.tables.values():
        for column in table.columns:
            if column.autoincrement is False:
                column.autoincrement = "auto"
        for item in [*table.indexes, *table.constraints]:
            options = item.dialect_options["postgresql"]
            for key in ("include", "nulls_not_distinct", "ops", "with", "using"):
                if key in options._non_defaults and not options._non_defaults[key]:
                    del options._non_defaults[key]


_EXCLUSIONS = """
SELECT n.nspname = current_schema() AS in_default, n.nspname, c.relname, con.conname,
       pg_get_constraintdef(con.oid) AS definition
  FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE con.contype = 'x'
"""
_EXCLUDE = re.compile(r"^EXCLUDE USING (\w+) \((.*?)\)(?: WHERE \((.*)\))?$", re.S)


def _exclusion_constraints(conn: Connection, metadata: MetaData) -> None:
    """SQLAlchemy does not reflect EXCLUDE constraints: rebuilt from the server's own definition."""
    for r in conn.execute(text(_EXCLUSIONS)):
        table = metadata.tables.get(r.relname if r.in_default else f"{r.nspname}.{r.relname}")
        match = _EXCLUDE.match(r.definition)
        if table is None or match is None:
            continue
        elements = []
        for item in _split_top_level(match[2]):
            expression, _, operator = item.rpartition(" WITH ")
            elements.append((expression if expression in table.c else text(expression), operator))
        table.append_constraint(ExcludeConstraint(*elements, name=r.conname, using=match[1],
                                                  where=text(match[3]) if match[3] else None))


def _split_top_level(items: str) -> list[str]:
    """``a WITH =, lower(b, c) WITH &&`` -> its two items (commas inside parentheses kept)."""
    parts, depth, current = [], 0, ""
    for char in items:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return parts + [current.strip()] if current.strip() else parts


_DOMAINS = """
SELECT t.typname, format_type(t.typbasetype, t.typtypmod) AS base FROM pg_type t WHERE t.typtype = 'd'
"""
_TYPE_TEXT = re.compile(r"^([a-z ]+?)(?:\((\d+)(?:,(\d+))?\))?$")


def _domains_created(conn: Connection, metadata: MetaData) -> None:
    """A reflected DOMAIN loses its base type's precision (numeric(12,2) comes back as NUMERIC)
    and is marked not to be created; the base type is read again from the catalog, and the
    domain is created with the first table using it."""
    bases = {r.typname: r.base for r in conn.execute(text(_DOMAINS))}
    for table in metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, DOMAIN):
                column.type.create_type = True
                if column.type.collation == "default":  # the base type's own collation, written once
                    column.type.collation = None
                if getattr(column.type.data_type, "collation", None):
                    column.type.data_type.collation = None
                base = _TYPE_TEXT.match(bases.get(column.type.name, ""))
                kind = ischema_names.get(base[1]) if base else None
                if kind is not None and base[2]:
                    column.type.data_type = kind(*(int(a) for a in base.groups()[1:] if a))


_PARTITION_KEYS = """
SELECT n.nspname = current_schema() AS in_default, n.nspname, c.relname, pg_get_partkeydef(c.oid) AS key
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'p'
"""


def _partition_keys(conn: Connection, metadata: MetaData) -> None:
    """SQLAlchemy does not reflect PARTITION BY; the catalog says it."""
    for r in conn.execute(text(_PARTITION_KEYS)):
        table = metadata.tables.get(r.relname if r.in_default else f"{r.nspname}.{r.relname}")
        if table is not None:
            table.dialect_options["postgresql"]["partition_by"] = r.key


def _drop_partition_clones(metadata: MetaData, partitions: set[str]) -> None:
    """A foreign key to a partitioned table is cloned by the server once per partition
    (pg_constraint.conparentid); only the one to the parent is declared."""
    for table in metadata.tables.values():
        for fk in [c for c in table.foreign_key_constraints if c.elements[0].target_fullname.split(".")[-2] in partitions]:
            table.constraints.discard(fk)
            for column in fk.columns:
                column.foreign_keys -= set(fk.elements)
            table.foreign_keys -= set(fk.elements)


_OWNED_SERIALS = """
SELECT t.relname AS table_name, n.nspname, a.attname
  FROM pg_class s
  JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass
   AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'a'
  JOIN pg_class t ON t.oid = d.refobjid
  JOIN pg_namespace n ON n.oid = t.relnamespace
  JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid
 WHERE s.relkind = 'S'
"""


def _drop_serial_defaults(conn: Connection, metadata: MetaData) -> list[tuple[str, str, str]]:
    """A SERIAL column is declared as Alembic reflects one: without its ``nextval`` default.

    SQLAlchemy makes a lone integer primary key a SERIAL again; any other such column is
    returned as (table, column, default) for postgres/baseline.sql to give back its sequence.
    """
    owned = {(r.nspname, r.table_name, r.attname) for r in conn.execute(text(_OWNED_SERIALS))}
    default = conn.execute(text("SELECT current_schema()")).scalar_one()
    kept = []
    for table in metadata.tables.values():
        pk = list(table.primary_key.columns)
        for column in table.columns:
            value = str(getattr(column.server_default, "arg", ""))
            if (table.schema or default, table.name, column.name) not in owned or not value.startswith("nextval("):
                continue
            column.server_default = None
            if pk == [column]:
                column.autoincrement = True
            else:
                kept.append((table.fullname, column.name, value))
    return kept


def _objects(catalog, roles: dict[str, tuple[bool, bool]], metadata: MetaData) -> list:
    tables = {t.name for t in metadata.tables.values() if t.schema is None}
    named = _roles_in_use(catalog)
    objects: list = [Extension(name) for name in sorted(catalog.extensions - {"plpgsql"})]
    objects += [Role(name, *roles[name]) for name in sorted(named) if name in roles]
    objects += [fn for _, (fn, _) in sorted(catalog.functions.items())]
    objects += [t.row_security for _, t in sorted(catalog.tables.items())
                if t.name in tables and (t.row_security.enabled or t.row_security.forced)]
    objects += [live.policy for _, live in sorted(catalog.policies.items())]
    # a trigger on a partition is the partition's (audit_log's no-truncate guard on each month): the
    # declarations name parent tables only, and the parent's rule makes the partitions
    objects += [_enabled(trigger, enabled) for _, (trigger, enabled) in sorted(catalog.triggers.items())
                if trigger.table in tables]
    objects += [Grant(role, table, tuple(p for p in PRIVILEGE_ORDER if p in privileges))
                for (table, role), privileges in sorted(catalog.grants.items()) if table in tables]
    return objects


def _roles_in_use(catalog) -> set[str]:
    named = {role for (_, role) in catalog.grants}
    named |= {r for live in catalog.policies.values() for r in live.policy.roles if r != "public"}
    return named


def _enabled(trigger, enabled: bool):
    from dataclasses import replace

    return trigger if enabled else replace(trigger, enabled=False)


_MIDNIGHT = r"(?: 00:00:00(?:[+-]\d\d(?::\d\d)?)?)?"
_MONTH = re.compile(rf"^FOR VALUES FROM \('(\d{{4}})-(\d{{2}})-01{_MIDNIGHT}'\) TO \('(\d{{4}})-(\d{{2}})-01{_MIDNIGHT}'\)$")


def _partition_rules(metadata: MetaData, partitions: list[Partition], today: date):
    """A parent whose partitions are all months named ``<table>_pYYYY_MM`` (plus maybe
    ``<table>_default``) gets a PartitionRule; any other keeps its partitions as SQL."""
    by_parent: dict[str, list[Partition]] = {}
    for p in partitions:
        by_parent.setdefault(p.parent, []).append(p)
    rules, kept = [], {}
    for parent, parts in sorted(by_parent.items()):
        rule = _monthly_rule(metadata, parent, parts, today)
        if rule is None:
            kept[parent] = parts
        else:
            rules.append(rule)
    return rules, kept


def _monthly_rule(metadata: MetaData, parent: str, parts: list[Partition], today: date) -> PartitionRule | None:
    table = metadata.tables.get(parent)
    key = str(table.dialect_options["postgresql"].get("partition_by") or "") if table is not None else ""
    column = re.fullmatch(r"RANGE \((\w+)\)", key)
    if column is None:
        return None
    months, default = [], False
    for p in parts:
        if p.bound == "DEFAULT" and p.name == f"{parent}_default":
            default = True
            continue
        m = _MONTH.match(p.bound)
        if m is None:
            return None
        start = date(int(m[1]), int(m[2]), 1)
        end_month = (start.year * 12 + start.month) % 12 + 1
        if p.name != partition_name(parent, start) or (int(m[4]) != end_month):
            return None
        months.append(start)
    if not months:
        return None
    ahead = (max(months).year - today.year) * 12 + max(months).month - today.month
    if ahead < 0 or date(today.year, today.month, 1) not in months:
        return None
    return PartitionRule(parent, column[1], months_ahead=ahead, default=default)
