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


def inspect_redis(settings: Settings, out: Path | None = None, *, fraction: float = 1.0,
                  rate: float | None = None) -> tuple[Path, str]:
    """Infer the key families of the configured Redis into ``redis/inspected.toml``; returns it and a summary."""
    from ..redis.backend import RedisBackend
    from .redis_infer import KeyspaceInference, render_toml

    backend = RedisBackend(settings)
    backend.connect()
    try:
        with backend.reporting_errors():
            result = KeyspaceInference(fraction, rate).run(backend.masters())
    finally:
        backend.close()
    folder = (out / "redis") if out is not None else settings.redis_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "inspected.toml"
    path.write_text(render_toml(result))
    rate_seen = result.scanned / result.elapsed if result.elapsed else 0.0
    return path, (f"redis: {result.scanned:,} keys scanned, {result.sampled:,} sampled in {result.elapsed:.1f} s "
                  f"({rate_seen:,.0f} keys/s)")
