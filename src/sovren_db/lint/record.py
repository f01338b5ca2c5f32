"""Run revisions offline and record, per revision file line, the SQL and the store steps they produce.

Nothing is parsed: the revision's own ``upgrade()`` runs under Alembic's
``--sql`` mode. The output buffer and the runtime's ``collect`` look up the
call stack for the frame inside a revision file, which gives the file and line
of each statement and step, helpers and loops included.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass
from typing import Any

from ..commands import run_offline
from ..core.config import Settings
from ..core.runtime import CollectingRuntime
from .facts import RevisionFacts, Statement, StoreStep


def _key(path: Any) -> str:
    return os.path.realpath(str(path))


class Locator:
    """Finds which revision file, at which line, is running right now."""

    def __init__(self, revisions: list[RevisionFacts]):
        self.by_file = {_key(facts.path): facts for facts in revisions}
        self._names = {os.path.basename(k) for k in self.by_file}

    def locate(self) -> tuple[RevisionFacts, int] | None:
        frame = sys._getframe(1)
        while frame is not None:
            filename = frame.f_code.co_filename
            if os.path.basename(filename) in self._names:
                facts = self.by_file.get(_key(filename))
                if facts is not None:
                    return facts, frame.f_lineno
            frame = frame.f_back
        return None


class RecordingBuffer(io.TextIOBase):
    """Alembic's ``--sql`` output: each write is one statement, kept with its revision and line."""

    def __init__(self, locator: Locator):
        self.locator = locator

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        found = self.locator.locate()
        if found is not None and text.strip():
            facts, line = found
            facts.statements.append(Statement(text.strip(), line))
        return len(text)


@dataclass
class RecordingRuntime(CollectingRuntime):
    """The runtime of an offline run that also keeps each store step with its revision and line.

    Store steps are collected, not written to the output as SQL comments, so the
    recorded statements are only the revision's SQL.
    """

    locator: Locator | None = None

    def collect(self, operation: Any, operations: Any) -> None:
        found = self.locator.locate() if self.locator else None
        if found is not None:
            facts, line = found
            facts.steps.append(StoreStep(operation, line))
        super().collect(operation, operations)


def record(settings: Settings, start: str, revisions: list[RevisionFacts]) -> None:
    """Run every revision after ``start`` offline, filling each RevisionFacts."""
    if not revisions:
        return
    locator = Locator(revisions)
    run_offline(settings, RecordingRuntime(settings, locator=locator),
                f"{start}:heads" if start != "base" else "heads", buffer=RecordingBuffer(locator))
