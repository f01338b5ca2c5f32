"""A revision whose autocommit block ran before a later failure says what stays committed, and the
rerun after the fix finishes it."""

from __future__ import annotations

import psycopg
import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.core.errors import MigrationFailed
from tests.integration.conftest import add_revision

pytestmark = [pytest.mark.postgres]

SAFE_STEPS = """\
    op.add_column('users', sa.Column('nickname', sa.Text(), nullable=True), if_not_exists=True)
    op.create_check_constraint_not_valid('users_nickname_short', 'users', 'length(nickname) < 40')
    with op.get_context().autocommit_block():
        op.create_index_concurrently('ix_users_nickname', 'users', ['nickname'])
"""


def test_a_failure_after_an_autocommit_block_names_what_stays_and_the_fixed_rerun_finishes(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings)
    path = add_revision(project, "ac0000000001", SAFE_STEPS + "    op.execute('SELECT 1/0')")
    with pytest.raises(MigrationFailed) as err:
        commands.migrate(settings)
    message = str(err.value)
    assert "and was rolled back" not in message and "NOT rolled back: 3 statement(s)" in message
    assert "ADD COLUMN IF NOT EXISTS nickname" in message and "users_nickname_short" in message
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('ix_users_nickname') IS NOT NULL").fetchone()[0]

    path.write_text(path.read_text().replace("    op.execute('SELECT 1/0')\n", ""))
    assert commands.migrate(settings).data["applied"] == ["ac0000000001"]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "ac0000000001"


def test_a_failure_without_autocommit_block_is_rolled_back_and_says_so(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings)
    add_revision(project, "ac0000000002", "    op.add_column('users', sa.Column('x', sa.Text()))\n"
                                          "    op.execute('SELECT 1/0')")
    with pytest.raises(MigrationFailed, match="A revision failed in Postgres and was rolled back: division by zero"):
        commands.migrate(settings)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
                            "AND column_name = 'x'").fetchone()[0] == 0


def test_a_failure_after_a_finished_revision_of_the_same_run_is_rolled_back_and_says_so(project, pg_url):
    """The revision before it finished (and committed, stamped) in the same run: that is no partial commit."""
    settings = load_settings(project)
    commands.migrate(settings)
    add_revision(project, "ac0000000003", "    op.add_column('users', sa.Column('y', sa.Text()))")
    add_revision(project, "ac0000000004", "    op.execute('SELECT 1/0')")
    with pytest.raises(MigrationFailed, match="A revision failed in Postgres and was rolled back: division by zero"):
        commands.migrate(settings)
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0] == "ac0000000003"
