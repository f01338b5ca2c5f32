"""A second empty database for the round trips (tests/adopt/roundtrip.py)."""

from __future__ import annotations

import pytest

from sovren_db.testing.fixtures import fresh_database


@pytest.fixture
def second_pg_url(postgres_server_url: str):
    """Another empty database on the session's server, for the baseline to be applied to."""
    yield from fresh_database(postgres_server_url)
