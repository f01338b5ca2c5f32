"""Row-level security and the immutable, hash-chained audit trail, on a real Postgres."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings

pytestmark = pytest.mark.postgres

G2 = """SELECT event_id, created_at, hash FROM audit_log
        WHERE hash != encode(digest(event_payload || event_id::text, 'sha256'),'hex')"""


@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return pg_url


def add_tenant(conn, user_id):
    conn.execute("INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
                 "VALUES (%s, %s, 'x', %s, 'pro')", (user_id, f"u{user_id.hex[:8]}", f"{user_id.hex[:8]}@x.io"))
    tx = uuid.uuid4()
    conn.execute("INSERT INTO transactions (transaction_id, user_id, amount, currency, status) "
                 "VALUES (%s, %s, 10, 'EUR', 'succeeded')", (tx, user_id))
    conn.execute("INSERT INTO payments (payment_id, user_id, transaction_id, amount, currency, provider, "
                 "provider_token, card_last4) VALUES (%s, %s, %s, 10, 'EUR', 'stripe', 'tok', '4242')",
                 (uuid.uuid4(), user_id, tx))
    conn.execute("INSERT INTO operations (operation_id, user_id, parameters, confidence) "
                 "VALUES (%s, %s, '{}', 99.5)", (uuid.uuid4(), user_id))


RLS_TABLES = ("users", "operations", "transactions", "payments")


def test_tenants_see_only_their_own_rows(migrated):
    a, b = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_tenant(conn, a)
        add_tenant(conn, b)
    with psycopg.connect(migrated) as conn:
        conn.execute("SET ROLE sovren_app")
        conn.execute("SELECT set_config('app.user_id', %s, false)", (str(a),))
        for table in RLS_TABLES:
            owners = {r[0] for r in conn.execute(f"SELECT user_id FROM {table}")}
            assert owners == {a}, table
            assert conn.execute(f"SELECT count(*) FROM {table} WHERE user_id = %s", (b,)).fetchone()[0] == 0
        conn.execute("RESET app.user_id")
        assert all(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 0 for t in RLS_TABLES)


def test_a_tenant_cannot_write_another_tenants_rows(migrated):
    a, b = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_tenant(conn, b)
    with psycopg.connect(migrated) as conn:
        conn.execute("SET ROLE sovren_app")
        conn.execute("SELECT set_config('app.user_id', %s, false)", (str(a),))
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO operations (operation_id, user_id) VALUES (%s, %s)", (uuid.uuid4(), b))
        conn.rollback()
        conn.execute("SET ROLE sovren_app")
        conn.execute("SELECT set_config('app.user_id', %s, false)", (str(a),))
        assert conn.execute("UPDATE payments SET currency = 'USD' WHERE user_id = %s", (b,)).rowcount == 0


def test_forced_rls_binds_the_table_owner_too(migrated):
    with psycopg.connect(migrated) as conn:
        forced = conn.execute("SELECT bool_and(relforcerowsecurity) FROM pg_class WHERE relname = ANY(%s)",
                              (list(RLS_TABLES),)).fetchone()[0]
    assert forced is True


def test_pci_constraint_rejects_card_numbers(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        user = uuid.uuid4()
        add_tenant(conn, user)
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("INSERT INTO payments (payment_id, user_id, amount, currency, provider, provider_token, "
                         "raw_card_number) VALUES (%s, %s, 1, 'EUR', 'x', 't', '4111111111111111')",
                         (uuid.uuid4(), user))


def test_audit_log_rejects_update_delete_and_truncate(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_tenant(conn, uuid.uuid4())
        for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log",
                          "TRUNCATE audit_log"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match="immutable"):
                conn.execute(statement)
        assert conn.execute("SELECT count(*) FROM audit_log").fetchone()[0] > 0


def test_audit_chain_verifies_and_a_tampered_row_is_found(migrated):
    with psycopg.connect(migrated, autocommit=True) as conn:
        for _ in range(3):
            add_tenant(conn, uuid.uuid4())
        conn.execute("UPDATE users SET last_login = now()")
        rows = conn.execute("SELECT event_id, prev_hash, hash FROM audit_log ORDER BY event_id").fetchall()
        assert len(rows) == 12  # 3 tenants x (user, payment, operation) inserts + 3 user updates
        assert rows[0][1] is None and all(rows[i][1] == rows[i - 1][2] for i in range(1, len(rows)))
        assert conn.execute(G2).fetchall() == []

        victim = rows[len(rows) // 2][0]
        conn.execute("SET session_replication_role = replica")  # a superuser bypassing the triggers
        # the column with its payload copy: audit_log_columns_match refuses one without the other
        conn.execute("UPDATE audit_log SET action = 'X' || action, "
                     "event_payload = replace(event_payload, '\"action\": \"', '\"action\": \"X') "
                     "WHERE event_id = %s", (victim,))
        conn.execute("SET session_replication_role = origin")
        found = conn.execute(G2).fetchall()
        assert [r[0] for r in found] == [victim]


def test_audit_rows_hold_no_column_values(migrated):
    user = uuid.uuid4()
    with psycopg.connect(migrated, autocommit=True) as conn:
        add_tenant(conn, user)
        payloads = [r[0] for r in conn.execute("SELECT event_payload FROM audit_log WHERE table_name = 'users'")]
    username = f"u{user.hex[:8]}"
    assert payloads and all("@x.io" not in p and f'"{username}"' not in p for p in payloads)
    assert '"changed"' in payloads[0]


def test_app_role_reads_audit_but_cannot_forge_it(migrated):
    with psycopg.connect(migrated) as conn:
        conn.execute("SET ROLE sovren_app")
        conn.execute("SELECT count(*) FROM audit_log")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO audit_log (event_id, table_name, action, actor, event_payload, hash) "
                         "VALUES (1, 't', 'a', 'x', 'p', 'h')")
