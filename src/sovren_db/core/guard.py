"""Destructive steps are refused in protected environments unless explicitly allowed.

Store operations and sovren-db's Postgres object operations carry
``destructive = True``; Alembic's own ``drop_table`` and ``drop_column`` are
wrapped here. Raw ``op.execute("DROP ...")`` cannot be recognised and is not
guarded: ``sovren-db lint`` reports it.
"""

from __future__ import annotations

from typing import Any

from alembic.operations import Operations, toimpl
from alembic.operations import ops as alembic_ops

from .context import configured_runtime
from .errors import Refused

_DESTRUCTIVE_ALEMBIC = {
    alembic_ops.DropTableOp: (toimpl.drop_table, lambda op: f"drop table {op.table_name}"),
    alembic_ops.DropColumnOp: (toimpl.drop_column, lambda op: f"drop column {op.table_name}.{op.column_name}"),
}


def _refuse_if_protected(runtime: Any, description: str) -> None:
    settings = runtime.settings
    if settings.protected and not runtime.allow_destructive:
        raise Refused(
            f"Destructive step '{description}' refused: environment {settings.environment!r} is protected "
            "(pass --allow-destructive to apply it)."
        )


def refuse_if_protected(runtime: Any, description: str) -> None:
    """The check alone, for a destructive store step run outside a revision (``resync.py``)."""
    _refuse_if_protected(runtime, description)


def refuse_destructive(operations: Operations, description: str, runtime: Any = None) -> None:
    """Refuse the destructive step ``description`` about to run in a protected environment.

    The one check for every destructive step (Alembic's, sovren-db's Postgres object operations,
    store operations): only when sovren-db runs the migration (``runtime``, else the one configured
    on the migration context) and applies it (``plan``/``--sql`` only prints SQL, never refused).
    """
    context = operations.migration_context
    if context.as_sql:
        return
    runtime = runtime if runtime is not None else configured_runtime(context)
    if runtime is not None:
        _refuse_if_protected(runtime, description)


def _guarded(original, describe):
    def implementation(operations: Operations, operation: Any, **kw: Any) -> None:
        refuse_destructive(operations, describe(operation))
        original(operations, operation, **kw)

    return implementation


_installed = False


def install_guards() -> None:
    global _installed
    if _installed:
        return
    for op_class, (original, describe) in _DESTRUCTIVE_ALEMBIC.items():
        Operations.implementation_for(op_class, replace=True)(_guarded(original, describe))
    _installed = True
