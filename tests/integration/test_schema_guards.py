"""What `check` finds in the catalog beyond drift: foreign keys without an index."""

from __future__ import annotations

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
    outcome = commands.check(load_settings(project))
    found = [f for f in outcome.findings if f.code == "fk-unindexed"]
    assert outcome.exit_code == 1
    assert [f.object for f in found] == ["foreign key payments_transaction_id_fkey on payments"]
    assert "every delete from transactions scans payments" in found[0].message
