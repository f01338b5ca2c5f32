"""Operations on Mongo and Redis that ride in the Alembic revision chain.

Each operation is a small frozen data class (``CreateCollectionOp``,
``DeclareKeyFamilyOp``...) with ``describe()``, ``reverse()`` and a rendering
into a revision file; each store's ``toimpl`` module runs it against the
store's client, one function per operation dispatched by type.
Registering one with ``@store_operation`` makes it:

- callable from a revision as ``op.<op_name>(**arguments)``;
- rendered that way by autogenerate;
- collected while a revision's ``upgrade()``/``downgrade()`` runs and executed
  by :class:`sovren_db.core.runtime.Runtime` once the Postgres part of that
  revision has run, inside the revision's Postgres transaction, with the
  store's step ledger so that a step runs at most once.

Constructor arguments must be JSON values: a step whose store is absent is
kept as ``op_name`` + arguments in Postgres and replayed by the next migrate.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from alembic.operations import Operations

from .context import runtime_of
from .errors import MigrationFailed
from .render import RevisionOp, register_op

STORE_OPS: dict[str, type["StoreOp"]] = {}


class IrreversibleOp(Exception):
    """Raised by ``reverse()`` of an operation that has no inverse."""


class StoreOp(RevisionOp):
    """Base of every Mongo and Redis operation. Subclasses are dataclasses."""

    store: ClassVar[str]

    def arguments(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if f.metadata.get("argument", True)}

    def rendered_arguments(self) -> dict[str, Any]:
        """The arguments a revision writes: those that differ from their default, as Alembic leaves
        out ``nullable=True``; the op built from them has every argument again."""
        defaults = {f.name: f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
                    for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        return {k: v for k, v in self.arguments().items() if defaults[k] is dataclasses.MISSING or v != defaults[k]}

    def drift(self) -> tuple[str, str]:
        """(object, message) as ``check`` reports this difference."""
        return (self.store, self.describe())

    def reverse(self) -> "StoreOp":
        raise IrreversibleOp(f"{self.describe()} cannot be reversed automatically")

    def undo(self, target: Any) -> "StoreOp | None":
        """The step that puts ``target`` back as it is now, read before this step runs.

        The ledger keeps it, so that a revision that fails or dies half-way is undone
        (:mod:`sovren_db.resync`). By default the declared reverse; where the store can say
        what is there now, its ``toimpl.undo`` reads it instead. None: nothing can undo it.
        """
        try:
            return self.reverse()
        except IrreversibleOp:
            return None

    def to_diff_tuple(self) -> tuple:
        return (self.op_name, self.arguments())

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> "StoreOp":
        return cls(**arguments)  # type: ignore[call-arg]


def past_field() -> Any:
    """What a drop removes, where the code that made the drop knew it (autogenerate, adopt, a revision
    written in the full form): its ``reverse()`` and description use it. Never rendered nor stored:
    executing a drop needs only the name, and the ledger reads the step's undo from the store."""
    return dataclasses.field(default=None, compare=False, repr=False, metadata={"argument": False})


def _invoke_collected(operations: Operations, operation: StoreOp) -> None:
    runtime_of(operations.migration_context).collect(operation, operations)


def store_operation(cls: type[StoreOp]) -> type[StoreOp]:
    """Register ``cls`` as ``op.<cls.op_name>``, its renderer and its runner."""
    if cls.op_name in STORE_OPS:
        return cls
    STORE_OPS[cls.op_name] = cls
    register_op(cls, _invoke_collected)
    return cls


def op_record(op: StoreOp | None) -> dict[str, Any] | None:
    """``op`` as JSON data for a ledger, read back by :func:`op_from_record`."""
    return None if op is None else {"op_name": op.op_name, "arguments": op.arguments()}


def undo_from_record(record: dict[str, Any] | None) -> StoreOp | None:
    """The undo step a ledger entry keeps; None where it keeps none (or an entry older than undo steps)."""
    return None if not record else op_from_record(record["op_name"], record["arguments"])


def op_from_record(op_name: str, arguments: dict[str, Any]) -> StoreOp:
    if op_name not in STORE_OPS:  # a replay may run before the store's plugin was installed
        import importlib

        store = op_name.split("_", 1)[0]
        if store in ("mongo", "redis"):
            importlib.import_module(f"sovren_db.{store}.ops")
    try:
        cls = STORE_OPS[op_name]
    except KeyError:
        raise MigrationFailed(f"Deferred step {op_name!r} is not a known sovren-db operation.") from None
    return cls.from_arguments(arguments)
