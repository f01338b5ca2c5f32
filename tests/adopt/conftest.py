"""A second empty database for the round trips (tests/adopt/roundtrip.py)."""

from __future__ import annotations

import uuid

import pytest

from sovren_db.core.urls import with_database


@pytest.fixture
def second_pg_url(postgres_server_url: str):
    """Another empty database on the session's server, for the baseline to be applied to."""
    from sovren_db.seeds.snapshots import create_database, drop_database

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = with_database(postgres_server_url, "postgres")
    create_database(admin, name)
    yield with_database(postgres_server_url, name)
    drop_database(admin, name)
