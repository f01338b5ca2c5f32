"""The seed manifest: which seed a database holds, and which stores have it.

One row in ``sovren_db.seed_manifest``: the profile (name and content
fingerprint), scale, seed, anchor month, and per store the counts loaded.
The table lives in its own schema: Alembic's autogenerate and sovren-db's
catalog reader look at the current schema only, so it is never drift.

The Postgres rows and the manifest row are committed in one transaction; the
MongoDB and Redis entries are added after each of those stores is loaded.
A database holds one seed at a time: another one needs ``--reset``.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

SCHEMA = "sovren_db"
TABLE = f"{SCHEMA}.seed_manifest"

_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLE} (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    profile text NOT NULL,
    fingerprint text NOT NULL,
    scale numeric NOT NULL,
    seed bigint NOT NULL,
    anchor date NOT NULL,
    stores jsonb NOT NULL DEFAULT '{{}}',
    seeded_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass
class Manifest:
    profile: str
    fingerprint: str
    scale: int | float
    seed: int
    anchor: dt.date
    stores: dict[str, dict[str, int]] = field(default_factory=dict)

    def identity(self) -> dict:
        return {"profile": self.profile, "fingerprint": self.fingerprint, "scale": self.scale, "seed": self.seed}

    def describe(self) -> str:
        return f"profile {self.profile!r} (scale {self.scale}, seed {self.seed})"


def read(conn) -> Manifest | None:
    """The manifest row, or None (no table or no row). ``conn`` is a psycopg connection."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()[0]
    if not exists:
        return None
    row = conn.execute(f"SELECT profile, fingerprint, scale, seed, anchor, stores FROM {TABLE}").fetchone()
    if row is None:
        return None
    stores = row[5] if isinstance(row[5], dict) else json.loads(row[5])
    scale = int(row[2]) if row[2] == int(row[2]) else float(row[2])
    return Manifest(row[0], row[1], scale, row[3], row[4], stores)


def write(conn, manifest: Manifest) -> None:
    conn.execute(_DDL)
    conn.execute(f"ALTER TABLE {TABLE} ALTER COLUMN scale TYPE numeric")  # integer before fractional scales
    conn.execute(f"DELETE FROM {TABLE}")
    conn.execute(f"INSERT INTO {TABLE} (profile, fingerprint, scale, seed, anchor, stores) "
                 "VALUES (%s, %s, %s, %s, %s, %s::jsonb)",
                 (manifest.profile, manifest.fingerprint, manifest.scale, manifest.seed, manifest.anchor,
                  json.dumps(manifest.stores)))


def record_store(conn, store: str, counts: dict[str, int]) -> None:
    conn.execute(f"UPDATE {TABLE} SET stores = stores || jsonb_build_object(%s::text, %s::jsonb)",
                 (store, json.dumps(counts)))


def forget(conn) -> None:
    if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (TABLE,)).fetchone()[0]:
        conn.execute(f"DELETE FROM {TABLE}")
