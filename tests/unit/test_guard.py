"""One check refuses destructive steps in protected environments: Alembic's drops, sovren-db's Postgres
object operations; registered operations run and render through one registration. No server."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from alembic.autogenerate import render_python_code
from alembic.operations import Operations
from alembic.operations import ops as alembic_ops
from alembic.runtime.migration import MigrationContext

from sovren_db.core.errors import Refused
from sovren_db.core.guard import _guarded, refuse_destructive
from sovren_db.core.runtime import Runtime
from sovren_db.postgres import ops as pg_ops
from sovren_db.postgres.state import Policy

POLICY = Policy("t_tenant", "t", using="user_id = 1", roles=("app",))


def runtime(environment: str = "production", allow: bool = False) -> SimpleNamespace:
    settings = SimpleNamespace(environment=environment, protected=environment in ("production", "staging"))
    return SimpleNamespace(settings=settings, allow_destructive=allow)


class Recorder:
    """Stands for Alembic's Operations: the migration context and the statements executed."""

    def __init__(self, run: SimpleNamespace | None, as_sql: bool = False):
        opts = {Runtime.OPTS_KEY: run} if run is not None else {}
        self.migration_context = SimpleNamespace(opts=opts, as_sql=as_sql)
        self.executed: list[str] = []

    def execute(self, statement: str) -> None:
        self.executed.append(statement)


@pytest.mark.parametrize("run, as_sql, refused", [
    (runtime(), False, True),
    (runtime(allow=True), False, False),
    (runtime("development"), False, False),
    (runtime(), True, False),       # plan / --sql only prints
    (None, False, False),           # not run by sovren-db
])
def test_refuse_destructive(run, as_sql, refused):
    operations = Recorder(run, as_sql)
    if refused:
        with pytest.raises(Refused, match="Destructive step 'drop x' refused: environment 'production'"):
            refuse_destructive(operations, "drop x")  # type: ignore[arg-type]
    else:
        refuse_destructive(operations, "drop x")  # type: ignore[arg-type]


def test_postgres_object_operations_use_the_same_check():
    operations = Recorder(runtime())
    with pytest.raises(Refused, match="drop policy t_tenant on t"):
        pg_ops._execute(operations, pg_ops.DropPolicyOp(POLICY))  # type: ignore[arg-type]
    assert operations.executed == []
    pg_ops._execute(operations, pg_ops.CreatePolicyOp(POLICY))  # type: ignore[arg-type]  # not destructive
    allowed = Recorder(runtime(allow=True))
    pg_ops._execute(allowed, pg_ops.DropPolicyOp(POLICY))  # type: ignore[arg-type]
    assert allowed.executed == ["DROP POLICY IF EXISTS t_tenant ON t"]


def test_alembic_drops_use_the_same_check():
    ran: list[str] = []
    guarded = _guarded(lambda operations, op, **kw: ran.append(op.table_name), lambda op: f"drop table {op.table_name}")
    with pytest.raises(Refused, match="drop table users"):
        guarded(Recorder(runtime()), alembic_ops.DropTableOp("users"))
    guarded(Recorder(runtime(allow=True)), alembic_ops.DropTableOp("users"))
    assert ran == ["users"]


def test_registered_operation_runs_from_a_revision_and_renders_as_it_is_called():
    buffer = io.StringIO()
    context = MigrationContext.configure(dialect_name="postgresql", opts={
        "as_sql": True, "output_buffer": buffer, Runtime.OPTS_KEY: runtime()})
    Operations(context).drop_policy(name="t_tenant", table="t", using="user_id = 1", roles=["app"])
    assert "DROP POLICY IF EXISTS t_tenant ON t" in buffer.getvalue()  # printed, not refused
    rendered = render_python_code(alembic_ops.UpgradeOps(ops=[pg_ops.DropPolicyOp(POLICY)]))
    assert "op.drop_policy(" in rendered and "name='t_tenant'" in rendered and "roles=('app',)" in rendered
