"""The bulk table comparator (sovren_db.postgres.tables) against Alembic's own, on a real Postgres.

For each kind of difference the live database and the declaration are built
from the same SQLAlchemy tables with one change, and Alembic's table
comparison and sovren-db's must give the same diff.
"""

from __future__ import annotations

from collections import Counter

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.runtime.plugins import Plugin, _all_plugins
from alembic.util import DispatchPriority
from sqlalchemy import (
    TIMESTAMP, BigInteger, CheckConstraint, Column, ForeignKey, Index, Integer, MetaData, Numeric,
    PrimaryKeyConstraint, String, Table, Text, UniqueConstraint, create_engine, inspect, text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.pool import NullPool

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.core.runtime import Runtime
from sovren_db.env import sqlalchemy_url
from sovren_db.plugin import install
from sovren_db.postgres import tables as bulk_tables
from tests.integration.recording import recorded
from sovren_db.postgres.live import read_catalog

pytestmark = pytest.mark.postgres

ALEMBIC = ["alembic.autogenerate.*", "alembic.ext.checkconstraint_byname"]
BULK_PLUGIN = "sovren_tests.bulk_tables"  # outside "sovren_db.*": sovren-db's own env never loads it

BASE = dict(legacy=False, note=False, status_length=20, status_nullable=False, status_default="'new'",
            index=True, unique=True, fk=True, check=True, comment=None, shipped_default=None)


def declared(**changes) -> MetaData:
    """accounts, orders (SERIAL key, FK, index, unique, check, defaults), partitioned events.

    The live database needs the sequence ``order_refs`` first (see :func:`build_live`)."""
    o = {**BASE, **changes}
    metadata = MetaData()
    Table("accounts", metadata, Column("id", Integer, primary_key=True),
          Column("email", String(80), nullable=False), comment=o["comment"])
    Table(
        "orders", metadata,
        Column("id", BigInteger, primary_key=True),
        Column("account_id", Integer, *([ForeignKey("accounts.id", name="fk_orders_account")] if o["fk"] else [])),
        Column("status", String(o["status_length"]), nullable=o["status_nullable"],
               server_default=text(o["status_default"]) if o["status_default"] else None),
        Column("shipped", String(20), server_default=text(o["shipped_default"]) if o["shipped_default"] else None),
        Column("payload", JSONB, server_default=text("'{}'::jsonb")),
        Column("amount", Numeric(12, 2), server_default=text("0")),
        # a sequence the column does not own: not a SERIAL, its default is compared
        Column("ref", Integer, server_default=text("nextval('order_refs')")),
        *([Column("note", Text)] if o["note"] else []),
        *([Index("ix_orders_status", "status")] if o["index"] else []),
        *([UniqueConstraint("account_id", "status", name="uq_orders_account_status")] if o["unique"] else []),
        *([CheckConstraint("amount >= 0", name="ck_orders_amount")] if o["check"] else []),
    )
    Table("events", metadata, Column("id", UUID(as_uuid=True), nullable=False),
          Column("at", TIMESTAMP(timezone=True), nullable=False),
          PrimaryKeyConstraint("id", "at", name="events_pkey"), postgresql_partition_by="RANGE (at)")
    if o["legacy"]:
        Table("legacy", metadata, Column("id", Integer, primary_key=True), Column("name", Text))
    return metadata


PARTITIONS = (
    "CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    "CREATE TABLE events_2027 PARTITION OF events FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')",
    "CREATE TABLE events_default PARTITION OF events DEFAULT",
)

# name -> (changes in the live database, changes in the declaration, diff Alembic must find)
SCENARIOS = {
    "no difference": ({}, {}, None),
    "added table": ({}, {"legacy": True}, "add_table"),
    "dropped table": ({"legacy": True}, {}, "remove_table"),
    "added column": ({}, {"note": True}, "add_column"),
    "dropped column": ({"note": True}, {}, "remove_column"),
    "altered type": ({}, {"status_length": 40}, "modify_type"),
    "altered nullable": ({}, {"status_nullable": True}, "modify_nullable"),
    "altered server default": ({}, {"status_default": "'old'"}, "modify_default"),
    "added server default": ({}, {"shipped_default": "'no'"}, "modify_default"),
    "same default, another pair": ({"shipped_default": "'new'"}, {"shipped_default": "'old'"}, "modify_default"),
    "added index": ({"index": False}, {}, "add_index"),
    "dropped index": ({}, {"index": False}, "remove_index"),
    "added unique constraint": ({"unique": False}, {}, "add_constraint"),
    "dropped unique constraint": ({}, {"unique": False}, "remove_constraint"),
    "added foreign key": ({"fk": False}, {}, "add_fk"),
    "dropped foreign key": ({}, {"fk": False}, "remove_fk"),
    "added check constraint": ({"check": False}, {}, "add_constraint"),
    "dropped check constraint": ({}, {"check": False}, "remove_constraint"),
    "table comment": ({}, {"comment": "who buys"}, "add_table_comment"),
}


def bulk_plugin() -> str:
    if BULK_PLUGIN not in _all_plugins:
        Plugin.setup_plugin_from_module(bulk_tables, BULK_PLUGIN)
    return BULK_PLUGIN




def build_live(url: str, metadata: MetaData, *statements: str) -> None:
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("CREATE SEQUENCE IF NOT EXISTS order_refs"))
        metadata.create_all(conn)
        for statement in statements:
            conn.execute(text(statement))
    engine.dispose()


def diffs(url: str, settings, metadata: MetaData, plugins: list[str], include_object=None, **opts) -> list:
    """compare_metadata with sovren-db's include_object (partitions are not user tables), and ``include_object``."""
    engine = create_engine(sqlalchemy_url(url), poolclass=NullPool)
    with engine.connect() as conn:
        sovren_include = Runtime(settings).include_object(conn)

        def include(*args) -> bool:
            return sovren_include(*args) and (include_object is None or include_object(*args))

        context = MigrationContext.configure(conn, opts={
            "target_metadata": metadata, "compare_type": True, "compare_server_default": True,
            "include_object": include, "autogenerate_plugins": plugins, **opts})
        found = compare_metadata(context, metadata)
    engine.dispose()
    return found


def both(url: str, settings, metadata: MetaData, **opts) -> tuple[list, list]:
    return (diffs(url, settings, metadata, ALEMBIC, **opts),
            diffs(url, settings, metadata, ALEMBIC + [bulk_plugin()], **opts))


def comparable(value):
    """A diff tuple made of comparable values (SQLAlchemy objects compare by identity)."""
    if isinstance(value, (list, tuple)):
        return type(value)(comparable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, comparable(v)) for k, v in value.items()))
    if isinstance(value, Table):
        return ("table", value.schema, value.name, tuple(comparable(c) for c in value.columns), value.comment)
    if isinstance(value, Column):
        default = value.server_default
        return ("column", value.table.name if value.table is not None else None, value.name, repr(value.type),
                value.nullable, str(getattr(default, "arg", None)))
    if isinstance(value, Index):
        return ("index", value.name, value.table.name, tuple(str(e) for e in value.expressions), value.unique)
    if hasattr(value, "columns") and hasattr(value, "name"):  # constraints
        return (type(value).__name__, value.name, value.table.name, tuple(c.name for c in value.columns),
                str(getattr(value, "sqltext", "")))
    if hasattr(value, "arg"):  # DefaultClause
        return ("default", str(value.arg))
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)


def as_multiset(found: list) -> Counter:
    return Counter(repr(comparable(d)) for d in found)


def names(found: list) -> set[str]:
    flat = [d for entry in found for d in (entry if isinstance(entry, list) else [entry])]
    return {d[0] for d in flat}


@pytest.fixture
def settings(project):
    return load_settings(project)


@pytest.mark.parametrize("case", sorted(SCENARIOS))
def test_same_diff_as_alembic(pg_url, settings, case):
    live, wanted, expected = SCENARIOS[case]
    build_live(pg_url, declared(**live), *PARTITIONS)
    alembic_found, bulk_found = both(pg_url, settings, declared(**wanted))
    assert as_multiset(bulk_found) == as_multiset(alembic_found)
    if expected is None:
        assert bulk_found == []
    else:
        assert expected in names(bulk_found), bulk_found


def test_include_name_and_include_object_are_honoured(pg_url, settings):
    build_live(pg_url, declared(legacy=True, note=True), *PARTITIONS)
    metadata = declared(comment="kept out")

    def include_name(name, type_, parent_names):
        return not (type_ == "table" and name == "legacy")

    def include_object(obj, name, type_, reflected, compare_to):
        return not (type_ == "table" and name == "accounts") and not (type_ == "column" and name == "note")

    alembic_found, bulk_found = both(pg_url, settings, metadata, include_name=include_name,
                                     include_object=include_object)
    assert as_multiset(bulk_found) == as_multiset(alembic_found)
    assert bulk_found == []  # legacy, accounts' comment and orders.note are all filtered out


def test_undeclared_partitions_are_not_tables_and_are_never_read(pg_url, settings):
    build_live(pg_url, declared(), *PARTITIONS)
    with recorded() as seen:
        found = diffs(pg_url, settings, declared(), ALEMBIC + [bulk_plugin()])
    assert found == []
    assert not any("events_2026" in s or "events_default" in s for s in seen)


def _many_tables(count: int) -> MetaData:
    metadata = declared()
    for i in range(count):
        Table(f"extra_{i}", metadata, Column("id", Integer, primary_key=True),
              Column("state", String(10), nullable=False, server_default=text("'new'")),
              Column("payload", JSONB), Index(f"ix_extra_{i}_state", "state"))
    return metadata


def _queries(url: str, settings, metadata: MetaData, plugins: list[str]) -> tuple[int, list]:
    with recorded() as seen:
        found = diffs(url, settings, metadata, plugins)
    return len(seen), found


@pytest.mark.parametrize("count", [3, 12])
def test_queries_do_not_grow_with_tables(pg_url, settings, count):
    """SERIAL keys and differently written defaults cost Alembic one query per column; not here."""
    build_live(pg_url, _many_tables(count), *PARTITIONS)
    bulk_queries, found = _queries(pg_url, settings, _many_tables(count), ALEMBIC + [bulk_plugin()])
    alembic_queries, alembic_found = _queries(pg_url, settings, _many_tables(count), ALEMBIC)
    assert found == [] and alembic_found == []
    assert bulk_queries <= 16
    assert alembic_queries >= bulk_queries + 2 * count  # a SERIAL and a default per extra table


def test_table_options_are_sqlalchemys(pg_url):
    build_live(pg_url, declared(), *PARTITIONS,
               "CREATE TABLE base_a (a int)", "CREATE TABLE base_b (b int)",
               "CREATE TABLE heir (c int) INHERITS (base_b, base_a)",
               "CREATE TABLE tuned (id int) WITH (fillfactor = 70, autovacuum_enabled = false)")
    engine = create_engine(sqlalchemy_url(pg_url), poolclass=NullPool)
    names = ["accounts", "orders", "events", "events_2026", "events_default", "heir", "tuned", "missing"]
    with engine.connect() as conn:
        ours = bulk_tables.table_options(conn, None, names)
        sqlalchemys = inspect(conn).get_multi_table_options(filter_names=names)
    engine.dispose()
    assert ours == sqlalchemys
    assert ours[(None, "heir")]["postgresql_inherits"] == ("base_b", "base_a")
    assert ours[(None, "tuned")]["postgresql_with"] == {"fillfactor": "70", "autovacuum_enabled": "false"}


def test_read_catalog_is_a_handful_of_queries(project, pg_url):
    commands.migrate(load_settings(project))
    engine = create_engine(sqlalchemy_url(pg_url), poolclass=NullPool)
    with engine.connect() as conn, recorded() as seen:
        catalog = read_catalog(conn, {"sovren_app", "sovren_readonly", "sovren_migrator"})
    engine.dispose()
    assert "operations_default" in catalog.partition_names
    assert len(seen) <= 10


def test_sovren_plugin_registers_the_bulk_comparator_first():
    install(("postgres",))
    registry = _all_plugins["sovren_db.postgres"].autogenerate_comparators._registry
    assert (bulk_tables.compare_tables, "tables") in registry[("schema", "postgresql", DispatchPriority.FIRST)]


def test_check_names_table_drift_and_ignores_new_partitions(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings)
    engine = create_engine(sqlalchemy_url(pg_url), poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE operations_p2099_01 PARTITION OF operations "
                          "FOR VALUES FROM ('2099-01-01') TO ('2099-02-01')"))
        conn.execute(text("CREATE TABLE stray (id integer PRIMARY KEY)"))
        conn.execute(text("ALTER TABLE users ADD COLUMN nickname text"))
    engine.dispose()
    out = commands.check(settings)
    sentences = [f.sentence() for f in out.findings]
    assert out.exit_code == 1
    assert any("stray" in s for s in sentences), sentences
    assert any("nickname" in s for s in sentences), sentences
    assert not any("operations_p2099_01" in s for s in sentences), sentences
    assert len(out.findings) == 2, sentences
