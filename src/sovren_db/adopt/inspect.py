"""``sovren-db inspect``: write declarations from the live servers."""

from __future__ import annotations

from pathlib import Path

from ..core.config import Settings
from ..env import connected
from .personal import personal_data_candidates
from .postgres_read import Inspected, read_postgres
from .postgres_write import write_postgres


def inspect_postgres(settings: Settings, out: Path | None = None) -> tuple[Inspected, list[Path], list]:
    """Read the configured Postgres and write ``tables.py``, ``schema.py`` (and ``baseline.sql``)."""
    folder = (out / "postgres") if out is not None else settings.postgres_dir
    with connected(settings) as connection:
        inspected = read_postgres(connection)
        connection.rollback()
    written = write_postgres(inspected, folder)
    return inspected, written, personal_data_candidates(inspected.metadata, str(folder / "tables.py"))
