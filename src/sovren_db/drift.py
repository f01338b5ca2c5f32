"""Turn the operations a comparison produced into findings that name each object.

sovren-db's own operations (Postgres objects, Mongo, Redis) say what they
fix through ``drift()``; Alembic's table operations are described here.
"""

from __future__ import annotations

from alembic.operations import ops as alembic_ops

from .core.findings import Finding

def findings_from_ops(operations: list) -> list[Finding]:
    findings: list[Finding] = []
    for op in operations:
        if isinstance(op, alembic_ops.ModifyTableOps):
            findings += [_finding(sub, op.table_name) for sub in op.ops]
        else:
            findings.append(_finding(op, None))
    return findings


def _finding(op, table: str | None) -> Finding:
    if hasattr(op, "drift"):
        obj, message = op.drift()
        return Finding(getattr(op, "store", "postgres"), obj, message)
    obj, message = _describe_alembic(op, table)
    return Finding("postgres", obj, message)


def _describe_alembic(op, table: str | None) -> tuple[str, str]:
    if isinstance(op, alembic_ops.CreateTableOp):
        return (f"table {op.table_name}", "missing in database")
    if isinstance(op, alembic_ops.DropTableOp):
        return (f"table {op.table_name}", "in database but not declared")
    if isinstance(op, alembic_ops.AddColumnOp):
        return (f"column {op.table_name}.{op.column.name}", "missing in database")
    if isinstance(op, alembic_ops.DropColumnOp):
        return (f"column {op.table_name}.{op.column_name}", "in database but not declared")
    if isinstance(op, alembic_ops.AlterColumnOp):
        return (f"column {op.table_name}.{op.column_name}", _column_change(op))
    if isinstance(op, alembic_ops.CreateIndexOp):
        return (f"index {op.index_name} on {op.table_name}", "missing in database")
    if isinstance(op, alembic_ops.DropIndexOp):
        return (f"index {op.index_name} on {op.table_name}", "in database but not declared")
    if isinstance(op, alembic_ops.CreateForeignKeyOp):
        return (f"foreign key {op.constraint_name or '(unnamed)'} on {op.source_table}", "missing in database")
    if isinstance(op, alembic_ops.AddConstraintOp):
        return (f"constraint {op.constraint_name} on {op.table_name}", "missing in database")
    if isinstance(op, alembic_ops.DropConstraintOp):
        kind = "foreign key" if op.constraint_type == "foreignkey" else "constraint"
        return (f"{kind} {op.constraint_name} on {op.table_name}", "in database but not declared")
    if isinstance(op, (alembic_ops.CreateTableCommentOp, alembic_ops.DropTableCommentOp)):
        return (f"comment on table {op.table_name}", "differs from the declaration")
    return (f"{type(op).__name__} on {table or '?'}", str(op.to_diff_tuple()))


def _column_change(op: alembic_ops.AlterColumnOp) -> str:
    changes = []
    if op.modify_type is not None:
        changes.append(f"type is {op.existing_type}, declared {op.modify_type}")
    if op.modify_nullable is not None:
        changes.append("declared NOT NULL, nullable in database" if op.modify_nullable is False
                       else "declared nullable, NOT NULL in database")
    if op.modify_server_default is not False:
        changes.append(f"server default differs (database {op.existing_server_default!r})")
    if op.modify_comment is not False:
        changes.append("comment differs")
    return "; ".join(changes) or "differs from the declaration"
