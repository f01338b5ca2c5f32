"""Seeded random schemas round-trip: 5 in every run, 50 behind the slow marker."""

from __future__ import annotations

from datetime import date

import pytest

from .random_schema import generate
from .roundtrip import round_trip, run_sql, scalar

pytestmark = pytest.mark.postgres


def _round_trip(seed, pg_url, second_pg_url, tmp_path):
    today = scalar(pg_url, "SELECT current_date")
    run_sql(pg_url, generate(seed, today if isinstance(today, date) else date.today()))
    round_trip(pg_url, second_pg_url, tmp_path / "project")


@pytest.mark.parametrize("seed", range(5))
def test_random_schema_round_trip(seed, pg_url, second_pg_url, tmp_path):
    _round_trip(seed, pg_url, second_pg_url, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(5, 55))
def test_random_schema_round_trip_many(seed, pg_url, second_pg_url, tmp_path):
    _round_trip(seed, pg_url, second_pg_url, tmp_path)
