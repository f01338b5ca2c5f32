"""The fast comparison (postgres/table_forms.py) gives the same answer as Alembic's on every table.

Each case first lets the fast path see the database in step (so that every
table's pair of forms is remembered and skipped next time), then changes the
live catalog or the declaration the way one kind of drift does, and compares
the fast answer with the exact one (``check --exact``: Alembic on every table).
A change the live form missed would show here as drift the fast path hides.
"""

from __future__ import annotations

import random

import psycopg
import pytest
from sqlalchemy import Column, Enum, ForeignKey, Identity, Integer, MetaData, String, Table, text
from sqlalchemy.dialects.postgresql import DOMAIN

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.postgres import table_forms
from tests.adopt.random_schema import generate
from tests.adopt.roundtrip import empty_project, run_sql, scalar, settings_for
from tests.integration.test_bulk_tables import (
    ALEMBIC, PARTITIONS, SCENARIOS, as_multiset, build_live, bulk_plugin, declared, diffs,
)
from tests.integration.test_postgres_chain import DRIFT

pytestmark = pytest.mark.postgres

# name -> (statements run on the live database, a diff Alembic finds, or None where it finds none)
LIVE_CHANGES = {
    "added column": (["ALTER TABLE orders ADD COLUMN note text"], "remove_column"),
    "dropped column": (["ALTER TABLE orders DROP COLUMN shipped"], "add_column"),
    "altered type": (["ALTER TABLE orders ALTER COLUMN status TYPE varchar(40)"], "modify_type"),
    "nullability": (["ALTER TABLE orders ALTER COLUMN status DROP NOT NULL"], "modify_nullable"),
    "default changed": (["ALTER TABLE orders ALTER COLUMN status SET DEFAULT 'old'"], "modify_default"),
    "default dropped": (["ALTER TABLE orders ALTER COLUMN status DROP DEFAULT"], "modify_default"),
    "index dropped": (["DROP INDEX ix_orders_status"], "add_index"),
    "index added": (["CREATE INDEX ix_extra ON orders (amount)"], "remove_index"),
    "partial index": (["CREATE INDEX ix_partial ON orders (status) WHERE amount > 0"], "remove_index"),
    "expression index": (["CREATE INDEX ix_expr ON orders (lower(status))"], "remove_index"),
    "unique index": (["CREATE UNIQUE INDEX ix_unique_ref ON orders (ref)"], "remove_index"),
    "index on another column, same name": (
        ["DROP INDEX ix_orders_status", "CREATE INDEX ix_orders_status ON orders (shipped)"], "add_index"),
    "index made partial, same name": (
        ["DROP INDEX ix_orders_status", "CREATE INDEX ix_orders_status ON orders (status) WHERE amount > 0"], None),
    "unique constraint dropped": (["ALTER TABLE orders DROP CONSTRAINT uq_orders_account_status"], "add_constraint"),
    "foreign key dropped": (["ALTER TABLE orders DROP CONSTRAINT fk_orders_account"], "add_fk"),
    "foreign key on delete": (["ALTER TABLE orders DROP CONSTRAINT fk_orders_account",
                               "ALTER TABLE orders ADD CONSTRAINT fk_orders_account FOREIGN KEY (account_id) "
                               "REFERENCES accounts (id) ON DELETE CASCADE"], None),
    "check dropped": (["ALTER TABLE orders DROP CONSTRAINT ck_orders_amount"], None),
    "check altered": (["ALTER TABLE orders DROP CONSTRAINT ck_orders_amount",
                       "ALTER TABLE orders ADD CONSTRAINT ck_orders_amount CHECK (amount > 1)"], None),
    "table comment": (["COMMENT ON TABLE accounts IS 'who buys'"], "remove_table_comment"),
    "column comment": (["COMMENT ON COLUMN orders.status IS 'where it is'"], "modify_comment"),
    "serial sequence no longer owned": (["ALTER SEQUENCE orders_id_seq OWNED BY NONE"], None),
    "sequence of a default renamed": (["ALTER SEQUENCE order_refs RENAME TO order_refs_old",
                                       "CREATE SEQUENCE order_refs"], None),  # Alembic: nextval() = nextval()
    "index left invalid": (["UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_orders_status'::regclass"],
                           None),
    "referenced column renamed": (["ALTER TABLE accounts RENAME COLUMN id TO account_key"], None),
    "partition added": (["CREATE TABLE events_2028 PARTITION OF events FOR VALUES FROM ('2028-01-01') "
                         "TO ('2029-01-01')"], None),
    "partition dropped": (["DROP TABLE events_2027"], None),
    "undeclared table": (["CREATE TABLE stray (id integer PRIMARY KEY)"], "remove_table"),
    "declared table dropped": (["DROP TABLE accounts CASCADE"], "add_table"),
}

# The same, on a table with an enum, an identity and a default calling a function of the database's own.
LENT_CHANGES = {
    "enum label added": ["ALTER TYPE mood ADD VALUE 'elated'"],
    "enum renamed": ["ALTER TYPE mood RENAME TO mood_2"],
    "function of a default renamed": ["ALTER FUNCTION start_level() RENAME TO first_level",
                                      "CREATE FUNCTION start_level() RETURNS integer LANGUAGE sql AS 'SELECT 2'"],
    "identity options": ["ALTER TABLE moods ALTER COLUMN id SET INCREMENT BY 5"],
    "identity dropped": ["ALTER TABLE moods ALTER COLUMN id DROP IDENTITY"],
    "collation of a column": ["ALTER TABLE moods ALTER COLUMN label TYPE varchar(20) COLLATE \"C\""],
    "domain constraint": ["ALTER DOMAIN short_label ADD CONSTRAINT short_label_not_empty CHECK (VALUE <> '')"],
    "domain default": ["ALTER DOMAIN short_label SET DEFAULT 'none'"],
}


def moods() -> MetaData:
    metadata = MetaData()
    Table("moods", metadata, Column("id", Integer, Identity(), primary_key=True),
          Column("mood", Enum("low", "high", name="mood")),
          Column("level", Integer, server_default=text("start_level()")),
          Column("label", String(20)), Column("tag", DOMAIN("short_label", String(20))))
    return metadata


def build_moods(url: str) -> None:
    run_sql(url, "CREATE FUNCTION start_level() RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT 1'")
    build_live(url, moods())


@pytest.fixture
def settings(project):
    return load_settings(project)


@pytest.fixture(autouse=True)
def nothing_remembered():
    table_forms.forget()
    yield
    table_forms.forget()


def fast(url: str, settings, metadata: MetaData) -> list:
    return diffs(url, settings, metadata, ALEMBIC + [bulk_plugin()])


def exact(url: str, settings, metadata: MetaData) -> list:
    with table_forms.exact_compare():
        return diffs(url, settings, metadata, ALEMBIC + [bulk_plugin()])


def primed(url: str, settings, metadata: MetaData) -> None:
    """Compare once in step: every declared table's pair is remembered, and the next comparison skips it."""
    assert fast(url, settings, metadata) == []
    assert len(table_forms.VERIFIED) == len(metadata.tables)


def run(url: str, statements: list[str]) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def test_a_second_comparison_in_step_reads_no_table_through_sqlalchemy(pg_url, settings):
    from tests.integration.recording import recorded

    build_live(pg_url, declared(), *PARTITIONS)
    primed(pg_url, settings, declared())
    with recorded() as seen:
        assert fast(pg_url, settings, declared()) == []
    assert not any("pg_catalog.pg_attribute" in s and "attname" in s for s in seen), seen  # get_multi_columns


@pytest.mark.parametrize("case", sorted(LIVE_CHANGES))
def test_live_changes_give_the_exact_answer(pg_url, settings, case):
    statements, expected = LIVE_CHANGES[case]
    build_live(pg_url, declared(), *PARTITIONS)
    primed(pg_url, settings, declared())
    run(pg_url, statements)
    found, wanted = fast(pg_url, settings, declared()), exact(pg_url, settings, declared())
    assert as_multiset(found) == as_multiset(wanted)
    flat = {d[0] for entry in wanted for d in (entry if isinstance(entry, list) else [entry])}
    assert expected is None or expected in flat, wanted


@pytest.mark.parametrize("case", sorted(SCENARIOS))
def test_declaration_changes_give_the_exact_answer(pg_url, settings, case):
    _, changes, _ = SCENARIOS[case]
    build_live(pg_url, declared(), *PARTITIONS)
    primed(pg_url, settings, declared())
    found, wanted = fast(pg_url, settings, declared(**changes)), exact(pg_url, settings, declared(**changes))
    assert as_multiset(found) == as_multiset(wanted)


@pytest.mark.parametrize("case", sorted(LENT_CHANGES))
def test_names_lent_by_other_objects_give_the_exact_answer(pg_url, settings, case):
    build_moods(pg_url)
    primed(pg_url, settings, moods())
    run(pg_url, LENT_CHANGES[case])
    assert as_multiset(fast(pg_url, settings, moods())) == as_multiset(exact(pg_url, settings, moods()))


def _sentences(outcome) -> list[str]:
    return [f.sentence() for f in outcome.findings]


SOVREN_TABLE_DRIFT = {
    "added column": "ALTER TABLE users ADD COLUMN nickname text",
    "dropped index": "DROP INDEX ix_payments_transaction_id",
    "default changed": "ALTER TABLE subscriptions ALTER COLUMN status SET DEFAULT 'trialing'",
    "column comment": "COMMENT ON COLUMN users.email IS 'how to reach them'",
    "nullability": "ALTER TABLE payments ALTER COLUMN transaction_id SET NOT NULL",
}


@pytest.mark.parametrize("case", sorted(DRIFT) + [f"table: {c}" for c in sorted(SOVREN_TABLE_DRIFT)])
def test_check_on_sovren_gives_the_exact_findings(project, pg_url, case):
    statement = SOVREN_TABLE_DRIFT[case[7:]] if case.startswith("table: ") else DRIFT[case][0]
    settings = load_settings(project)
    commands.migrate(settings)
    clean = commands.check(settings)
    assert clean.exit_code == 0 and table_forms.VERIFIED, _sentences(clean)
    run(pg_url, [statement])
    found, wanted = commands.check(settings), commands.check(settings, exact=True)
    assert _sentences(found) == _sentences(wanted)
    assert found.exit_code == wanted.exit_code


def test_a_changed_server_default_is_said_in_sql_on_both_sides(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings)
    run(pg_url, [SOVREN_TABLE_DRIFT["default changed"]])
    said = " ".join(_sentences(commands.check(settings)))
    assert "server default is 'trialing'::character varying in the database, declared 'active'" in said, said
    assert " at 0x" not in said and "DefaultClause" not in said


def _random_drift(seed: int, tables: list[str]) -> list[str]:
    rng = random.Random(seed)
    table = rng.choice(tables)
    return rng.sample([
        f"ALTER TABLE {table} ADD COLUMN zz_{seed} integer DEFAULT 7",
        f"COMMENT ON TABLE {table} IS 'drifted'",
        f"CREATE INDEX ix_zz_{seed} ON {table} (id) WHERE id > 10",
        f"ALTER TABLE {table} ALTER COLUMN id SET STATISTICS 50",
        f"CREATE TABLE zz_stray_{seed} (id integer)",
    ], 2)


@pytest.mark.parametrize("seed", range(5))
def test_random_adopted_schemas_give_the_exact_findings(seed, pg_url, tmp_path):
    run_sql(pg_url, generate(seed, scalar(pg_url, "SELECT current_date")))
    project = empty_project(tmp_path / "project")
    settings = settings_for(project, pg_url)
    commands.inspect(settings)
    commands.baseline(settings)
    commands.stamp(settings, "head")
    assert _sentences(commands.check(settings)) == _sentences(commands.check(settings, exact=True))
    tables = [t for t in scalar(pg_url, "SELECT string_agg(relname, ',') FROM pg_class WHERE relkind IN ('r', 'p') "
                                        f"AND NOT relispartition AND relname LIKE 't{seed}\\_%'").split(",")]
    run(pg_url, _random_drift(seed, tables))
    found, wanted = commands.check(settings), commands.check(settings, exact=True)
    assert _sentences(found) == _sentences(wanted)
    assert found.exit_code == wanted.exit_code == 1


def test_a_catalog_the_role_cannot_read_leaves_every_table_to_alembic(pg_url, settings):
    """pg_operator is read by the fast path only: refused, the comparison goes on as Alembic's, and is still right."""
    from sqlalchemy.engine import make_url

    role = f"fc_reader_{random.randrange(10**9)}"
    build_live(pg_url, declared(), *PARTITIONS)
    run(pg_url, [f"CREATE ROLE {role} LOGIN PASSWORD 'fc-reader-secret'",
                 "REVOKE SELECT ON pg_catalog.pg_operator FROM PUBLIC"])
    url = make_url(pg_url).set(username=role, password="fc-reader-secret").render_as_string(hide_password=False)
    try:
        assert fast(url, settings, declared()) == [] and not table_forms.VERIFIED
        run(pg_url, ["ALTER TABLE orders ADD COLUMN note text"])
        found = fast(url, settings, declared())
        assert as_multiset(found) == as_multiset(exact(pg_url, settings, declared())) and found
    finally:
        run(pg_url, ["GRANT SELECT ON pg_catalog.pg_operator TO PUBLIC", f"DROP ROLE {role}"])


def test_a_refused_catalog_is_named_with_its_grant():
    from sqlalchemy.exc import ProgrammingError

    refused = ProgrammingError("SELECT", {}, Exception("permission denied for table pg_operator"))
    assert table_forms._reason(refused) == ("permission denied for table pg_operator: "
                                            "GRANT SELECT ON pg_catalog.pg_operator TO the role that checks")


def test_check_exact_on_the_command_line(project, pg_url):
    from click.testing import CliRunner

    from sovren_db.cli.main import cli

    assert CliRunner().invoke(cli, ["migrate"], catch_exceptions=False).exit_code == 0
    run(pg_url, ["ALTER TABLE users ADD COLUMN nickname text"])
    fast_out = CliRunner().invoke(cli, ["check"], catch_exceptions=False)
    exact_out = CliRunner().invoke(cli, ["check", "--exact"], catch_exceptions=False)
    assert fast_out.exit_code == exact_out.exit_code == 1
    assert "column users.nickname: in database but not declared" in exact_out.output
    assert fast_out.output == exact_out.output


def billing() -> MetaData:
    metadata = declared()
    Table("invoices", metadata, Column("id", Integer, primary_key=True),
          Column("account_id", Integer, ForeignKey("accounts.id", name="fk_invoices_account")),
          Column("state", String(10), nullable=False, server_default=text("'open'")), schema="billing")
    return metadata


@pytest.mark.parametrize("statement", ["ALTER TABLE billing.invoices ALTER COLUMN state SET DEFAULT 'paid'",
                                       "ALTER TABLE billing.invoices ADD COLUMN note text",
                                       "ALTER TABLE orders ADD COLUMN note text"])
def test_tables_of_another_schema_give_the_exact_answer(pg_url, settings, statement):
    def include_name(name, type_, parent_names) -> bool:  # as env.py's _schemas_option
        return type_ != "schema" or name in (None, "billing")

    run(pg_url, ["CREATE SCHEMA billing"])
    build_live(pg_url, billing(), *PARTITIONS)
    options = {"include_schemas": True, "include_name": include_name}
    assert diffs(pg_url, settings, billing(), ALEMBIC + [bulk_plugin()], **options) == []
    assert len(table_forms.VERIFIED) == len(billing().tables)
    run(pg_url, [statement])
    found = diffs(pg_url, settings, billing(), ALEMBIC + [bulk_plugin()], **options)
    with table_forms.exact_compare():
        wanted = diffs(pg_url, settings, billing(), ALEMBIC + [bulk_plugin()], **options)
    assert as_multiset(found) == as_multiset(wanted) and wanted
