"""Render operation arguments as Python source for revision files."""

from __future__ import annotations

import pprint
from typing import Any


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
