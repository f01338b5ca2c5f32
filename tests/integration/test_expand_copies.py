"""An expand copies the old column's indexes, unique and check constraints to the new column
(concurrently, per partition) and the contract gives the copies the old names; a primary key,
foreign key or exclusion constraint on the column is refused before anything runs."""

from __future__ import annotations

import psycopg
import pytest
from click.testing import CliRunner

from sovren_db.cli.main import cli
from tests.integration.conftest import add_revision

pytestmark = pytest.mark.postgres

TABLE = """    op.create_table("prices", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("amount", sa.Integer, nullable=False), sa.Column("kind", sa.Text))
    op.execute("INSERT INTO prices (amount, kind) SELECT g, CASE WHEN g % 2 = 0 THEN 'even' END "
               "FROM generate_series(1, 500) g")
    op.execute("CREATE INDEX prices_amount_desc ON prices (amount DESC NULLS LAST, kind)")
    op.execute("CREATE INDEX prices_even_amount ON prices (kind) INCLUDE (amount) WHERE amount % 2 = 0")
    op.execute("CREATE INDEX prices_amount_text ON prices (lower(amount::text)) WHERE kind = 'amount'")
    op.execute("ALTER TABLE prices ADD CONSTRAINT prices_amount_key UNIQUE (amount)")
    op.execute("ALTER TABLE prices ADD CONSTRAINT prices_amount_positive CHECK (amount > 0)")"""
CHANGE = '"prices", "amount", type_=sa.BigInteger(), version="v2"'
INDEXES = """SELECT c.relname, pg_get_indexdef(c.oid), i.indisvalid FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = '{table}'::regclass AND NOT i.indisprimary ORDER BY 1"""
CHECKS = """SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint
WHERE conrelid = 'prices'::regclass AND contype IN ('c', 'u') ORDER BY 1"""


def migrate() -> CliRunner:
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output
    return result


def rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchall()


def test_an_expand_copies_indexes_and_constraints_and_the_contract_gives_them_the_old_names(project, pg_url):
    add_revision(project, "c1table", TABLE)
    add_revision(project, "c2expand", f"    op.expand_column({CHANGE})")
    migrate()
    indexes = {name: (definition, valid) for name, definition, valid in rows(pg_url, INDEXES.format(table="prices"))}
    assert indexes["_new_prices_amount_desc"] == (
        "CREATE INDEX _new_prices_amount_desc ON public.prices USING btree (_new_amount DESC NULLS LAST, kind)", True)
    assert indexes["_new_prices_even_amount"][0] == ("CREATE INDEX _new_prices_even_amount ON public.prices "
                                                     "USING btree (kind) INCLUDE (_new_amount) "
                                                     "WHERE ((_new_amount % (2)::bigint) = 0)")
    assert indexes["_new_prices_amount_text"][0].endswith("(lower((_new_amount)::text)) WHERE (kind = 'amount'::text)")
    assert indexes["_new_prices_amount_key"] == (
        "CREATE UNIQUE INDEX _new_prices_amount_key ON public.prices USING btree (_new_amount)", True)
    assert ("_new_prices_amount_positive", "CHECK ((_new_amount > 0))", True) in rows(pg_url, CHECKS)
    with pytest.raises(psycopg.errors.UniqueViolation):  # the copy already guards the new column
        rows(pg_url, "INSERT INTO sovren_v2.prices (amount, kind) VALUES (7, 'dup') RETURNING id")

    add_revision(project, "c3contract", f"    op.contract_column({CHANGE})")
    migrate()
    assert [r[0] for r in rows(pg_url, INDEXES.format(table="prices"))] == [
        "prices_amount_desc", "prices_amount_key", "prices_amount_text", "prices_even_amount"]
    assert rows(pg_url, CHECKS) == [("prices_amount_key", "UNIQUE (amount)", True),
                                    ("prices_amount_positive", "CHECK ((amount > 0))", True)]
    assert rows(pg_url, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                        "WHERE attrelid = 'prices'::regclass AND attname = 'amount'") == [("bigint",)]
    with pytest.raises(psycopg.errors.CheckViolation):
        rows(pg_url, "INSERT INTO prices (amount) VALUES (-1) RETURNING id")


PARTITIONED = """    op.execute("CREATE TABLE events (id int, at date NOT NULL, score int, PRIMARY KEY (id, at)) "
               "PARTITION BY RANGE (at)")
    op.execute("CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')")
    op.execute("CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')")
    op.execute("INSERT INTO events SELECT g, DATE '2025-06-01' + g, g FROM generate_series(1, 400) g")
    op.execute("CREATE INDEX events_score ON events (score)")"""


def test_on_a_partitioned_table_the_copy_is_built_per_partition_and_swapped(project, pg_url):
    add_revision(project, "p1table", PARTITIONED)
    add_revision(project, "p2expand", '    op.expand_column("events", "score", type_=sa.BigInteger(), version="v2")')
    migrate()
    copy = rows(pg_url, "SELECT c.relkind, count(inh.inhrelid), bool_and(i.indisvalid) FROM pg_class c "
                        "JOIN pg_inherits inh ON inh.inhparent = c.oid JOIN pg_index i ON i.indexrelid = inh.inhrelid "
                        "WHERE c.relname = '_new_events_score' GROUP BY 1")
    assert copy == [("I", 2, True)]  # a partitioned index, one valid built copy attached per partition
    add_revision(project, "p3contract", '    op.contract_column("events", "score", type_=sa.BigInteger(), version="v2")')
    migrate()
    assert rows(pg_url, "SELECT pg_get_indexdef('events_score'::regclass)") == [
        ("CREATE INDEX events_score ON ONLY public.events USING btree (score)",)]


def test_an_expand_of_a_column_in_a_foreign_key_is_refused_before_anything_runs(project, pg_url):
    add_revision(project, "f1table", TABLE + """
    op.create_table("orders", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("price_amount", sa.Integer, sa.ForeignKey("prices.amount")))""")
    add_revision(project, "f2expand", f"    op.expand_column({CHANGE})")
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 2
    assert "amount is part of the foreign key orders_price_amount_fkey, which an expand does not carry over" \
        in result.output
    assert rows(pg_url, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'prices'::regclass "
                        "AND attname = '_new_amount'") == [(0,)]
