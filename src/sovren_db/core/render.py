"""sovren-db's operations in revision files: registered with Alembic, rendered as Python source."""

from __future__ import annotations

import pprint
from collections.abc import Callable
from typing import Any, ClassVar

from alembic.autogenerate import renderers
from alembic.operations import MigrateOperation, Operations


def render_value(value: Any, indent: int) -> str:
    if isinstance(value, str) and "\n" in value and "'''" not in value and "\\" not in value:
        return "'''" + value + "'''"
    text = pprint.pformat(value, indent=1, width=88, sort_dicts=False)
    return text.replace("\n", "\n" + " " * indent)


def render_call(name: str, arguments: dict[str, Any]) -> str:
    """``op.name(\\n    key=value,\\n)``: one keyword a line, multi-line strings kept readable."""
    if not arguments:
        return f"op.{name}()"
    lines = [f"    {key}={render_value(value, len(key) + 5)}," for key, value in arguments.items()]
    return f"op.{name}(\n" + "\n".join(lines) + "\n)"


class RevisionOp(MigrateOperation):
    """An operation a revision writes as ``op.<op_name>(**arguments())``: the base of the Postgres
    object operations and of the Mongo and Redis ones."""

    op_name: ClassVar[str]
    destructive: ClassVar[bool] = False

    def arguments(self) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def render(self) -> str:
        return render_call(self.op_name, self.arguments())

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> "RevisionOp":
        raise NotImplementedError


def _render(autogen_context: Any, operation: RevisionOp) -> str:
    return operation.render()


def register_op(cls: type[RevisionOp], implementation: Callable[[Operations, Any], None]) -> type[RevisionOp]:
    """Make ``cls`` callable from a revision as ``op.<cls.op_name>(**arguments)`` (built with
    ``cls.from_arguments``), run by ``implementation(operations, operation)`` and rendered by
    autogenerate as ``cls.render()`` writes it."""

    def invoke(cls, operations, **arguments):  # noqa: ANN001 - alembic reads this signature
        return operations.invoke(cls.from_arguments(arguments))

    invoke.__name__ = cls.op_name
    setattr(cls, cls.op_name, classmethod(invoke))
    Operations.register_operation(cls.op_name)(cls)
    Operations.implementation_for(cls)(implementation)
    renderers.dispatch_for(cls)(_render)
    return cls
