"""Where a declaration came from, and the checks that name that place when they fail."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..core.errors import DeclarationError
from .extjson import pointer


class Source:
    """One declaration file; ``error`` builds ``DeclarationError(file, /json/pointer, problem)``."""

    def __init__(self, path: Path | None, root: Path | None = None):
        self.path = path
        self.display = _relative(path, root) if path else "(no file)"

    def error(self, at: tuple, problem: str) -> DeclarationError:
        return DeclarationError(self.display, pointer(*at) or None, problem)

    def table(self, raw: Any, at: tuple) -> None:
        if not isinstance(raw, dict):
            raise self.error(at, "must be a table")

    def array(self, table: dict, key: str) -> list:
        value = table.get(key, [])
        if not isinstance(value, list):
            raise self.error((key,), f"must be an array of tables ([[{key}]])")
        return value

    def choice(self, table: dict, key: str, choices: tuple, at: tuple = ()) -> Any:
        value = table.get(key)
        if value is not None and value not in choices:
            raise self.error(at + (key,), f"must be one of {', '.join(map(repr, choices))}, not {value!r}")
        return value

    def optional(
        self,
        table: dict,
        at: tuple,
        key: str,
        kind: type,
        wanted: str,
        test: Callable[[Any], bool] | None = None,
        *,
        required: bool = False,
    ) -> None:
        """Check ``table[key]`` is a ``kind`` passing ``test``; absent is fine unless ``required``."""
        if key not in table:
            if required:
                raise self.error(at + (key,), f"is required ({wanted})")
            return
        value = table[key]
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if not ok or (test is not None and not test(value)):
            raise self.error(at + (key,), f"must be {wanted}, not {value!r}")


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return str(path.resolve().relative_to(root.resolve()))
        except ValueError:
            pass
    return str(path)
