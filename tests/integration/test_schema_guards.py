"""What the database refuses (card numbers) and what `check` finds in the catalog beyond drift."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.postgres.checks import leads

pytestmark = pytest.mark.postgres


@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return pg_url


def codes(project, code: str) -> list[str]:
    return [f.object for f in commands.check(load_settings(project)).findings if f.code == code]


def test_an_index_serves_a_foreign_key_when_it_leads_with_the_key_columns():
    assert leads(["user_id", "created_at"], ["user_id"])
    assert leads(["b", "a", "c"], ["a", "b"])
    assert not leads(["created_at", "user_id"], ["user_id"])
    assert not leads(["a"], ["a", "b"])


def test_every_foreign_key_of_the_sovren_schema_leads_an_index(project, migrated):
    assert codes(project, "fk-unindexed") == []


def test_check_names_a_foreign_key_whose_index_was_dropped(project, migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("DROP INDEX ix_payments_transaction_id")
        conn.execute("CREATE INDEX ix_partial ON payments (transaction_id) WHERE amount > 0")  # serves no DELETE
        # what a CREATE INDEX CONCURRENTLY killed half-way leaves: an index no query uses
        conn.execute("UPDATE pg_index SET indisvalid = false WHERE indexrelid = 'ix_transactions_subscription_id'"
                     "::regclass")
    outcome = commands.check(load_settings(project))
    found = [f for f in outcome.findings if f.code == "fk-unindexed"]
    assert outcome.exit_code == 1
    assert [f.object for f in found] == ["foreign key payments_transaction_id_fkey on payments",
                                         "foreign key transactions_subscription_id_fkey on transactions"]
    assert "every delete from transactions scans payments" in found[0].message


# The standard test numbers, written as people write them, and inside text.
CARD_NUMBERS = ("4111 1111 1111 1111", "5500-0055-5555-5559", "378282246310005", "4111111111111111",
                "4111 - 1111 - 1111 - 1111", "paid with 5500 0055 5555 5559, thanks", "tok:378282246310005:x")
# Look-alikes that must be accepted: Luhn failures, too short, too long, ids, dates, tokens.
LOOK_ALIKES = ("4111 1111 1111 1112", "ORD-5500-0055-5555-5558", "123456789012", "79927398713",
               "12345678901234567897", "3f2504e0-4f89-11d3-9a0c-0305e82c3301", "2026-12-05 13:06:52",
               "+1 555-010-4477", "tok_Zm9vYmFyMTIzNDU2Nzg5MA", "stripe", "", None,
               "d41d8c4111111111111111e9800998ecf8427e", "tok_4111111111111111x")  # inside hex digests, tokens


def has_card_number(conn: psycopg.Connection, value: str | None) -> bool:
    return conn.execute("SELECT sovren_has_card_number(%s)", (value,)).fetchone()[0]


def test_the_function_finds_card_numbers_and_only_them(migrated):
    with psycopg.connect(migrated) as conn:
        assert {v: has_card_number(conn, v) for v in CARD_NUMBERS} == {v: True for v in CARD_NUMBERS}
        assert {v: has_card_number(conn, v) for v in LOOK_ALIKES} == {v: False for v in LOOK_ALIKES}
        volatility = conn.execute("SELECT provolatile FROM pg_proc WHERE proname = 'sovren_has_card_number'")
        assert volatility.fetchone() == ("i",)
        # inlined: a CHECK on a value without a run of 13 digits costs one regular expression, no call
        plan = conn.execute("EXPLAIN (VERBOSE, COSTS OFF) SELECT sovren_has_card_number(x::text) "
                            "FROM generate_series(1, 2) x")
        assert "sovren_luhn_card_run" in " ".join(r[0] for r in plan)


def add_user(conn: psycopg.Connection) -> uuid.UUID:
    user = uuid.uuid4()
    conn.execute("INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
                 "VALUES (%s, %s, 'x', %s, 'pro')", (user, f"u{user.hex[:8]}", f"{user.hex[:8]}@x.io"))
    return user


PAYMENT = ("INSERT INTO payments (payment_id, user_id, amount, currency, provider, provider_token, card_last4) "
           "VALUES (%s, %s, 1, 'EUR', %s, %s, %s)")


@pytest.mark.parametrize("column", ["provider", "provider_token"])
def test_payments_refuse_a_card_number_in_any_text_column_and_do_not_echo_it(migrated, column):
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn)
        conn.execute("SET ROLE sovren_app")
        conn.execute("SELECT set_config('app.user_id', %s, false)", (str(user),))
        for number in ("4111 1111 1111 1111", "5500-0055-5555-5559", "378282246310005"):
            values = {"provider": "stripe", "provider_token": "tok_1", column: number[:50]}
            with pytest.raises(psycopg.errors.CheckViolation) as refused:
                conn.execute(PAYMENT, (uuid.uuid4(), user, values["provider"], values["provider_token"], "4242"))
            text = f"{refused.value} {refused.value.diag.message_detail or ''}"
            assert f"payments_{column}_no_card_number" in text and number not in text
        for look_alike in ("4111 1111 1111 1112", "123456789012"):
            values = {"provider": "stripe", "provider_token": "tok_1", column: look_alike}
            conn.execute(PAYMENT, (uuid.uuid4(), user, values["provider"], values["provider_token"], "4242"))


@pytest.mark.parametrize("last4", ["abcd", "42", " 424", "４２４２", "12345"])
def test_card_last4_is_four_digits(migrated, last4):
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = add_user(conn)
        conn.execute(PAYMENT, (uuid.uuid4(), user, "stripe", "tok", "0005"))
        conn.execute(PAYMENT, (uuid.uuid4(), user, "stripe", "tok", None))
        with pytest.raises((psycopg.errors.CheckViolation, psycopg.errors.StringDataRightTruncation)):
            conn.execute(PAYMENT, (uuid.uuid4(), user, "stripe", "tok", last4))


@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")  # reading the NOT VALID constraint warned once
def test_check_names_a_pci_column_whose_constraint_is_missing_or_not_validated(project, migrated):
    assert codes(project, "pci-unchecked") == []
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("ALTER TABLE payments DROP CONSTRAINT payments_provider_no_card_number")
        conn.execute("ALTER TABLE payments DROP CONSTRAINT payments_provider_token_no_card_number")
        conn.execute("ALTER TABLE payments ADD CONSTRAINT t CHECK (NOT sovren_has_card_number(provider_token)) "
                     "NOT VALID")
        conn.execute("ALTER TABLE payments DROP CONSTRAINT payments_card_last4_four_digits")
        conn.execute("ALTER TABLE payments ADD COLUMN note text")
    assert codes(project, "pci-unchecked") == ["column payments.provider", "column payments.provider_token",
                                               "column payments.note", "column payments.card_last4"]


@pytest.mark.filterwarnings("error::sqlalchemy.exc.SAWarning")
def test_check_reads_not_valid_and_no_inherit_check_constraints_without_a_warning(project, migrated):
    """PostgreSQL reports these options as a CHECK constraint's dialect_options, which SQLAlchemy's reflection
    passed on as a keyword of no dialect (SAWarning); postgres/tables.py gives not_valid as postgresql_not_valid
    and leaves out no_inherit, which CheckConstraint would refuse (ArgumentError). Neither is drift."""
    settings = load_settings(project)
    before = commands.check(settings)
    with psycopg.connect(migrated, autocommit=True) as conn:
        conn.execute("ALTER TABLE users ADD CONSTRAINT users_named CHECK (username <> '') NOT VALID")
        conn.execute("ALTER TABLE users ADD CONSTRAINT users_mailed CHECK (email <> '') NO INHERIT")
        assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conname IN ('users_named', 'users_mailed') "
                            "AND conrelid = 'users'::regclass").fetchone()[0] == 2
    after = commands.check(settings)
    assert after.exit_code == before.exit_code
    assert [(f.code, f.object) for f in after.findings] == [(f.code, f.object) for f in before.findings]
