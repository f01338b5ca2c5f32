"""``plan`` prints the SQL ``migrate`` runs: per-partition index builds on a partitioned table; and a
table created in a revision is created whole (plain forms, row security, policies, grants) in one
transaction."""

from __future__ import annotations

import re

import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from tests.integration.conftest import add_revision
from tests.integration.recording import recorded

pytestmark = [pytest.mark.postgres]

INDEX_ON_OPERATIONS = """\
    with op.get_context().autocommit_block():
        op.create_index_concurrently('ix_operations_confidence', 'operations', ['confidence'])
"""
DDL = re.compile(r"^(CREATE INDEX|ALTER INDEX|DROP INDEX)", re.I)


def ddl(statements: list[str]) -> list[str]:
    return [" ".join(s.split()).rstrip(";") for s in statements if DDL.match(s.strip())]


def test_plan_prints_the_per_partition_index_builds_migrate_runs(project):
    settings = load_settings(project)
    commands.migrate(settings)
    add_revision(project, "pa0000000001", INDEX_ON_OPERATIONS)
    planned = ddl(commands.plan(settings).data["sql"].split(";\n"))
    assert planned[0] == "CREATE INDEX IF NOT EXISTS ix_operations_confidence ON ONLY operations (confidence)"
    assert any(s.startswith("CREATE INDEX CONCURRENTLY IF NOT EXISTS operations_p") for s in planned)
    assert any("ATTACH PARTITION" in s for s in planned)
    assert not any(s.endswith("ON operations (confidence)") for s in planned)   # what Postgres refuses

    with recorded() as statements:
        commands.migrate(settings)
    assert ddl(statements) == planned


API_KEYS = """\
    op.create_table('api_keys',
        sa.Column('key_id', sa.Uuid(), primary_key=True),
        sa.Column('user_id', sa.Uuid(), sa.ForeignKey('users.user_id'), nullable=False))
    op.create_index('ix_api_keys_user_id', 'api_keys', ['user_id'])
    op.set_row_security(table='api_keys', enabled=True, forced=True)
    op.grant_privileges(role='sovren_app', table='api_keys', privileges=('SELECT',))
"""


def test_a_new_table_is_created_with_its_row_security_in_one_transaction(project, tmp_path):
    settings = load_settings(project)
    commands.migrate(settings)
    add_revision(project, "pa0000000002", API_KEYS)
    sql = commands.plan(settings).data["sql"]
    body = sql[sql.index("CREATE TABLE api_keys"):sql.index("UPDATE alembic_version")]
    assert "COMMIT" not in body and "CONCURRENTLY" not in body and "NOT VALID" not in body
    assert body.index("CREATE TABLE api_keys") < body.index("ENABLE ROW LEVEL SECURITY") < body.index("GRANT")
