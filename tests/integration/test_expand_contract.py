"""Expand/contract of a live column (op.expand_column, op.contract_column) on a real Postgres: old
and new clients both work during the expand, a killed backfill resumes, the contract swaps in."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from sovren_db.cli.main import cli
from tests.integration.conftest import add_revision, migrate_killed_when

pytestmark = pytest.mark.postgres

TABLE = """    op.create_table("ledger", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("amount", sa.Integer, nullable=False), sa.Column("note", sa.Text))
    op.execute("INSERT INTO ledger (amount, note) SELECT g, 'n' || g FROM generate_series(1, 3000) g")
    op.execute("GRANT SELECT, INSERT, UPDATE ON ledger TO sovren_app")
    op.execute("GRANT USAGE ON SEQUENCE ledger_id_seq TO sovren_app")"""
CHANGE = ('"ledger", "amount", type_=sa.Numeric(12, 2), new_name="amount_total", version="v2"')
EXPAND = (f"    op.expand_column({CHANGE}, using=\"amount::numeric(12, 2)\", back=\"round(amount_total)::integer\", "
          "batch_size={batch}, throttle={{'pause': {pause}}})")
CONTRACT = f"    op.contract_column({CHANGE})"
OUT_OF_STEP = "SELECT count(*) FROM ledger WHERE _new_amount IS DISTINCT FROM amount::numeric(12, 2)"


def migrate() -> None:
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output


def one(url: str, sql: str, *, role: str | None = None, path: str | None = None):
    with psycopg.connect(url, autocommit=True) as conn:
        if role:
            conn.execute(f"SET ROLE {role}")
        if path:
            conn.execute(f"SET search_path = {path}")
        return conn.execute(sql).fetchone()


def test_old_and_new_clients_both_work_during_an_expand_then_the_contract_swaps(project, pg_url):
    add_revision(project, "x1table", TABLE)
    add_revision(project, "x2expand", EXPAND.format(batch=500, pause=0))
    migrate()
    assert one(pg_url, OUT_OF_STEP) == (0,)  # backfilled
    old = {"role": "sovren_app"}
    new = {"role": "sovren_app", "path": "sovren_v2, public"}
    one(pg_url, "INSERT INTO ledger (amount, note) VALUES (7, 'old client') RETURNING id", **old)
    one(pg_url, "UPDATE ledger SET amount = 9 WHERE id = 1 RETURNING id", **old)
    one(pg_url, "INSERT INTO ledger (amount_total, note) VALUES (5.00, 'new client') RETURNING id", **new)
    one(pg_url, "UPDATE ledger SET amount_total = 11 WHERE id = 2 RETURNING id", **new)
    assert one(pg_url, "SELECT amount_total FROM ledger WHERE id = 1", **new)[0] == 9
    assert one(pg_url, "SELECT amount FROM ledger WHERE id = 2", **old) == (11,)
    assert one(pg_url, "SELECT amount FROM ledger WHERE note = 'new client'", **old) == (5,)
    assert one(pg_url, "SELECT amount_total FROM ledger WHERE note = 'old client'", **new)[0] == 7
    assert one(pg_url, OUT_OF_STEP) == (0,)
    with pytest.raises(psycopg.errors.UndefinedColumn):  # the new version hides the old column
        one(pg_url, "SELECT amount FROM ledger", **new)

    add_revision(project, "x3contract", CONTRACT)
    migrate()
    assert one(pg_url, "SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
                       "WHERE attrelid = 'ledger'::regclass AND attname = 'amount_total'") == ("numeric(12,2)", True)
    assert one(pg_url, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'ledger'::regclass "
                       "AND attname IN ('amount', '_new_amount') AND NOT attisdropped") == (0,)
    assert one(pg_url, "SELECT to_regnamespace('sovren_v2'), count(*) FROM pg_trigger t "
                       "WHERE tgrelid = 'ledger'::regclass AND NOT tgisinternal") == (None, 0)
    assert one(pg_url, "SELECT count(*), sum(amount_total) FROM ledger", **old) == (3002, 3000 * 3001 // 2 + 8 + 9 + 7 + 5)
    assert one(pg_url, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'ledger'::regclass "
                       "AND contype = 'c'") == (0,)  # the helper check is gone, NOT NULL carries it


def test_a_killed_expand_backfill_resumes_and_writes_meanwhile_stay_in_step(project, pg_url):
    add_revision(project, "x1table", TABLE)
    migrate()
    add_revision(project, "x2expand", EXPAND.format(batch=50, pause=0.02))
    migrate_killed_when(project, lambda: _filled(pg_url) >= 300)
    assert 300 <= _filled(pg_url) < 3000
    one(pg_url, "UPDATE ledger SET amount = amount + 1000 WHERE id IN (1, 2999) RETURNING id")  # an old client
    assert one(pg_url, "SELECT _new_amount FROM ledger WHERE id = 2999") == (3999,)
    migrate()
    assert one(pg_url, OUT_OF_STEP) == (0,)
    assert one(pg_url, "SELECT sum(_new_amount) FROM ledger")[0] == 3000 * 3001 // 2 + 2000


def _filled(pg_url: str) -> int:
    """Rows the expand's backfill (or a trigger) gave the new column so far; 0 before it exists."""
    try:
        return one(pg_url, "SELECT count(_new_amount) FROM ledger")[0]
    except (psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedTable):
        return 0


def test_the_downgrade_of_an_expand_leaves_the_table_as_it_was(project, pg_url):
    add_revision(project, "x1table", TABLE)
    add_revision(project, "x2expand", EXPAND.format(batch=1000, pause=0), downgrade=f"op.undo_expand_column({CHANGE})")
    migrate()
    result = CliRunner().invoke(cli, ["downgrade", "x1table"])
    assert result.exit_code == 0, result.output
    assert one(pg_url, "SELECT count(*) FROM pg_attribute WHERE attrelid = 'ledger'::regclass "
                       "AND attname = '_new_amount' AND NOT attisdropped") == (0,)
    assert one(pg_url, "SELECT to_regnamespace('sovren_v2'), count(*) FROM sovren_db.backfill_progress") == (None, 0)
    migrate()  # expanding again backfills again: nothing remembered from the first time
    assert one(pg_url, OUT_OF_STEP) == (0,) and one(pg_url, "SELECT count(_new_amount) FROM ledger") == (3000,)


def _proposed(proposal, *operations, downgrade=False) -> list[str]:
    import sqlalchemy as sa  # noqa: F401  (the rendered code names sa)
    from alembic.autogenerate import render_python_code
    from alembic.operations import ops

    from sovren_db.postgres.safe import _rewrite

    container = ops.DowngradeOps(ops=list(operations)) if downgrade else ops.UpgradeOps(ops=list(operations))
    _rewrite(container, set(), proposal, downgrade)
    code = render_python_code(container).splitlines()[1:-1]
    return [line.strip() for line in code if line.strip()]


def _type_change():
    import sqlalchemy as sa
    from alembic.operations import ops

    return ops.AlterColumnOp("ledger", "amount", modify_type=sa.Numeric(12, 2), existing_type=sa.Integer())


def test_autogenerate_writes_a_type_change_of_a_live_column_as_an_expand_and_its_undo():
    import sqlalchemy as sa
    from alembic.operations import ops

    from sovren_db.postgres.expand import Proposal

    lines = _proposed(Proposal("ab12"), _type_change())
    assert lines[0].startswith("# ledger holds data: amount changes type by expand/contract")
    assert "search_path sovren_ab12" in lines[0]
    assert lines[1:] == ["op.expand_column('ledger', 'amount', type_=sa.Numeric(precision=12, scale=2), version='ab12')"]
    back = ops.AlterColumnOp("ledger", "amount", modify_type=sa.Integer(), existing_type=sa.Numeric(12, 2))
    undo = _proposed(Proposal("ab12"), back, downgrade=True)  # the downgrade's op changes the type back
    assert undo[1:] == ["op.undo_expand_column('ledger', 'amount', type_=sa.Numeric(precision=12, scale=2), "
                        "version='ab12')"]


def test_autogenerate_proposes_the_contract_once_the_live_column_is_expanded(project, pg_url):
    import sqlalchemy as sa
    from alembic.operations import ops
    from alembic.runtime.migration import MigrationContext

    from sovren_db.postgres.expand import Proposal

    add_revision(project, "x1table", TABLE)
    add_revision(project, "x2expand", EXPAND.format(batch=1000, pause=0))
    migrate()
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as connection:
            proposal = Proposal.read(MigrationContext.configure(connection), "cd34")
    finally:
        engine.dispose()
    assert proposal.expanded[("ledger", "amount")] == "v2"
    lines = _proposed(proposal, _type_change())
    assert lines[0].startswith("# ledger.amount was expanded: once every client uses version v2")
    assert lines[1:] == ["op.contract_column('ledger', 'amount', type_=sa.Numeric(precision=12, scale=2), "
                         "version='v2')"]
    other = ops.AlterColumnOp("ledger", "note", modify_type=sa.String(80), modify_nullable=False)
    assert not any("expand" in line for line in _proposed(proposal, other))  # not the type alone: as before


def test_autogenerate_proposes_a_rename_by_expand_when_a_column_is_dropped_and_one_of_its_type_added():
    import sqlalchemy as sa
    from alembic.operations import ops

    from sovren_db.postgres.expand import Proposal

    add = ops.AddColumnOp("ledger", sa.Column("memo", sa.Text()))
    drop = ops.DropColumnOp.from_column_and_tablename(None, "ledger", sa.Column("note", sa.Text()))
    lines = _proposed(Proposal("ef56"), ops.ModifyTableOps("ledger", [add, drop]))
    assert lines[0] == ("# if memo is note renamed, write op.expand_column('ledger', 'note', new_name='memo', "
                        "version='ef56') instead of this add and the drop below, then op.contract_column in a later "
                        "revision")
    assert lines[1].startswith("op.add_column('ledger', sa.Column('memo'") and lines[2].startswith("op.drop_column(")
    other = ops.AddColumnOp("ledger", sa.Column("memo", sa.Integer()))
    assert not _proposed(Proposal("ef56"), ops.ModifyTableOps("ledger", [other, drop]))[0].startswith("#")


def test_a_rename_is_a_view_for_new_clients_until_the_contract_renames_the_column(project, pg_url):
    add_revision(project, "x1table", TABLE)
    add_revision(project, "x2rename", "    op.expand_column('ledger', 'note', new_name='memo', version='v3')")
    migrate()
    new = {"role": "sovren_app", "path": "sovren_v3, public"}
    one(pg_url, "INSERT INTO ledger (amount, memo) VALUES (1, 'from new') RETURNING id", **new)
    one(pg_url, "UPDATE ledger SET memo = 'renamed' WHERE id = 1 RETURNING id", **new)
    assert one(pg_url, "SELECT note FROM ledger WHERE id = 1", role="sovren_app") == ("renamed",)
    assert one(pg_url, "SELECT count(*) FROM ledger WHERE note = 'from new'", role="sovren_app") == (1,)
    add_revision(project, "x3rename", "    op.contract_column('ledger', 'note', new_name='memo', version='v3')")
    migrate()
    assert one(pg_url, "SELECT memo FROM ledger WHERE id = 1", role="sovren_app") == ("renamed",)
    assert one(pg_url, "SELECT to_regnamespace('sovren_v3')") == (None,)


def test_a_second_expand_of_the_same_table_and_version_is_refused_whole(project, pg_url):
    add_revision(project, "x1table", TABLE)
    add_revision(project, "x2rename", "    op.expand_column('ledger', 'note', new_name='memo', version='v3')")
    migrate()
    add_revision(project, "x3rename", "    op.expand_column('ledger', 'amount', new_name='total', version='v3')")
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 2, result.output
    assert "version v3 already shows ledger differently" in result.output and "Traceback" not in result.output
    assert one(pg_url, "SELECT memo FROM sovren_v3.ledger WHERE id = 1") == ("n1",)  # the first version intact


def test_autogenerate_on_sovrens_users_writes_the_expand_then_the_contract(project, pg_url):
    from sovren_db import commands
    from sovren_db.core.config import load_settings

    commands.migrate(load_settings(project))
    tables = project / "postgres" / "tables.py"
    tables.write_text(tables.read_text().replace('Column("subscription_tier", VARCHAR(50), nullable=False)',
                                                 'Column("subscription_tier", Text, nullable=False)'))
    first = Path(commands.revision(load_settings(project), "tier as text", autogenerate=True).data["written"][0])
    assert "op.expand_column('users', 'subscription_tier', type_=sa.Text(), version=" in first.read_text()
    assert "op.undo_expand_column('users', 'subscription_tier', type_=sa.Text()" in first.read_text()
    commands.migrate(load_settings(project))
    second = Path(commands.revision(load_settings(project), "tier contract", autogenerate=True).data["written"][0])
    body = second.read_text()
    assert "op.contract_column('users', 'subscription_tier', type_=sa.Text()" in body
    assert "_new_subscription_tier" not in body  # the expand's shadow is not drift
    assert f"version={first.name.split('_')[0]!r}" in body  # the expand's version, read from its view
    commands.migrate(load_settings(project))
    assert one(pg_url, "SELECT format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
                       "WHERE attrelid = 'users'::regclass AND attname = 'subscription_tier'") == ("text", True)
    assert commands.check(load_settings(project)).exit_code == 0


def test_columns_added_or_dropped_during_an_expand_follow_into_the_version_view(project, pg_url):
    add_revision(project, "x1table", TABLE)
    add_revision(project, "x2expand", EXPAND.format(batch=1000, pause=0))
    add_revision(project, "x3region", '    op.add_column("ledger", sa.Column("region", sa.Text, server_default="eu"))')
    add_revision(project, "x4note", '    op.drop_column("ledger", "note")')
    migrate()  # the drop is not refused for the view that showed note
    new = {"role": "sovren_app", "path": "sovren_v2, public"}
    assert one(pg_url, "SELECT region, amount_total FROM ledger WHERE id = 3", **new) == ("eu", 3)
    one(pg_url, "INSERT INTO ledger (amount_total, region) VALUES (4.00, 'us') RETURNING id", **new)
    assert one(pg_url, "SELECT amount, region FROM ledger WHERE region = 'us'", role="sovren_app") == (4, "us")
    with pytest.raises(psycopg.errors.UndefinedColumn):
        one(pg_url, "SELECT note FROM ledger", **new)
    add_revision(project, "x5contract", CONTRACT)
    migrate()
    assert one(pg_url, "SELECT amount_total, region FROM ledger WHERE region = 'us'") == (4, "us")
