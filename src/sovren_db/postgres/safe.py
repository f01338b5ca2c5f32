"""Schema changes on tables that already hold data, written so that readers and writers keep going.

Autogenerate (through :func:`with_safe_forms`, chained in ``env.py``) rewrites
each change to a table that is not created in the same revision:

- ``op.create_index`` -> ``op.create_index_concurrently`` inside
  ``with op.get_context().autocommit_block():`` (outside the transaction);
- ``op.drop_index`` -> ``op.drop_index_concurrently``, likewise;
- ``op.create_foreign_key`` / ``op.create_check_constraint`` ->
  ``op.create_foreign_key_not_valid`` / ``op.create_check_constraint_not_valid``
  (a brief lock, no scan), then ``op.validate_constraint`` in an autocommit
  block: its own transaction, whose lock lets reads and writes through;
- ``op.alter_column(nullable=False)`` -> ``op.add_not_null_check`` (NOT VALID),
  validated likewise, then ``SET NOT NULL`` (Postgres 12+ skips its scan thanks
  to the validated check), then ``op.drop_not_null_check``;
- ``op.create_unique_constraint`` -> ``op.create_index_concurrently(..., unique=True)``
  in an autocommit block (the index named like the constraint), then
  ``op.create_unique_constraint_using_index``: ``ADD CONSTRAINT ... UNIQUE USING
  INDEX``, a brief lock and no scan. The constraint is named as Postgres would
  (``<table>_<columns>_key``) when the declaration leaves it unnamed;
- ``op.add_column`` of a NOT NULL column without a server default (which fails on
  a table holding rows) -> ``op.add_column(..., nullable=True, if_not_exists=True)``,
  then an autocommit block holding the line ``# sovren-db: backfill
  <table>.<column> here`` and a ``pass``, which the revision's author replaces
  with the backfill (re-runnable, e.g. ``UPDATE ... WHERE <column> IS NULL``, in
  batches on a large table: each statement commits on its own, the column added
  and committed before), then the NOT NULL steps above. Left as written, the
  revision stops at the validation (check violation), the column added and
  nullable; once the backfill is written it reruns from there. A column with a
  server default (Postgres 11+ adds a constant one without a rewrite), an
  identity or a computed column is left as it is.

Each operation is re-entrant, so that a revision stopped half-way (a lock
timeout after an autocommit block, see :func:`retry_on_lock_timeout`) can be
run again: an invalid index left by a failed concurrent build is dropped and
rebuilt, a constraint that exists is not added twice. On a partitioned table
(``operations``, ``audit_log``) the index is built per partition and attached,
and a foreign key is added NOT VALID per partition, validated there, then added
to the parent, which adopts the validated copies without a scan. Postgres has no
``ADD CONSTRAINT ... USING INDEX`` on a partitioned table: there
``create_unique_constraint_using_index`` stops with an error (declare a unique
index instead).

Offline (``--sql``, ``plan``, ``lint``) every operation prints the SQL of a
first run; ``plan`` reads which tables are partitioned, and their partitions,
before it runs the revisions, so it prints the per-partition builds a migrate
runs (elsewhere a table counts as unpartitioned).
"""

from __future__ import annotations

import hashlib
import random
import time
from typing import Any, Callable, Iterable, TypeVar

from alembic.autogenerate import renderers
from alembic.autogenerate.render import render_op
from alembic.operations import MigrateOperation, Operations, ops
from sqlalchemy import text
from sqlalchemy.schema import CreateIndex

from ..core.errors import Refused
from ..drift import findings_from_ops

LOCK_NOT_AVAILABLE = "55P03"  # SQLSTATE of "canceling statement due to lock timeout"
MAX_IDENTIFIER = 63
T = TypeVar("T")


# -- names and the catalog --------------------------------------------------------

def bounded_name(name: str) -> str:
    """``name`` if Postgres keeps it whole, else a prefix plus a short hash (stable, unique)."""
    if len(name.encode()) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:MAX_IDENTIFIER - 9]}_{digest}"


def not_null_check_name(table: str, column: str) -> str:
    return bounded_name(f"{table}_{column}_not_null")


def partition_copy_name(partition: str, name: str) -> str:
    return bounded_name(f"{partition}_{name}")


def _regclass(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def _online(operations: Operations) -> bool:
    return not operations.migration_context.as_sql


def _scalar(operations: Operations, sql: str, **params: Any) -> Any:
    return operations.get_bind().execute(text(sql), params).scalar()


def _relkind(operations: Operations, relation: str) -> str | None:
    return _scalar(operations, "SELECT relkind::text FROM pg_class WHERE oid = to_regclass(:r)", r=relation)


def _partitions(operations: Operations, table: str) -> list[str]:
    rows = operations.get_bind().execute(text(
        "SELECT c.oid::regclass::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:t) ORDER BY 1"), {"t": table})
    return [r[0] for r in rows]


def _partitions_of(operations: Operations, table: str) -> list[str] | None:
    """The partitions of ``table`` when it is partitioned, None when it is not. Offline (``plan``),
    from the catalog as read before the revisions ran (:attr:`Runtime.partitioned`), so that
    the SQL printed is the SQL a migrate runs; a table created by the plan itself is not in it."""
    if _online(operations):
        return _partitions(operations, table) if _relkind(operations, table) == "p" else None
    from ..core.runtime import Runtime

    runtime = operations.migration_context.opts.get(Runtime.OPTS_KEY)
    return getattr(runtime, "partitioned", {}).get(table)


def _constraint_exists(operations: Operations, table: str, name: str) -> bool:
    return bool(_scalar(operations, "SELECT EXISTS (SELECT 1 FROM pg_constraint "
                                    "WHERE conrelid = to_regclass(:t) AND conname = :n)", t=table, n=name))


def _quote(operations: Operations, name: str) -> str:
    return operations.migration_context.dialect.identifier_preparer.quote(name)


# -- indexes ------------------------------------------------------------------------

@Operations.register_operation("create_index_concurrently")
class CreateIndexConcurrentlyOp(ops.CreateIndexOp):
    """CREATE INDEX CONCURRENTLY IF NOT EXISTS; call it inside ``op.get_context().autocommit_block()``."""

    @classmethod
    def create_index_concurrently(cls, operations: Operations, index_name: str, table_name: str,
                                  columns: Any, *, schema: str | None = None, unique: bool = False,
                                  **kw: Any) -> None:
        """Build an index without blocking writes; re-entrant (an invalid leftover is rebuilt)."""
        return operations.invoke(cls(index_name, table_name, columns, schema=schema, unique=unique, **kw))

    def reverse(self) -> "DropIndexConcurrentlyOp":
        return DropIndexConcurrentlyOp(self.index_name, self.table_name, schema=self.schema)

    def index_sql(self, operations: Operations, name: str, table: str, *, concurrently: bool,
                  only: bool = False) -> str:
        kw = {k: v for k, v in self.kw.items() if k != "postgresql_concurrently"}
        index = ops.CreateIndexOp(name, table, self.columns, schema=self.schema, unique=self.unique,
                                  postgresql_concurrently=concurrently, **kw).to_index(operations.migration_context)
        dialect = operations.migration_context.dialect
        sql = str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect))
        if only:  # the parent's index alone (invalid until every partition's index is attached)
            target = dialect.identifier_preparer.format_table(index.table)
            if f" ON {target} " not in sql:
                raise ValueError(f"cannot restrict {sql!r} to ONLY {target}")
            sql = sql.replace(f" ON {target} ", f" ON ONLY {target} ", 1)
        return sql


@Operations.implementation_for(CreateIndexConcurrentlyOp)
def _create_index_concurrently(operations: Operations, op: CreateIndexConcurrentlyOp) -> None:
    _build_index(operations, op, op.index_name, _regclass(op.schema, op.table_name))


def _build_index(operations: Operations, op: CreateIndexConcurrentlyOp, name: str, table: str) -> None:
    qualified, online = _regclass(op.schema, name), _online(operations)
    if online and _scalar(operations, "SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass(:i)",
                          i=qualified):
        operations.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {_quote(operations, name)}")
    partitions = _partitions_of(operations, table)
    if partitions is None:
        _concurrent_build(operations, op.index_sql(operations, name, table.split(".")[-1], concurrently=True),
                          name, table)
        return
    operations.execute(op.index_sql(operations, name, table.split(".")[-1], concurrently=False, only=True))
    for partition in partitions:
        copy = partition_copy_name(partition.split(".")[-1], name)
        _build_index(operations, op, copy, partition)
        attached = online and _scalar(
            operations, "SELECT EXISTS (SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(:c) "
                        "AND inhparent = to_regclass(:p))", c=_regclass(op.schema, copy), p=qualified)
        if not attached:
            operations.execute(f"ALTER INDEX {_quote(operations, name)} ATTACH PARTITION {_quote(operations, copy)}")


def _concurrent_build(operations: Operations, sql: str, name: str, table: str) -> None:
    """Online: with bounded parallel workers and memory (see :mod:`.indexbuild`), progress printed."""
    if not _online(operations):
        operations.execute(sql)
        return
    from ..core.runtime import Runtime
    from .indexbuild import limit_build, reporting_progress

    connection = operations.get_bind()
    limit_build(connection, getattr(operations.migration_context.opts.get(Runtime.OPTS_KEY), "settings", None))
    with reporting_progress(connection, name, table):
        operations.execute(sql)


@Operations.register_operation("drop_index_concurrently")
class DropIndexConcurrentlyOp(ops.DropIndexOp):
    """DROP INDEX CONCURRENTLY IF EXISTS; call it inside ``op.get_context().autocommit_block()``."""

    @classmethod
    def drop_index_concurrently(cls, operations: Operations, index_name: str, table_name: str | None = None,
                                *, schema: str | None = None) -> None:
        """Drop an index without blocking reads and writes (a partitioned index: a plain, brief DROP)."""
        return operations.invoke(cls(index_name, table_name, schema=schema))


@Operations.implementation_for(DropIndexConcurrentlyOp)
def _drop_index_concurrently(operations: Operations, op: DropIndexConcurrentlyOp) -> None:
    name = _quote(operations, op.index_name)
    partitioned = _online(operations) and _relkind(operations, _regclass(op.schema, op.index_name)) == "I"
    operations.execute(f"DROP INDEX IF EXISTS {name}" if partitioned else f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


# -- constraints --------------------------------------------------------------------

@Operations.register_operation("create_foreign_key_not_valid")
class CreateForeignKeyNotValidOp(ops.CreateForeignKeyOp):
    """ADD CONSTRAINT ... FOREIGN KEY ... NOT VALID: a brief lock, no scan; validate it in its own step."""

    @classmethod
    def create_foreign_key_not_valid(cls, operations: Operations, constraint_name: str, source_table: str,
                                     referent_table: str, local_cols: list[str], remote_cols: list[str],
                                     **kw: Any) -> None:
        """Add a foreign key that only new rows are checked against, until validate_constraint."""
        return operations.invoke(cls(constraint_name, source_table, referent_table, local_cols, remote_cols,
                                     postgresql_not_valid=True, **kw))


@Operations.implementation_for(CreateForeignKeyNotValidOp)
def _create_foreign_key_not_valid(operations: Operations, op: CreateForeignKeyNotValidOp) -> None:
    table = _regclass(op.kw.get("source_schema"), op.source_table)
    if _online(operations) and _constraint_exists(operations, table, op.constraint_name):
        return
    if _partitions_of(operations, table) is not None:
        _foreign_key_per_partition(operations, op, table)
        return
    _add_constraint(operations, op)


def _foreign_key_per_partition(operations: Operations, op: CreateForeignKeyNotValidOp, table: str) -> None:
    """Postgres refuses NOT VALID foreign keys on a partitioned table: add one to each partition
    (validate_constraint then adds the parent's, which adopts them)."""
    partitions = _partitions_of(operations, table)
    if not partitions:  # no rows anywhere: the parent's constraint costs nothing
        _add_constraint(operations, _with_table(op, op.source_table, op.constraint_name, valid=True))
        return
    for partition in partitions:
        copy = partition_copy_name(partition.split(".")[-1], op.constraint_name)
        if not _online(operations) or not _constraint_exists(operations, partition, copy):
            _add_constraint(operations, _with_table(op, partition.split(".")[-1], copy))


def _with_table(op: CreateForeignKeyNotValidOp, table: str, name: str, *, valid: bool = False):
    kw = dict(op.kw, postgresql_not_valid=not valid)
    return ops.CreateForeignKeyOp(name, table, op.referent_table, op.local_cols, op.remote_cols, **kw)


def _add_constraint(operations: Operations, op: ops.AddConstraintOp) -> None:
    operations.impl.add_constraint(op.to_constraint(operations.migration_context))


@Operations.register_operation("create_check_constraint_not_valid")
class CreateCheckConstraintNotValidOp(ops.CreateCheckConstraintOp):
    """ADD CONSTRAINT ... CHECK ... NOT VALID; validate it in its own step."""

    @classmethod
    def create_check_constraint_not_valid(cls, operations: Operations, constraint_name: str, table_name: str,
                                          condition: Any, *, schema: str | None = None, **kw: Any) -> None:
        """Add a check constraint that only new rows are checked against, until validate_constraint."""
        return operations.invoke(cls(constraint_name, table_name, condition, schema=schema,
                                     postgresql_not_valid=True, **kw))


@Operations.implementation_for(CreateCheckConstraintNotValidOp)
def _create_check_not_valid(operations: Operations, op: CreateCheckConstraintNotValidOp) -> None:
    if _online(operations) and _constraint_exists(operations, _regclass(op.schema, op.table_name), op.constraint_name):
        return
    _add_constraint(operations, op)


class _TableOp(MigrateOperation):
    """A small operation on one table, rendered as ``op.<op_name>(args...)``."""

    op_name = ""

    def __init__(self, table_name: str, name: str, *, schema: str | None = None):
        self.table_name, self.name, self.schema = table_name, name, schema

    def args(self) -> list[str]:
        return [repr(self.name), repr(self.table_name)] + ([f"schema={self.schema!r}"] if self.schema else [])

    def render(self) -> str:
        return f"op.{self.op_name}({', '.join(self.args())})"

    def table(self) -> str:
        return _regclass(self.schema, self.table_name)


@Operations.register_operation("validate_constraint")
class ValidateConstraintOp(_TableOp):
    """VALIDATE CONSTRAINT: scans with a lock that lets reads and writes through. Call it inside
    ``autocommit_block()`` so that it is a transaction of its own, apart from the brief lock that added it."""

    op_name = "validate_constraint"

    @classmethod
    def validate_constraint(cls, operations: Operations, constraint_name: str, table_name: str,
                            *, schema: str | None = None) -> None:
        """Check the existing rows against a NOT VALID constraint and mark it valid."""
        return operations.invoke(cls(table_name, constraint_name, schema=schema))


@Operations.implementation_for(ValidateConstraintOp)
def _validate_constraint(operations: Operations, op: ValidateConstraintOp) -> None:
    table = op.table()
    if _online(operations) and _relkind(operations, table) == "p" and not _constraint_exists(operations, table, op.name):
        _adopt_partition_copies(operations, op)
        return
    # validating twice is harmless, so a rerun of a half-applied revision is fine
    operations.execute(f"-- squawk-ignore prefer-robust-stmts\n"
                       f"ALTER TABLE {_quote(operations, op.table_name)} VALIDATE CONSTRAINT {_quote(operations, op.name)}")


def _adopt_partition_copies(operations: Operations, op: ValidateConstraintOp) -> None:
    """Validate the per-partition copies of a foreign key, then add it to the parent (no scan)."""
    definition = None
    for partition in _partitions(operations, op.table()):
        copy = partition_copy_name(partition.split(".")[-1], op.name)
        operations.execute(f"ALTER TABLE {partition} VALIDATE CONSTRAINT {_quote(operations, copy)}")
        definition = definition or _scalar(operations, "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                                                       "WHERE conrelid = to_regclass(:t) AND conname = :n",
                                           t=partition, n=copy)
    if definition is None:
        raise LookupError(f"constraint {op.name} is neither on {op.table()} nor on its partitions")
    definition = definition.replace(" NOT VALID", "")
    operations.execute(f"ALTER TABLE {_quote(operations, op.table_name)} "
                       f"ADD CONSTRAINT {_quote(operations, op.name)} {definition}")


@Operations.register_operation("add_not_null_check")
class AddNotNullCheckOp(_TableOp):
    """CHECK (column IS NOT NULL) NOT VALID, named ``<table>_<column>_not_null``: the first step of SET NOT NULL."""

    op_name = "add_not_null_check"

    def args(self) -> list[str]:
        return [repr(self.table_name), repr(self.name)] + ([f"schema={self.schema!r}"] if self.schema else [])

    @classmethod
    def add_not_null_check(cls, operations: Operations, table_name: str, column_name: str,
                           *, schema: str | None = None) -> None:
        """Add the NOT VALID check that lets SET NOT NULL skip its scan once validated."""
        return operations.invoke(cls(table_name, column_name, schema=schema))

    def reverse(self) -> "DropNotNullCheckOp":
        return DropNotNullCheckOp(self.table_name, self.name, schema=self.schema)


@Operations.implementation_for(AddNotNullCheckOp)
def _add_not_null_check(operations: Operations, op: AddNotNullCheckOp) -> None:
    name = not_null_check_name(op.table_name, op.name)
    condition = f"{_quote(operations, op.name)} IS NOT NULL"
    _create_check_not_valid(operations, CreateCheckConstraintNotValidOp(
        name, op.table_name, text(condition), schema=op.schema, postgresql_not_valid=True))


@Operations.register_operation("drop_not_null_check")
class DropNotNullCheckOp(AddNotNullCheckOp):
    """Drop the helper check once the column is NOT NULL (the column carries the guarantee now)."""

    op_name = "drop_not_null_check"

    @classmethod
    def drop_not_null_check(cls, operations: Operations, table_name: str, column_name: str,
                            *, schema: str | None = None) -> None:
        """Drop the check that add_not_null_check added."""
        return operations.invoke(cls(table_name, column_name, schema=schema))

    def reverse(self) -> AddNotNullCheckOp:
        return AddNotNullCheckOp(self.table_name, self.name, schema=self.schema)


@Operations.implementation_for(DropNotNullCheckOp)
def _drop_not_null_check(operations: Operations, op: DropNotNullCheckOp) -> None:
    name = _quote(operations, not_null_check_name(op.table_name, op.name))
    operations.execute(f"-- squawk-ignore ban-drop-constraint\n"
                       f"ALTER TABLE {_quote(operations, op.table_name)} DROP CONSTRAINT IF EXISTS {name}")


@Operations.register_operation("create_unique_constraint_using_index")
class CreateUniqueUsingIndexOp(_TableOp):
    """ADD CONSTRAINT ... UNIQUE USING INDEX: turns a valid unique index (built CONCURRENTLY beforehand,
    named like the constraint unless ``index_name`` says otherwise) into the constraint; a brief lock, no scan."""

    op_name = "create_unique_constraint_using_index"

    def __init__(self, table_name: str, name: str, *, schema: str | None = None, index_name: str | None = None,
                 deferrable: bool | None = None, initially: str | None = None):
        super().__init__(table_name, name, schema=schema)
        self.index_name, self.deferrable, self.initially = index_name or name, deferrable, initially

    def args(self) -> list[str]:
        extra = [f"index_name={self.index_name!r}"] if self.index_name != self.name else []
        extra += [f"{k}={getattr(self, k)!r}" for k in ("deferrable", "initially") if getattr(self, k) is not None]
        return super().args() + extra

    @classmethod
    def create_unique_constraint_using_index(cls, operations: Operations, constraint_name: str, table_name: str,
                                             *, index_name: str | None = None, schema: str | None = None,
                                             deferrable: bool | None = None, initially: str | None = None) -> None:
        """Add a unique constraint backed by an existing valid unique index; skipped when the constraint exists."""
        return operations.invoke(cls(table_name, constraint_name, schema=schema, index_name=index_name,
                                     deferrable=deferrable, initially=initially))

    def reverse(self) -> ops.DropConstraintOp:
        return ops.DropConstraintOp(self.name, self.table_name, type_="unique", schema=self.schema)


@Operations.implementation_for(CreateUniqueUsingIndexOp)
def _create_unique_using_index(operations: Operations, op: CreateUniqueUsingIndexOp) -> None:
    if _online(operations):
        if _constraint_exists(operations, op.table(), op.name):
            return
        if _relkind(operations, op.table()) == "p":
            raise Refused(
                f"Unique constraint {op.name} refused: {op.table()} is partitioned and Postgres cannot add a "
                "constraint USING INDEX there; declare a unique index (built per partition and attached) instead.")
    table = _quote(operations, op.table_name)
    if op.schema:
        table = f"{_quote(operations, op.schema)}.{table}"
    sql = f"ALTER TABLE {table} ADD CONSTRAINT {_quote(operations, op.name)} UNIQUE USING INDEX " \
          f"{_quote(operations, op.index_name)}"
    if op.deferrable is not None:
        sql += " DEFERRABLE" if op.deferrable else " NOT DEFERRABLE"
    if op.initially:
        sql += f" INITIALLY {op.initially.upper()}"
    operations.execute(sql)


for _op_class in (ValidateConstraintOp, AddNotNullCheckOp, DropNotNullCheckOp,
                  CreateUniqueUsingIndexOp):
    renderers.dispatch_for(_op_class)(lambda autogen_context, op: op.render())


def _renamed(base_renderer: Callable, old: str, new: str) -> Callable:
    def render(autogen_context: Any, op: Any) -> str:
        return base_renderer(autogen_context, op).replace(old, new, 1)

    return render


renderers.dispatch_for(CreateIndexConcurrentlyOp)(_renamed(
    lambda ctx, op: render_op(ctx, ops.CreateIndexOp(op.index_name, op.table_name, op.columns, schema=op.schema,
                                                     unique=op.unique, **op.kw))[0],
    "create_index(", "create_index_concurrently("))
renderers.dispatch_for(DropIndexConcurrentlyOp)(
    lambda ctx, op: f"op.drop_index_concurrently({op.index_name!r}, {op.table_name!r}"
                    + (f", schema={op.schema!r}" if op.schema else "") + ")")
renderers.dispatch_for(CreateForeignKeyNotValidOp)(_renamed(
    lambda ctx, op: render_op(ctx, ops.CreateForeignKeyOp(
        op.constraint_name, op.source_table, op.referent_table, op.local_cols, op.remote_cols,
        **{k: v for k, v in op.kw.items() if k != "postgresql_not_valid"}))[0],
    "create_foreign_key(", "create_foreign_key_not_valid("))
renderers.dispatch_for(CreateCheckConstraintNotValidOp)(_renamed(
    lambda ctx, op: render_op(ctx, ops.CreateCheckConstraintOp(
        op.constraint_name, op.table_name, op.condition, schema=op.schema,
        **{k: v for k, v in op.kw.items() if k != "postgresql_not_valid"}))[0],
    "create_check_constraint(", "create_check_constraint_not_valid("))


# -- autogenerate: the rewrite ---------------------------------------------------------

class AutocommitBlock:
    """Steps rendered inside ``with op.get_context().autocommit_block():``."""

    def __init__(self, *steps: MigrateOperation):
        self.steps = steps


class BackfillHere:
    """Where the revision's author backfills a column added nullable, before it is made NOT NULL: a marked
    comment (and a ``pass`` to replace) inside an autocommit block, so that the column is committed first
    and each backfill statement is a transaction of its own (no lock held across the whole backfill)."""

    def __init__(self, table_name: str, column_name: str):
        self.table_name, self.column_name = table_name, column_name

    def render(self) -> list[str]:
        return [f"# sovren-db: backfill {self.table_name}.{self.column_name} here", "pass"]


class SafeStepsOp(MigrateOperation):
    """One autogenerated change written as the steps that keep its table usable.

    ``check`` sees the change it stands for (same diff tuple, same drift sentence).
    """

    def __init__(self, original: MigrateOperation, why: str,
                 steps: Iterable[MigrateOperation | AutocommitBlock]):
        self.original, self.why, self.steps = original, why, list(steps)

    def to_diff_tuple(self) -> Any:
        return self.original.to_diff_tuple()

    def drift(self) -> tuple[str, str]:
        finding = findings_from_ops([self.original])[0]
        return finding.object, finding.message

    def reverse(self) -> MigrateOperation:
        return self.original.reverse()


@renderers.dispatch_for(SafeStepsOp)
def _render_safe_steps(autogen_context: Any, op: SafeStepsOp) -> list[str]:
    lines = [f"# {op.why}"]
    for step in op.steps:
        if isinstance(step, AutocommitBlock):
            lines.append("with op.get_context().autocommit_block():")
            for inner in step.steps:
                lines.extend(inner.render() if isinstance(inner, BackfillHere) else render_op(autogen_context, inner))
            lines.append("")  # ends the block (mako's printer dedents on an empty line)
        else:
            lines.extend(render_op(autogen_context, step))
    return lines


def _index_steps(op: ops.CreateIndexOp) -> list:
    kw = {k: v for k, v in op.kw.items() if k != "postgresql_concurrently"}
    build = CreateIndexConcurrentlyOp(op.index_name, op.table_name, op.columns, schema=op.schema,
                                      unique=op.unique, **kw)
    return [AutocommitBlock(build)]


def _fk_steps(op: ops.CreateForeignKeyOp) -> list:
    name = op.constraint_name or bounded_name(f"{op.source_table}_{'_'.join(op.local_cols)}_fkey")
    kw = {k: v for k, v in op.kw.items() if k != "postgresql_not_valid"}
    add = CreateForeignKeyNotValidOp(name, op.source_table, op.referent_table, op.local_cols, op.remote_cols,
                                     postgresql_not_valid=True, **kw)
    return [add, AutocommitBlock(ValidateConstraintOp(op.source_table, name, schema=kw.get("source_schema")))]


def _check_steps(op: ops.CreateCheckConstraintOp) -> list:
    name = op.constraint_name or bounded_name(f"{op.table_name}_check")
    kw = {k: v for k, v in op.kw.items() if k != "postgresql_not_valid"}
    add = CreateCheckConstraintNotValidOp(name, op.table_name, op.condition, schema=op.schema,
                                          postgresql_not_valid=True, **kw)
    return [add, AutocommitBlock(ValidateConstraintOp(op.table_name, name, schema=op.schema))]


def _not_null_steps(op: ops.AlterColumnOp) -> list:
    steps: list = []
    rest = dict(op.kw)
    others = {k: getattr(op, k) for k in ("modify_type", "modify_server_default", "modify_comment",
                                          "modify_name")}
    if op.modify_type is not None or op.modify_server_default is not False or op.modify_comment is not False \
            or op.modify_name is not None:
        steps.append(ops.AlterColumnOp(op.table_name, op.column_name, schema=op.schema,
                                       existing_type=op.existing_type,
                                       existing_server_default=op.existing_server_default,
                                       existing_nullable=op.existing_nullable,
                                       existing_comment=op.existing_comment, **others, **rest))
    name = not_null_check_name(op.table_name, op.column_name)
    column = op.modify_name or op.column_name
    set_not_null = ops.AlterColumnOp(op.table_name, column, schema=op.schema, modify_nullable=False,
                                     existing_type=op.modify_type if op.modify_type is not None else op.existing_type,
                                     existing_nullable=True)
    return steps + [AddNotNullCheckOp(op.table_name, column, schema=op.schema),
                    AutocommitBlock(ValidateConstraintOp(op.table_name, name, schema=op.schema)),
                    set_not_null, DropNotNullCheckOp(op.table_name, column, schema=op.schema)]


def unique_constraint_name(table: str, columns: Iterable[str]) -> str:
    """The name Postgres gives an unnamed unique constraint (``<table>_<columns>_key``), bounded."""
    return bounded_name(f"{table}_{'_'.join(columns)}_key")


def _unique_steps(op: ops.CreateUniqueConstraintOp) -> list:
    columns = [getattr(c, "name", c) for c in op.columns]
    name = op.constraint_name or unique_constraint_name(op.table_name, columns)
    kw = dict(op.kw)
    deferrable, initially = kw.pop("deferrable", None), kw.pop("initially", None)
    index_kw = {k: v for k, v in kw.items() if k.startswith("postgresql_")}
    build = CreateIndexConcurrentlyOp(name, op.table_name, columns, schema=op.schema, unique=True, **index_kw)
    attach = CreateUniqueUsingIndexOp(op.table_name, name, schema=op.schema, deferrable=deferrable,
                                      initially=initially)
    return [AutocommitBlock(build), attach]


def _needs_backfill(op: ops.AddColumnOp) -> bool:
    column = op.column
    return (column.nullable is False and column.server_default is None and column.computed is None
            and column.identity is None and not column.primary_key)


def _declared_fill(op: ops.AddColumnOp) -> MigrateOperation | None:
    """``op.backfill`` of the column's declared default (a value or a SQL expression), if it has one."""
    from sqlalchemy import literal
    from sqlalchemy.dialects import postgresql

    from .backfill import BackfillOp

    default = op.column.default
    if default is None or not (default.is_scalar or default.is_clause_element):
        return None
    value = literal(default.arg, type_=op.column.type) if default.is_scalar else default.arg
    sql = str(value.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))
    name = f'"{op.column.name}"'
    return BackfillOp(op.table_name, f"{name} = {sql}", where=f"{name} IS NULL", schema=op.schema)


def _add_not_null_column_steps(op: ops.AddColumnOp) -> list:
    column = op.column._copy()
    column.nullable = True
    add = ops.AddColumnOp(op.table_name, column, schema=op.schema, if_not_exists=True, **op.kw)
    not_null = ops.AlterColumnOp(op.table_name, column.name, schema=op.schema, modify_nullable=False,
                                 existing_type=column.type, existing_nullable=True)
    fill = _declared_fill(op) or BackfillHere(op.table_name, column.name)
    return [add, AutocommitBlock(fill), *_not_null_steps(not_null)]


_WHY = "{table} holds data: {what}"


def safe_form(op: MigrateOperation) -> SafeStepsOp | None:
    """The safe form of one change to an existing table, or None when it is safe as it is."""
    if isinstance(op, (CreateIndexConcurrentlyOp, DropIndexConcurrentlyOp)):
        return None
    if isinstance(op, ops.CreateIndexOp):
        return SafeStepsOp(op, _WHY.format(table=op.table_name, what="index built without blocking writes"),
                           _index_steps(op))
    if isinstance(op, ops.DropIndexOp):
        drop = DropIndexConcurrentlyOp(op.index_name, op.table_name, schema=op.schema)
        return SafeStepsOp(op, _WHY.format(table=op.table_name, what="index dropped without blocking queries"),
                           [AutocommitBlock(drop)])
    if isinstance(op, ops.CreateForeignKeyOp) and not isinstance(op, CreateForeignKeyNotValidOp):
        return SafeStepsOp(op, _WHY.format(table=op.source_table, what="foreign key added NOT VALID, "
                                           "then validated in its own transaction"), _fk_steps(op))
    if isinstance(op, ops.CreateCheckConstraintOp) and not isinstance(op, CreateCheckConstraintNotValidOp):
        return SafeStepsOp(op, _WHY.format(table=op.table_name, what="check added NOT VALID, "
                                           "then validated in its own transaction"), _check_steps(op))
    if isinstance(op, ops.CreateUniqueConstraintOp):
        return SafeStepsOp(op, _WHY.format(table=op.table_name, what="unique index built without blocking "
                                           "writes, then made the constraint"), _unique_steps(op))
    if isinstance(op, ops.AddColumnOp) and _needs_backfill(op):
        how = "backfilled in batches from its default" if _declared_fill(op) else "backfilled by hand"
        return SafeStepsOp(op, _WHY.format(table=op.table_name, what=f"{op.column.name} added nullable, "
                                           f"{how}, then made NOT NULL through a validated check"),
                           _add_not_null_column_steps(op))
    if isinstance(op, ops.AlterColumnOp) and op.modify_nullable is False:
        return SafeStepsOp(op, _WHY.format(table=op.table_name, what=f"{op.column_name} made NOT NULL through "
                                           "a validated check, without a long exclusive scan"), _not_null_steps(op))
    return None


def _table_of(op: MigrateOperation) -> str | None:
    return getattr(op, "table_name", None) or getattr(op, "source_table", None)


def _named_unique_drop(op: MigrateOperation) -> MigrateOperation:
    """The downgrade of an unnamed unique constraint drops it by the name the upgrade (and Postgres) gave it."""
    if not (isinstance(op, ops.DropConstraintOp) and op.constraint_type == "unique" and op.constraint_name is None
            and isinstance(op._reverse, ops.CreateUniqueConstraintOp)):
        return op
    columns = [getattr(c, "name", c) for c in op._reverse.columns]
    return ops.DropConstraintOp(unique_constraint_name(op.table_name, columns), op.table_name, type_="unique",
                                schema=op.schema, _reverse=op._reverse)


def _rewrite(container: ops.OpContainer, new_tables: set[str], proposal: Any = None, downgrade: bool = False) -> None:
    from .expand import rename_hints, type_change_form, with_hint

    rewritten: list[MigrateOperation] = []
    hints = {} if downgrade else rename_hints(container.ops, proposal)
    for op in container.ops:
        if isinstance(op, ops.ModifyTableOps):
            if op.table_name not in new_tables:
                _rewrite(op, new_tables, proposal, downgrade)
        elif _table_of(op) not in new_tables:
            hint = hints.get(id(op))
            op = type_change_form(op, proposal, downgrade) or safe_form(op) or _named_unique_drop(op)
            op = with_hint(op, hint)
        rewritten.append(op)
    container.ops[:] = rewritten


def _new_tables(container: ops.OpContainer) -> set[str]:
    """Tables created or dropped by the same list of operations: they hold no live rows to protect."""
    return {op.table_name for op in container.ops if isinstance(op, (ops.CreateTableOp, ops.DropTableOp))}


def safe_forms(context: Any, revision: Any, directives: list) -> None:
    """``process_revision_directives``: write the safe form of every change to an existing table."""
    from .expand import Proposal

    for script in directives:
        if not any(c.ops for c in [*script.upgrade_ops_list, *script.downgrade_ops_list]):
            continue  # nothing to rewrite (check of a database in step): the expands in progress are not read
        proposal = Proposal.read(context, script.rev_id or "next")
        for container in script.upgrade_ops_list:
            _rewrite(container, _new_tables(container), proposal)
        for container in script.downgrade_ops_list:
            _rewrite(container, _new_tables(container), proposal, downgrade=True)


def with_safe_forms(process: Callable[[Any, Any, list], None]) -> Callable[[Any, Any, list], None]:
    """Chain :func:`safe_forms` before another ``process_revision_directives`` hook."""

    def chained(context: Any, revision: Any, directives: list) -> None:
        safe_forms(context, revision, directives)
        process(context, revision, directives)

    return chained


# -- lock timeouts ------------------------------------------------------------------------

def is_lock_timeout(exc: BaseException) -> bool:
    """True when ``exc`` (or the driver error it wraps) is Postgres' lock timeout, SQLSTATE 55P03."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if getattr(current, "sqlstate", None) == LOCK_NOT_AVAILABLE or getattr(current, "pgcode", None) == LOCK_NOT_AVAILABLE:
            return True
        stack.extend([getattr(current, "orig", None), current.__cause__, current.__context__])
    return False


def exponential_backoff(attempt: int, *, base: float = 0.5, cap: float = 10.0) -> float:
    """Seconds to wait after the ``attempt``-th lock timeout: doubling from ``base``, capped, jittered."""
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)


def retry_on_lock_timeout(fn: Callable[[], T], attempts: int = 5,
                          backoff: float | Callable[[int], float] = exponential_backoff, *,
                          sleep: Callable[[float], None] = time.sleep,
                          on_retry: Callable[[int, BaseException, float], None] | None = None) -> T:
    """Call ``fn``; when it fails on a lock timeout, wait and call it again, ``attempts`` times in all.

    ``backoff`` is seconds (doubled after each attempt) or a function of the attempt number.
    ``on_retry(attempt, error, delay)`` runs before each wait. Any other error, and the lock
    timeout of the last attempt, propagate unchanged.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as exc:
            if attempt == attempts or not is_lock_timeout(exc):
                raise
            delay = backoff(attempt) if callable(backoff) else float(backoff) * 2 ** (attempt - 1)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover
