"""When ``migrate`` last finished successfully: one row in ``sovren_db.last_migrate``.

The exporter serves it as ``sovren_db_last_migrate_timestamp_seconds``. The
table lives in the framework's own schema, beside the compliance ledgers, so
``check`` never calls it drift.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg

if TYPE_CHECKING:
    from ..core.config import Settings

TABLE = "sovren_db.last_migrate"
_DDL = f"""
CREATE SCHEMA IF NOT EXISTS sovren_db;
CREATE TABLE IF NOT EXISTS {TABLE} (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    finished_at timestamptz NOT NULL,
    heads text[] NOT NULL
)"""


def record_migrate(settings: "Settings") -> None:
    from ..env import connected

    with connected(settings) as connection:
        raw = connection.connection.driver_connection
        raw.execute(_DDL)
        raw.execute(f"INSERT INTO {TABLE} (finished_at, heads) SELECT clock_timestamp(), "
                    "coalesce((SELECT array_agg(version_num) FROM alembic_version), '{}') "
                    "ON CONFLICT (singleton) DO UPDATE SET finished_at = excluded.finished_at, heads = excluded.heads")
        raw.commit()


def last_migrate(conn: psycopg.Connection) -> float | None:
    """The Unix time of the last successful migrate, None when none was recorded."""
    if conn.execute("SELECT to_regclass(%s)", (TABLE,)).fetchone()[0] is None:
        return None
    row = conn.execute(f"SELECT extract(epoch FROM finished_at) FROM {TABLE}").fetchone()
    return float(row[0]) if row else None
