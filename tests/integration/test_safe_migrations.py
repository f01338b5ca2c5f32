"""Safe forms on live tables: the SQL they produce (offline), autogenerate writing them, and a real
migration of the Sovren schema while a writer keeps inserting; bounded lock-timeout retries;
the partitions command."""

from __future__ import annotations

import io
import random
import textwrap
import threading
from dataclasses import dataclass, field

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import render_python_code
from alembic.operations import Operations, ops
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from psycopg import errors as pg_errors
from sqlalchemy.exc import OperationalError

from sovren_db import commands
from sovren_db.cli.main import cli
from sovren_db.cli.partitions import maintain
from sovren_db.core.config import load_settings
from sovren_db.core.runtime import ADVISORY_LOCK_KEY
from sovren_db.drift import findings_from_ops
from sovren_db.postgres.safe import (SafeStepsOp, bounded_name, is_lock_timeout, not_null_check_name,
                                     retry_on_lock_timeout, safe_forms, unique_constraint_name)
from tests.integration.recording import recorded


# -- offline: the SQL of each safe form ---------------------------------------------------

def offline(build) -> str:
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name="postgresql", opts={"as_sql": True, "output_buffer": buffer})
    build(Operations(context))
    return " ".join(buffer.getvalue().split())


def test_safe_forms_produce_the_expected_sql():
    def build(op):
        op.create_index_concurrently("ix_ops_conf", "operations", ["confidence"])
        op.drop_index_concurrently("ix_old", "operations")
        op.create_foreign_key_not_valid("ops_user_fk", "operations", "users", ["user_id"], ["user_id"],
                                        ondelete="CASCADE")
        op.create_check_constraint_not_valid("ops_conf_range", "operations", "confidence <= 100")
        op.validate_constraint("ops_user_fk", "operations")
        op.add_not_null_check("operations", "confidence")
        op.drop_not_null_check("operations", "confidence")

    assert offline(build) == " ".join([
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ix_ops_conf ON operations (confidence);",
        "DROP INDEX CONCURRENTLY IF EXISTS ix_old;",
        "ALTER TABLE operations ADD CONSTRAINT ops_user_fk FOREIGN KEY(user_id) REFERENCES users (user_id) "
        "ON DELETE CASCADE NOT VALID;",
        "ALTER TABLE operations ADD CONSTRAINT ops_conf_range CHECK (confidence <= 100) NOT VALID;",
        "-- squawk-ignore prefer-robust-stmts ALTER TABLE operations VALIDATE CONSTRAINT ops_user_fk;",
        "ALTER TABLE operations ADD CONSTRAINT operations_confidence_not_null CHECK (confidence IS NOT NULL) "
        "NOT VALID;",
        "-- squawk-ignore ban-drop-constraint ALTER TABLE operations DROP CONSTRAINT IF EXISTS "
        "operations_confidence_not_null;",
    ])


def test_unique_index_and_options_survive_the_concurrent_form():
    sql = offline(lambda op: op.create_index_concurrently(
        "uq_users_email", "users", ["email"], unique=True, postgresql_where=sa.text("email IS NOT NULL")))
    assert sql == "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS uq_users_email ON users (email) " \
                  "WHERE email IS NOT NULL;"


def test_unique_constraint_using_index_sql():
    def build(op):
        op.create_index_concurrently("users_email_key", "users", ["email"], unique=True)
        op.create_unique_constraint_using_index("users_email_key", "users")
        op.create_unique_constraint_using_index("uq_t_a", "t", index_name="ix_t_a", deferrable=True,
                                                initially="deferred")

    assert offline(build) == " ".join([
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS users_email_key ON users (email);",
        "ALTER TABLE users ADD CONSTRAINT users_email_key UNIQUE USING INDEX users_email_key;",
        "ALTER TABLE t ADD CONSTRAINT uq_t_a UNIQUE USING INDEX ix_t_a DEFERRABLE INITIALLY DEFERRED;",
    ])


def test_long_names_are_bounded_and_stable():
    name = not_null_check_name("a_table_with_a_rather_long_name", "and_a_column_with_a_long_name_too")
    assert len(name) <= 63 and name == not_null_check_name("a_table_with_a_rather_long_name",
                                                            "and_a_column_with_a_long_name_too")
    assert bounded_name("short") == "short"


def upgrade_ops(*operations) -> ops.UpgradeOps:
    return ops.UpgradeOps(ops=list(operations))


def rewritten(*operations) -> str:
    script = ops.MigrationScript("r1", upgrade_ops(*operations), ops.DowngradeOps(ops=[]))
    safe_forms(None, None, [script])
    body = render_python_code(script.upgrade_ops).splitlines()[1:-1]  # without Alembic's marker comments
    return textwrap.dedent("\n".join(body))


def test_autogenerate_rewrites_changes_to_existing_tables():
    code = rewritten(ops.ModifyTableOps("operations", [
        ops.CreateIndexOp("ix_ops_conf", "operations", ["confidence"]),
        ops.CreateForeignKeyOp("ops_user_fk", "operations", "users", ["user_id"], ["user_id"]),
        ops.AlterColumnOp("operations", "confidence", modify_nullable=False, existing_type=sa.Numeric(5, 2)),
    ]))
    lines = [line.rstrip() for line in code.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert lines == [
        "with op.get_context().autocommit_block():",
        "    op.create_index_concurrently('ix_ops_conf', 'operations', ['confidence'], unique=False)",
        "op.create_foreign_key_not_valid('ops_user_fk', 'operations', 'users', ['user_id'], ['user_id'])",
        "with op.get_context().autocommit_block():",
        "    op.validate_constraint('ops_user_fk', 'operations')",
        "op.add_not_null_check('operations', 'confidence')",
        "with op.get_context().autocommit_block():",
        "    op.validate_constraint('operations_confidence_not_null', 'operations')",
        "op.alter_column('operations', 'confidence',",
        "           existing_type=sa.Numeric(precision=5, scale=2),",
        "           nullable=False)",
        "op.drop_not_null_check('operations', 'confidence')",
    ]
    compile(code, "revision", "exec")


def test_tables_created_in_the_same_revision_keep_the_plain_forms():
    table = sa.Table("briefings", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    code = rewritten(ops.CreateTableOp.from_table(table), ops.CreateIndexOp("ix_b", "briefings", ["id"]))
    assert "op.create_index('ix_b'" in code and "concurrently" not in code


def code_lines(code: str) -> list[str]:
    return [line.rstrip() for line in code.splitlines() if line.strip()]


USERS = sa.Table(
    "users", sa.MetaData(),
    sa.Column("user_id", sa.Integer, primary_key=True),
    sa.Column("email", sa.VARCHAR(255), nullable=False, unique=True),
    sa.Column("subscription_tier", sa.VARCHAR(50), nullable=False),
    sa.Column("status", sa.VARCHAR(20), nullable=False, server_default=sa.text("'active'")),
    sa.Column("nickname", sa.Text),
    sa.UniqueConstraint("user_id", "subscription_tier", name="uq_users_id_tier"),
)


def unique_op(name: str | None) -> ops.CreateUniqueConstraintOp:
    constraint = next(c for c in USERS.constraints if isinstance(c, sa.UniqueConstraint) and c.name == name)
    return ops.AddConstraintOp.from_constraint(constraint)


def test_autogenerate_writes_a_unique_constraint_as_a_concurrent_index_then_using_index():
    unnamed, named = unique_op(None), unique_op("uq_users_id_tier")
    assert isinstance(unnamed, ops.CreateUniqueConstraintOp)
    code = rewritten(ops.ModifyTableOps("users", [unnamed, named]))
    assert code_lines(code) == [
        "# users holds data: unique index built without blocking writes, then made the constraint",
        "with op.get_context().autocommit_block():",
        "    op.create_index_concurrently('users_email_key', 'users', ['email'], unique=True)",
        "op.create_unique_constraint_using_index('users_email_key', 'users')",
        "# users holds data: unique index built without blocking writes, then made the constraint",
        "with op.get_context().autocommit_block():",
        "    op.create_index_concurrently('uq_users_id_tier', 'users', ['user_id', 'subscription_tier'], "
        "unique=True)",
        "op.create_unique_constraint_using_index('uq_users_id_tier', 'users')",
    ]
    compile(code, "revision", "exec")
    assert unique_constraint_name("users", ["email"]) == "users_email_key"
    script = ops.MigrationScript("r1", upgrade_ops(ops.ModifyTableOps("users", [named])), ops.DowngradeOps(ops=[]))
    safe_forms(None, None, [script])
    step = script.upgrade_ops.ops[0].ops[0]
    assert isinstance(step, SafeStepsOp) and isinstance(step.reverse(), ops.DropConstraintOp)
    assert step.steps[-1].reverse().constraint_name == "uq_users_id_tier"
    assert step.steps[-1].reverse().constraint_type == "unique"


def test_the_downgrade_drops_an_unnamed_unique_constraint_by_the_name_the_upgrade_gave_it():
    drop = ops.DropConstraintOp.from_constraint(next(c for c in USERS.constraints
                                                     if isinstance(c, sa.UniqueConstraint) and c.name is None))
    assert drop.constraint_name is None
    script = ops.MigrationScript("r1", upgrade_ops(), ops.DowngradeOps(ops=[ops.ModifyTableOps("users", [drop])]))
    safe_forms(None, None, [script])
    code = render_python_code(script.downgrade_ops)
    assert "op.drop_constraint('users_email_key', 'users', type_='unique')" in code


def test_autogenerate_adds_a_not_null_column_nullable_with_a_backfill_marker():
    add = ops.AddColumnOp.from_column_and_tablename(None, "users", USERS.c.subscription_tier)
    with_default = ops.AddColumnOp.from_column_and_tablename(None, "users", USERS.c.status)
    nullable = ops.AddColumnOp.from_column_and_tablename(None, "users", USERS.c.nickname)
    code = rewritten(ops.ModifyTableOps("users", [add, with_default, nullable]))
    assert code_lines(code) == [
        "# users holds data: subscription_tier added nullable, backfilled by hand, then made NOT NULL "
        "through a validated check",
        "op.add_column('users', sa.Column('subscription_tier', sa.VARCHAR(length=50), nullable=True), "
        "if_not_exists=True)",
        "with op.get_context().autocommit_block():",
        "    # sovren-db: backfill users.subscription_tier here",
        "    pass",
        "op.add_not_null_check('users', 'subscription_tier')",
        "with op.get_context().autocommit_block():",
        "    op.validate_constraint('users_subscription_tier_not_null', 'users')",
        "op.alter_column('users', 'subscription_tier',",
        "           existing_type=sa.VARCHAR(length=50),",
        "           nullable=False)",
        "op.drop_not_null_check('users', 'subscription_tier')",
        "op.add_column('users', sa.Column('status', sa.VARCHAR(length=20), server_default=sa.text(\"'active'\"), "
        "nullable=False))",
        "op.add_column('users', sa.Column('nickname', sa.Text(), nullable=True))",
    ]
    compile(code, "revision", "exec")
    assert USERS.c.subscription_tier.nullable is False  # the declaration is not touched


def test_a_not_null_column_on_a_new_table_keeps_the_plain_form():
    table = sa.Table("briefings", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True))
    add = ops.AddColumnOp("briefings", sa.Column("title", sa.Text, nullable=False))
    code = rewritten(ops.CreateTableOp.from_table(table), add)
    assert "op.add_column('briefings', sa.Column('title', sa.Text(), nullable=False))" in code
    assert "backfill" not in code


def test_check_still_reports_the_change_the_safe_form_stands_for():
    index = ops.CreateIndexOp("ix_ops_conf", "operations", ["confidence"])
    script = ops.MigrationScript("r1", upgrade_ops(ops.ModifyTableOps("operations", [index])),
                                 ops.DowngradeOps(ops=[]))
    before = [f.sentence() for f in findings_from_ops(script.upgrade_ops.ops)]
    safe_forms(None, None, [script])
    assert isinstance(script.upgrade_ops.ops[0].ops[0], SafeStepsOp)
    assert [f.sentence() for f in findings_from_ops(script.upgrade_ops.ops)] == before
    assert script.upgrade_ops.as_diffs()[0][0] == "add_index"


# -- retries on lock timeouts (pure) ----------------------------------------------------

class LockTimeout(Exception):
    sqlstate = "55P03"


def test_retry_stops_at_the_first_success_and_backs_off():
    calls, waits = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("ALTER TABLE", {}, LockTimeout("canceling statement due to lock timeout"))
        return "done"

    assert retry_on_lock_timeout(flaky, attempts=5, backoff=0.5, sleep=waits.append) == "done"
    assert len(calls) == 3 and waits == [0.5, 1.0]


def test_retry_gives_up_after_the_last_attempt_and_ignores_other_errors():
    waits = []
    with pytest.raises(LockTimeout):
        retry_on_lock_timeout(lambda: (_ for _ in ()).throw(LockTimeout()), attempts=3, sleep=waits.append)
    assert len(waits) == 2
    with pytest.raises(ValueError):
        retry_on_lock_timeout(lambda: (_ for _ in ()).throw(ValueError("no")), sleep=waits.append)
    assert len(waits) == 2
    assert is_lock_timeout(RuntimeError("wrapped")) is False


# -- real Postgres: the Sovren schema, a writer, a migration ----------------------------------

pg = pytest.mark.postgres


@dataclass
class Writer:
    """Inserts operations and subscriptions in a loop, one short transaction each, until stopped."""

    url: str
    users: list[str]
    lock_timeout: str = "5s"
    max_seconds: float = 120.0
    written: int = 0
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f"SET lock_timeout = '{self.lock_timeout}'")
            conn.execute(f"SET statement_timeout = '{int(self.max_seconds)}s'")
            while not self.stop.wait(0.002):
                user = random.choice(self.users)
                try:
                    conn.execute("INSERT INTO operations (operation_id, user_id, confidence) "
                                 "VALUES (gen_random_uuid(), %s, 50)", (user,))
                    conn.execute("INSERT INTO subscriptions (subscription_id, user_id, tier) "
                                 "VALUES (gen_random_uuid(), %s, 'pro')", (user,))
                    self.written += 1
                except psycopg.Error as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")

    def __enter__(self) -> "Writer":
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        timer = threading.Timer(self.max_seconds, self.stop.set)
        timer.daemon = True
        timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=self.max_seconds)


def load_rows(url: str, users: int = 500, rows: int = 100_000) -> list[str]:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # bulk load without the audit triggers
        conn.execute(f"INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
                     f"SELECT gen_random_uuid(), 'u' || i, 'x', 'u' || i || '@example.com', 'pro' "
                     f"FROM generate_series(1, {users}) i")
        ids = [r[0] for r in conn.execute("SELECT user_id::text FROM users")]
        conn.execute(f"INSERT INTO operations (operation_id, user_id, confidence, executed_at) "
                     f"SELECT gen_random_uuid(), (SELECT user_id FROM users OFFSET i % {users} LIMIT 1), "
                     f"i % 100, now() FROM generate_series(1, {rows}) i")
        conn.execute(f"INSERT INTO subscriptions (subscription_id, user_id, tier) "
                     f"SELECT gen_random_uuid(), (SELECT user_id FROM users OFFSET i % {users} LIMIT 1), 'pro' "
                     f"FROM generate_series(1, {rows // 2}) i")
    return ids


LIVE_CHANGES = [
    "DROP INDEX ix_operations_user_id_executed_at",          # partitioned: per partition, then attached
    "ALTER TABLE operations DROP CONSTRAINT operations_user_id_fkey",  # partitioned: NOT VALID per partition
    "DROP INDEX ix_subscriptions_user_id",
    "ALTER TABLE subscriptions DROP CONSTRAINT subscriptions_user_id_fkey",
    "ALTER TABLE subscriptions ALTER COLUMN tier DROP NOT NULL",
]


def migrate_under_a_writer(settings, pg_url: str, users: list[str]) -> "Writer":
    """Migrate while a writer inserts; it wrote before and after, and never failed."""
    with Writer(pg_url, users, lock_timeout=settings.lock_timeout) as writer:
        while writer.written < 20 and not writer.errors:
            writer.stop.wait(0.01)
        before = writer.written
        commands.migrate(settings)
        after_migration = writer.written
        while writer.written < after_migration + 20 and not writer.errors:
            writer.stop.wait(0.01)
    assert writer.errors == []
    assert before >= 20 and writer.written >= after_migration + 20
    return writer


@pg
def test_autogenerated_safe_revision_applies_under_a_concurrent_writer(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in LIVE_CHANGES:
            conn.execute(statement)
    users = load_rows(pg_url)
    written = commands.revision(settings, "restore indexes and constraints", autogenerate=True)
    source = open(written.data["written"][0]).read()
    for expected in ("op.create_index_concurrently('ix_operations_user_id_executed_at'",
                     "op.create_foreign_key_not_valid('operations_user_id_fkey'",
                     "op.validate_constraint('subscriptions_user_id_fkey', 'subscriptions')",
                     "op.add_not_null_check('subscriptions', 'tier')",
                     "with op.get_context().autocommit_block():"):
        assert expected in source, source

    writer = migrate_under_a_writer(settings, pg_url, users)

    assert commands.check(settings).findings == []
    with psycopg.connect(pg_url) as conn:
        invalid = conn.execute("SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid").fetchall()
        unvalidated = conn.execute("SELECT conname FROM pg_constraint WHERE NOT convalidated").fetchall()
        helpers = conn.execute("SELECT conname FROM pg_constraint WHERE conname LIKE '%not_null'").fetchall()
        counted = conn.execute("SELECT count(*) FROM subscriptions").fetchone()[0]
    assert invalid == [] and unvalidated == [] and helpers == []
    assert counted == 50_000 + writer.written


@pg
def test_a_failed_concurrent_build_is_rebuilt_on_the_next_run(pg_url):
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int, v int)")
        conn.execute("INSERT INTO t SELECT i, i % 3 FROM generate_series(1, 1000) i")
        with pytest.raises(pg_errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY ix_t_v ON t (v)")
        assert conn.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'ix_t_v'::regclass").fetchone() == (False,)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        with context.begin_transaction(), context.autocommit_block():
            Operations(context).create_index_concurrently("ix_t_v", "t", ["v"])
            Operations(context).create_index_concurrently("ix_t_v", "t", ["v"])  # re-entrant
    engine.dispose()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT indisvalid, indisunique FROM pg_index "
                            "WHERE indexrelid = 'ix_t_v'::regclass").fetchone() == (True, False)


BACKFILL = "# sovren-db: backfill users.subscription_tier here\n        pass\n"


@pg
def test_unique_constraint_and_not_null_column_apply_under_a_concurrent_writer(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings)
    users = load_rows(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE users DROP CONSTRAINT users_email_key")
        conn.execute("ALTER TABLE users DROP COLUMN subscription_tier")
    written = commands.revision(settings, "unique email, subscription tier back", autogenerate=True)
    path = written.data["written"][0]
    source = open(path).read()
    for expected in ("    op.create_index_concurrently('users_email_key', 'users', ['email'], unique=True)",
                     "op.create_unique_constraint_using_index('users_email_key', 'users')",
                     "op.add_column('users', sa.Column('subscription_tier', sa.VARCHAR(length=50), nullable=True), "
                     "if_not_exists=True)",
                     "    " + BACKFILL,
                     "op.add_not_null_check('users', 'subscription_tier')"):
        assert expected in source, source
    assert "op.drop_constraint('users_email_key', 'users', type_='unique')" in source  # the downgrade
    # the revision's author writes the backfill where the marker says
    backfill = "op.execute(\"UPDATE users SET subscription_tier = 'pro' WHERE subscription_tier IS NULL\")\n"
    open(path, "w").write(source.replace(BACKFILL, backfill))

    writer = migrate_under_a_writer(settings, pg_url, users)

    assert commands.check(settings).findings == []
    with psycopg.connect(pg_url) as conn:
        unique = conn.execute("SELECT contype, convalidated, i.indisvalid FROM pg_constraint c "
                              "JOIN pg_index i ON i.indexrelid = c.conindid "
                              "WHERE conrelid = 'users'::regclass AND conname = 'users_email_key'").fetchall()
        nullable = conn.execute("SELECT is_nullable FROM information_schema.columns "
                                "WHERE table_name = 'users' AND column_name = 'subscription_tier'").fetchone()
        helpers = conn.execute("SELECT conname FROM pg_constraint WHERE conname LIKE '%not_null'").fetchall()
        tiers = conn.execute("SELECT count(*) FROM users WHERE subscription_tier = 'pro'").fetchone()[0]
    assert unique == [("u", True, True)]
    assert nullable == ("NO",) and helpers == [] and tiers == len(users)

    commands.downgrade(settings, "-1")  # the reverse: the constraint (and its index) and the column dropped
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_class WHERE relname = 'users_email_key'").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' "
                            "AND column_name = 'subscription_tier'").fetchone() == (0,)


@pg
def test_an_unwritten_backfill_stops_the_revision_which_reruns_once_written(project, pg_url):
    settings = load_settings(project)
    commands.migrate(settings)
    load_rows(pg_url, users=50, rows=100)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE users DROP CONSTRAINT users_email_key")
        conn.execute("ALTER TABLE users DROP COLUMN subscription_tier")
    path = commands.revision(settings, "subscription tier back", autogenerate=True).data["written"][0]
    with pytest.raises(Exception) as stopped:
        commands.migrate(settings)  # as autogenerate wrote it: the NULLs fail the validation
    assert "users_subscription_tier_not_null" in str(stopped.value)
    with psycopg.connect(pg_url) as conn:  # half applied: the nullable column and its NOT VALID check committed
        assert conn.execute("SELECT convalidated FROM pg_constraint "
                            "WHERE conname = 'users_subscription_tier_not_null'").fetchall() == [(False,)]
        assert conn.execute("SELECT is_nullable FROM information_schema.columns WHERE table_name = 'users' "
                            "AND column_name = 'subscription_tier'").fetchone() == ("YES",)
    source = open(path).read()
    open(path, "w").write(source.replace(BACKFILL, "op.execute(\"UPDATE users SET subscription_tier = 'free' "
                                                   "WHERE subscription_tier IS NULL\")\n"))
    commands.migrate(settings)  # the rerun skips what is there and finishes
    assert commands.check(settings).findings == []
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT is_nullable FROM information_schema.columns WHERE table_name = 'users' "
                            "AND column_name = 'subscription_tier'").fetchone() == ("NO",)
        assert conn.execute("SELECT conname FROM pg_constraint WHERE conname LIKE '%not_null'").fetchall() == []


@pg
def test_a_unique_constraint_converges_from_a_failed_build(pg_url):
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id int, v int)")
        conn.execute("INSERT INTO t SELECT i, i % 3 FROM generate_series(1, 1000) i")
        with pytest.raises(pg_errors.UniqueViolation):
            conn.execute("CREATE UNIQUE INDEX CONCURRENTLY t_v_key ON t (v)")
        conn.execute("UPDATE t SET v = id")  # the duplicates fixed, the invalid index left behind

    def apply():
        with engine.connect() as connection:
            context = MigrationContext.configure(connection)
            with context.begin_transaction():
                with context.autocommit_block():
                    Operations(context).create_index_concurrently("t_v_key", "t", ["v"], unique=True)
                Operations(context).create_unique_constraint_using_index("t_v_key", "t")

    apply()
    with psycopg.connect(pg_url) as conn:
        oid = conn.execute("SELECT conindid FROM pg_constraint WHERE conname = 't_v_key'").fetchone()
    apply()  # re-entrant: the constraint's valid index is reused, the constraint not added twice
    engine.dispose()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT indisvalid, indisunique FROM pg_index "
                            "WHERE indexrelid = 't_v_key'::regclass").fetchone() == (True, True)
        assert conn.execute("SELECT conindid FROM pg_constraint WHERE conname = 't_v_key'").fetchone() == oid
        assert conn.execute("SELECT count(*) FROM pg_indexes WHERE tablename = 't'").fetchone() == (1,)
        with pytest.raises(pg_errors.UniqueViolation):
            conn.execute("INSERT INTO t VALUES (0, 1)")


@pg
def test_lock_timeout_is_retried_until_the_blocker_goes(pg_url):
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"))
    blocker = psycopg.connect(pg_url)
    blocker.execute("CREATE TABLE IF NOT EXISTS busy (id int)")
    blocker.commit()
    blocker.execute("LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")  # held until the first retry releases it
    attempts, errors = [], []

    def add_column():
        attempts.append(1)
        with engine.begin() as connection:
            connection.execute(sa.text("SET LOCAL lock_timeout = '100ms'"))
            connection.execute(sa.text("ALTER TABLE busy ADD COLUMN IF NOT EXISTS note text"))

    def release(attempt, exc, delay):
        errors.append(exc)
        blocker.rollback()

    try:
        retry_on_lock_timeout(add_column, attempts=3, backoff=0.0, on_retry=release)
    finally:
        blocker.close()
        engine.dispose()
    assert len(attempts) == 2 and len(errors) == 1 and is_lock_timeout(errors[0])
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM information_schema.columns "
                            "WHERE table_name = 'busy' AND column_name = 'note'").fetchone() == (1,)


# -- partitions, safe to schedule -------------------------------------------------------------

def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pg
def test_partitions_command_creates_what_is_missing_and_nothing_else(project, pg_url):
    commands.migrate(load_settings(project))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        latest = conn.execute("SELECT max(relname) FROM pg_class WHERE relname ~ '^operations_p[0-9]' AND relkind = 'r'").fetchone()[0]
        conn.execute(f"DROP TABLE {latest}")
    first = run("partitions")
    assert first.exit_code == 0, first.output
    assert f"operations: created {latest}" in first.output
    assert "audit_log: nothing to create" in first.output
    again = run("partitions", "--format", "json")
    assert again.exit_code == 0
    assert '"created": []' in again.output and latest in again.output
    more = run("partitions", "--months-ahead", "5")
    assert more.exit_code == 0 and more.output.count("created") == 2
    with psycopg.connect(pg_url) as conn:
        count = conn.execute("SELECT count(*) FROM pg_class WHERE relname ~ '^operations_p[0-9]' AND relkind = 'r'").fetchone()[0]
    assert count == 6
    assert commands.check(load_settings(project)).findings == []


@pg
def test_partitions_command_sends_six_statements_a_rule(project, pg_url):
    # lock_timeout, advisory lock, current_date, the partitions there before, the DO block, and after;
    # nothing more per rule, and no extra statement outside the rules' transactions.
    settings = load_settings(project)
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE operations_default")
    with recorded() as seen:
        report = maintain(settings)
    assert report["operations"]["created"] == ["operations_default"]
    assert "operations_default" not in report["operations"]["present"]
    assert len(report["operations"]["present"]) == len(report["audit_log"]["present"]) - 1 == 4
    assert report["audit_log"]["created"] == []
    assert len(seen) == 6 * len(report), seen
    assert sum(s.strip() == "SELECT current_date" for s in seen) == len(report)


@pg
def test_partitions_command_waits_for_migrate_at_most_lock_timeout(project, pg_url, monkeypatch):
    commands.migrate(load_settings(project))
    monkeypatch.setenv("SOVREN_LOCK_TIMEOUT", "50ms")
    with psycopg.connect(pg_url, autocommit=True) as migrating:
        migrating.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        result = CliRunner().invoke(cli, ["partitions"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "lock_timeout (50ms)" in lines[0], result.output
    assert run("partitions").exit_code == 0


def test_autogenerate_backfills_a_not_null_column_from_its_declared_default():
    table = sa.Table("users", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("tier", sa.Text, nullable=False, default="free"),
                     sa.Column("seen", sa.DateTime, nullable=False, default=sa.func.now()))
    code = rewritten(ops.ModifyTableOps("users", [ops.AddColumnOp.from_column_and_tablename(None, "users", c)
                                                  for c in (table.c.tier, table.c.seen)]))
    lines = code_lines(code)
    assert "# users holds data: tier added nullable, backfilled in batches from its default, then made NOT NULL " \
           "through a validated check" in lines
    assert "    op.backfill('users', '\"tier\" = \\'free\\'', where='\"tier\" IS NULL', batch_size=5000)" in lines
    assert "    op.backfill('users', '\"seen\" = now()', where='\"seen\" IS NULL', batch_size=5000)" in lines
    assert "pass" not in " ".join(lines)
    compile(code, "revision", "exec")
