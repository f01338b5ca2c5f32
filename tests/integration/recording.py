"""Recording what the code under test sends to Postgres (for round-trip and statement counts)."""

from __future__ import annotations

from contextlib import contextmanager

from sqlalchemy import event
from sqlalchemy.engine import Engine


@contextmanager
def recorded():
    """The statements every SQLAlchemy engine sends inside the block, in order."""
    seen: list[str] = []

    def record(conn, cursor, statement, *rest) -> None:
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", record)
