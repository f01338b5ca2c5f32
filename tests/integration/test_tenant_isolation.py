"""A hostile tenant against every table holding tenants' rows, found in the catalog, as sovren_app.

The tables are not listed here: every table of the schema with a user_id column, or a foreign key
path to one, is probed. A new table holding tenants' rows is probed the day it is created, and fails
here until it has row security, FORCE and a tenant policy for reading and writing.
"""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
from psycopg import sql

from sovren_db import commands
from sovren_db.core.config import load_settings

pytestmark = pytest.mark.postgres

APP = "sovren_app"

# Tables of the current schema with a user_id column, or referencing (transitively) one that has.
TENANT_TABLES = """
WITH RECURSIVE tables AS (
    SELECT c.oid, c.relname FROM pg_class c
     WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
), holding AS (
    SELECT t.oid, t.relname FROM tables t
     WHERE EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attname = 'user_id'
                   AND NOT a.attisdropped)
    UNION
    SELECT t.oid, t.relname FROM tables t
      JOIN pg_constraint f ON f.conrelid = t.oid AND f.contype = 'f'
      JOIN holding h ON h.oid = f.confrelid
)
SELECT relname FROM holding ORDER BY relname
"""

# app.user_id values that name no tenant: each must give zero rows and no error.
NO_TENANT = (None, "", "not-a-uuid", "x' OR '1'='1", "00000000-0000-0000-0000-000000000000", "{%s}", "%s "
             "OR true")


@pytest.fixture(scope="module")
def tenants(migrated_module):
    """Two tenants owning rows in every table, on a database migrated to head (shared by the module)."""
    a, b = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(migrated_module, autocommit=True) as conn:
        for tenant in (a, b):
            add_tenant(conn, tenant)
    return migrated_module, a, b


@pytest.fixture(scope="module")
def migrated_module(tmp_path_factory, repo_root, postgres_server_url):
    from sovren_db.seeds.snapshots import create_database, drop_database
    from sovren_db.testing.fixtures import with_database

    from .conftest import copy_project

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = with_database(postgres_server_url, "postgres")
    create_database(admin, name)
    url = with_database(postgres_server_url, name)
    root = copy_project(repo_root, tmp_path_factory.mktemp("tenants") / "project")
    with pytest.MonkeyPatch.context() as patch:
        for var in ("CI", "MONGO_URL", "REDIS_URL", "SOVREN_ENV", "SOVREN_DB_STORES"):
            patch.delenv(var, raising=False)
        patch.setenv("POSTGRES_URL", url)
        patch.chdir(root)
        commands.migrate(load_settings(root))
    yield url
    drop_database(admin, name)


def add_tenant(conn: psycopg.Connection, user: uuid.UUID) -> None:
    tag = user.hex[:8]
    subscription, transaction = uuid.uuid4(), uuid.uuid4()
    conn.execute("INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
                 "VALUES (%s, %s, 'x', %s, 'pro')", (user, f"u{tag}", f"{tag}@x.io"))
    conn.execute("INSERT INTO subscriptions (subscription_id, user_id, tier) VALUES (%s, %s, 'pro')",
                 (subscription, user))
    conn.execute("INSERT INTO transactions (transaction_id, user_id, subscription_id, amount, currency, status) "
                 "VALUES (%s, %s, %s, 10, 'EUR', 'succeeded')", (transaction, user, subscription))
    conn.execute("INSERT INTO payments (payment_id, user_id, transaction_id, amount, currency, provider, "
                 "provider_token, card_last4) VALUES (%s, %s, %s, 10, 'EUR', 'stripe', 'tok', '4242')",
                 (uuid.uuid4(), user, transaction))
    conn.execute("INSERT INTO operations (operation_id, user_id, parameters, confidence) "
                 "VALUES (%s, %s, '{}', 99.5)", (uuid.uuid4(), user))


def tenant_tables(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(TENANT_TABLES)]


def as_tenant(conn: psycopg.Connection, value: str | None) -> None:
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(APP)))
    if value is None:
        conn.execute("RESET app.user_id")
    else:
        conn.execute("SELECT set_config('app.user_id', %s, false)", (value,))


def refused_or_none(conn: psycopg.Connection, statement: sql.Composable, params: tuple) -> int | str:
    """The rows ``statement`` touched, or 'refused' when Postgres refused it (privilege or policy)."""
    try:
        with conn.transaction():
            return conn.execute(statement, params).rowcount
    except psycopg.errors.InsufficientPrivilege:
        return "refused"


def foreign_row(conn: psycopg.Connection, table: str, owner: uuid.UUID) -> dict:
    """One of ``owner``'s rows as JSON, its uuid key columns given fresh values (a new row of that tenant)."""
    row = conn.execute(sql.SQL("SELECT to_jsonb(t) FROM {} t WHERE user_id = %s LIMIT 1").format(
        sql.Identifier(table)), (owner,)).fetchone()[0]
    keys = conn.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
                        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary "
                        "AND a.atttypid = 'uuid'::regtype", (table,)).fetchall()
    return {**row, **{k: str(uuid.uuid4()) for (k,) in keys}}


def test_the_catalog_finds_every_table_holding_tenants_rows(tenants):
    url, a, b = tenants
    tables = tenant_tables(url)
    assert {"users", "subscriptions", "transactions", "payments", "operations", "audit_log"} <= set(tables)
    with psycopg.connect(url) as conn:
        for table in tables:
            # a table reached only through a foreign key must carry the tenant itself to get a policy
            counts = conn.execute(sql.SQL("SELECT count(*) FILTER (WHERE user_id = %s), count(*) FILTER "
                                          "(WHERE user_id = %s) FROM {}").format(sql.Identifier(table)),
                                  (a, b)).fetchone()
            assert all(counts), f"{table}: the probes need rows of both tenants (add them in add_tenant)"
            rls = conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()
            assert rls == (True,), f"{table} holds tenants' rows without row security"


def test_a_tenant_reads_only_its_own_rows(tenants):
    url, a, b = tenants
    with psycopg.connect(url) as owner, psycopg.connect(url) as conn:
        as_tenant(conn, str(a))
        for table in tenant_tables(url):
            name = sql.Identifier(table)
            own = owner.execute(sql.SQL("SELECT count(*) FROM {} WHERE user_id = %s").format(name), (a,)).fetchone()
            seen = conn.execute(sql.SQL("SELECT count(*), count(*) FILTER (WHERE user_id IS DISTINCT FROM %s) "
                                        "FROM {}").format(name), (a,)).fetchone()
            assert seen == (own[0], 0), f"{table}: tenant A sees {seen[1]} rows of others"


def test_a_tenant_cannot_insert_update_delete_or_move_across_tenants(tenants):
    url, a, b = tenants
    with psycopg.connect(url) as owner, psycopg.connect(url) as conn:
        for table in tenant_tables(url):
            name = sql.Identifier(table)
            row = foreign_row(owner, table, b)
            as_tenant(conn, str(a))
            insert = sql.SQL("INSERT INTO {} SELECT * FROM jsonb_populate_record(NULL::{}, %s::jsonb)").format(
                name, name)
            assert refused_or_none(conn, insert, (json.dumps(row),)) == "refused", f"{table}: inserted B's row"
            touch = sql.SQL("UPDATE {} SET user_id = user_id WHERE user_id = %s").format(name)
            assert refused_or_none(conn, touch, (b,)) in (0, "refused"), f"{table}: updated B's rows"
            delete = sql.SQL("DELETE FROM {} WHERE user_id = %s").format(name)
            assert refused_or_none(conn, delete, (b,)) in (0, "refused"), f"{table}: deleted B's rows"
            move = sql.SQL("UPDATE {} SET user_id = %s WHERE user_id = %s").format(name)
            assert refused_or_none(conn, move, (b, a)) == "refused", f"{table}: moved A's row to B"
            conn.rollback()
        counts = owner.execute("SELECT (SELECT count(*) FROM users WHERE user_id = %s), "
                               "(SELECT count(*) FROM payments WHERE user_id = %s)", (b, b)).fetchone()
    assert counts == (1, 1)


def test_the_refusal_names_no_data_of_the_other_tenant(tenants):
    url, a, b = tenants
    with psycopg.connect(url) as owner, psycopg.connect(url) as conn:
        row = foreign_row(owner, "payments", b)
        as_tenant(conn, str(a))
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as refused:
            conn.execute("INSERT INTO payments SELECT * FROM jsonb_populate_record(NULL::payments, %s::jsonb)",
                         (json.dumps(row),))
    text = f"{refused.value} {refused.value.diag.message_detail or ''}"
    assert "row-level security" in text
    assert str(b) not in text and row["payment_id"] not in text


@pytest.mark.parametrize("setting", NO_TENANT)
def test_no_tenant_or_a_malformed_one_sees_nothing_and_raises_nothing(tenants, setting):
    url, a, b = tenants
    value = setting % b if setting and "%s" in setting else setting
    with psycopg.connect(url) as conn:
        as_tenant(conn, value)
        for table in tenant_tables(url):
            seen = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0]
            assert seen == 0, f"{table}: app.user_id={value!r} sees {seen} rows"


def test_check_reports_a_subject_table_declared_without_row_security(project):
    commands.migrate(load_settings(project))
    security = project / "postgres" / "security.py"
    security.write_text(security.read_text().replace('"operations", "subscriptions", ', '"operations", '))
    outcome = commands.check(load_settings(project))
    found = [f for f in outcome.findings if f.code == "rls-missing"]
    assert outcome.exit_code == 1
    assert [(f.object, f.file) for f in found] == [("table subscriptions", "postgres/tables.py")]  # located at its declaration
