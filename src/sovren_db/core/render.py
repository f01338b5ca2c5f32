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
        return render_call(self.op_name, self.rendered_arguments())

    def rendered_arguments(self) -> dict[str, Any]:
        """The arguments a revision writes (all of them unless a subclass leaves defaults out)."""
        return self.arguments()

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



WIDTH = 100


def render_packed(value: Any, indent: int, column: int, width: int = WIDTH) -> str:
    """``value`` as Python source starting at ``column`` of a line indented by ``indent``: one line
    where it fits, else the items of a dict or list filled into lines of ``width`` as text is, an item
    that does not fit on one line opening its own block. pprint gives every item of a dict too long
    for one line a line of its own: a store step's declarations would take three times the lines."""
    if isinstance(value, str) and "\n" in value:
        return render_value(value, column)
    flat = pprint.pformat(value, width=10**9, sort_dicts=False)
    if column + len(flat) <= width or not isinstance(value, (dict, list, tuple)) or not value:
        return _wrapped_string(value, column, width) if isinstance(value, str) else flat
    inner, lines, line = indent + 4, [], ""
    keyed = value.items() if isinstance(value, dict) else ((None, item) for item in value)
    for key, item in keyed:
        prefix = "" if key is None else f"{key!r}: "
        text = prefix + render_packed(item, inner, inner + len(prefix), width) + ","
        if "\n" not in text and inner + len(line) + len(text) + 1 <= width:
            line = f"{line} {text}" if line else text
            continue
        lines += [" " * inner + line] if line else []
        line = "" if "\n" in text else text
        lines += [" " * inner + text] if "\n" in text else []
    lines += [" " * inner + line] if line else []
    opening, closing = {dict: "{}", list: "[]", tuple: "()"}[type(value)]
    return opening + "\n" + "\n".join(lines) + "\n" + " " * indent + closing


def _wrapped_string(value: str, column: int, width: int) -> str:
    text = pprint.pformat(value, width=max(width - column, 40))
    return text.replace("\n", "\n" + " " * column)


def render_call(name: str, arguments: dict[str, Any], width: int = WIDTH) -> str:
    """``op.name(key=value, ...)`` on one line where it fits in a revision (indented by 4), else one
    keyword a line, values packed (:func:`render_packed`)."""
    line = f"op.{name}(" + ", ".join(f"{k}={v!r}" for k, v in arguments.items()) + ")"
    if len(line) + 4 <= width:
        return line
    parts = [f"    {key}={render_packed(value, 4, 4 + len(key) + 1, width - 4)}," for key, value in arguments.items()]
    return f"op.{name}(\n" + "\n".join(parts) + "\n)"
