"""A second empty database for the round trips (tests/adopt/roundtrip.py)."""

from __future__ import annotations

import pytest

from sovren_db.testing.fixtures import fresh_database


@pytest.fixture
def second_pg_url(postgres_server_url: str):
    """Another empty database on the session's server, for the baseline to be applied to."""
    yield from fresh_database(postgres_server_url)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The 50 random schemas run when asked for (``-m slow``); ``make test`` runs the 5 others."""
    if "slow" in (config.option.markexpr or ""):
        return
    many = [item for item in items if item.name.startswith("test_random_schema_round_trip_many")]
    if many:
        config.hook.pytest_deselected(items=many)
        items[:] = [item for item in items if item not in many]
