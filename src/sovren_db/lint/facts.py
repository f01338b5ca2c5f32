"""What one revision does, as the rules see it: its SQL statements and its store steps, with lines."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Statement:
    """One SQL statement of the revision's offline run; ``line`` is the revision file's line that emitted it."""

    sql: str
    line: int | None


@dataclass(frozen=True)
class StoreStep:
    """One ``op.mongo_*`` / ``op.redis_*`` call of the revision, as the operation object it built."""

    op: Any
    line: int | None


@dataclass
class RevisionFacts:
    revision: str
    doc: str
    path: Path
    display: str                      # the path as reports show it (relative to the project root)
    statements: list[Statement] = field(default_factory=list)
    steps: list[StoreStep] = field(default_factory=list)

    def steps_of(self, *kinds: type[T]) -> Iterator[tuple[T, int | None]]:
        """(operation, line) of each step that is one of ``kinds``, in order."""
        for step in self.steps:
            if isinstance(step.op, kinds):
                yield step.op, step.line

    def where(self, line: int | None) -> str:
        return f"{self.display}:{line}" if line else self.display
