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
import traceback
from dataclasses import dataclass
from typing import Any

from alembic import command as alembic_command
from alembic.util import CommandError

from ..commands import alembic_config
from ..core.config import Settings
from ..core.errors import RevisionError, SovrenError
from ..core.runtime import Runtime
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
class RecordingRuntime(Runtime):
    """The runtime of an offline run that also keeps each store step with its revision and line."""

    locator: Locator | None = None

    def collect(self, operation: Any, operations: Any) -> None:
        found = self.locator.locate() if self.locator else None
        if found is not None:
            facts, line = found
            facts.steps.append(StoreStep(operation, line))
        super().collect(operation, operations)


def _register_store_operations() -> None:
    """``op.mongo_*`` and ``op.redis_*`` exist even where those stores are not configured."""
    import importlib

    for module in ("sovren_db.mongo.ops", "sovren_db.redis.ops"):
        try:
            importlib.import_module(module)
        except ImportError:  # a project without that store package
            continue


def record(settings: Settings, start: str, revisions: list[RevisionFacts]) -> None:
    """Run every revision after ``start`` offline, filling each RevisionFacts."""
    if not revisions:
        return
    _register_store_operations()
    locator = Locator(revisions)
    runtime = RecordingRuntime(settings, locator=locator)
    config = alembic_config(settings, runtime)
    config.output_buffer = RecordingBuffer(locator)
    try:
        alembic_command.upgrade(config, f"{start}:heads" if start != "base" else "heads", sql=True)
    except SovrenError:
        raise
    except CommandError as exc:
        raise RevisionError(str(exc).rstrip(".") + ".") from None
    except Exception as exc:  # the revision's own code failed while running offline
        raise RevisionError(_offline_failure(exc, locator)) from None


def _offline_failure(exc: Exception, locator: Locator) -> str:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _key(f.filename) in locator.by_file]
    where = f"{locator.by_file[_key(frames[-1].filename)].display}:{frames[-1].lineno}" if frames else "a revision"
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return (f"{where} failed while running offline ({type(exc).__name__}: {reason}); "
            "lint runs each revision as 'alembic upgrade --sql' does, so it must not read from the database.")
