"""Turn the operations a comparison produced into findings that name each object.

sovren-db's own operations (Postgres objects, Mongo, Redis) say what they
fix through ``drift()``; Alembic's table operations are described here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

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


MISSING, UNDECLARED = "missing in database", "in database but not declared"

# (object, message) of each Alembic operation, looked up by type (the first class of its MRO here)
_DESCRIBE: dict[type, Callable[[Any], tuple[str, str]]] = {
    alembic_ops.CreateTableOp: lambda op: (f"table {op.table_name}", MISSING),
    alembic_ops.DropTableOp: lambda op: (f"table {op.table_name}", UNDECLARED),
    alembic_ops.AddColumnOp: lambda op: (f"column {op.table_name}.{op.column.name}", MISSING),
    alembic_ops.DropColumnOp: lambda op: (f"column {op.table_name}.{op.column_name}", UNDECLARED),
    alembic_ops.AlterColumnOp: lambda op: (f"column {op.table_name}.{op.column_name}", _column_change(op)),
    alembic_ops.CreateIndexOp: lambda op: (f"index {op.index_name} on {op.table_name}", MISSING),
    alembic_ops.DropIndexOp: lambda op: (f"index {op.index_name} on {op.table_name}", UNDECLARED),
    alembic_ops.CreateForeignKeyOp: lambda op: (
        f"foreign key {op.constraint_name or '(unnamed)'} on {op.source_table}", MISSING),
    alembic_ops.AddConstraintOp: lambda op: (f"constraint {op.constraint_name} on {op.table_name}", MISSING),
    alembic_ops.DropConstraintOp: lambda op: (
        f"{'foreign key' if op.constraint_type == 'foreignkey' else 'constraint'} {op.constraint_name} "
        f"on {op.table_name}", UNDECLARED),
    alembic_ops.CreateTableCommentOp: lambda op: (f"comment on table {op.table_name}", "differs from the declaration"),
    alembic_ops.DropTableCommentOp: lambda op: (f"comment on table {op.table_name}", "differs from the declaration"),
}


def _describe_alembic(op, table: str | None) -> tuple[str, str]:
    describe = next((_DESCRIBE[cls] for cls in type(op).__mro__ if cls in _DESCRIBE), None)
    if describe is None:
        return (f"{type(op).__name__} on {table or '?'}", str(op.to_diff_tuple()))
    return describe(op)


def _default_sql(default: object) -> str:
    """A server default as SQL text: Alembic hands a DefaultClause (reflected or declared), text or None."""
    if default is None:
        return "none"
    arg = getattr(default, "arg", default)
    return str(getattr(arg, "text", arg))


def _column_change(op: alembic_ops.AlterColumnOp) -> str:
    changes = []
    if op.modify_type is not None:
        changes.append(f"type is {op.existing_type}, declared {op.modify_type}")
    if op.modify_nullable is not None:
        changes.append("declared NOT NULL, nullable in database" if op.modify_nullable is False
                       else "declared nullable, NOT NULL in database")
    if op.modify_server_default is not False:
        changes.append(f"server default is {_default_sql(op.existing_server_default)} in the database, "
                       f"declared {_default_sql(op.modify_server_default)}")
    if op.modify_comment is not False:
        changes.append("comment differs")
    return "; ".join(changes) or "differs from the declaration"
