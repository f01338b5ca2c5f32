"""Bounded seeds: refused beyond the machine before anything is generated, fractional scales, progress lines."""

from __future__ import annotations

import datetime as dt

import pytest

from sovren_db.cli.seed import LineProgress
from sovren_db.seeds.bounds import estimate
from sovren_db.seeds.plan import Plan
from sovren_db.seeds.profiles import load_profile

from .conftest import FORMATS, refused, run


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_seed_beyond_the_machine_is_refused_before_anything_starts(bare, fmt):
    result = run("seed", "-p", "perf", "--scale", "1000000000", "--format", fmt)  # no server is even configured
    sentence = refused(result, fmt)
    assert "Seeding refused" in sentence and "more than this machine's" in sentence and "--scale" in sentence


@pytest.mark.parametrize("args, words", [
    (["--scale", "0"], "'--scale': 0.0 is not in the range x>0"),
    (["--scale", "-2"], "'--scale'"),
    (["--scale", "many"], "'--scale': 'many' is not a valid float"),
])
def test_bad_scales_are_usage_errors(bare, args, words):
    for fmt in FORMATS:
        assert words in refused(run("seed", "-p", "ci", *args, "--format", fmt), fmt)


def test_fractional_scales_make_proportionally_fewer_users(repo_root):
    profile = load_profile(repo_root / "seeds", "dev")
    small, whole = (Plan(profile, s, 1, dt.date(2026, 1, 1)) for s in (0.1, 1))
    assert small.users == 500 and whole.users == 5000
    assert estimate(small, ("postgres",)).total * 10 == pytest.approx(estimate(whole, ("postgres",)).total, rel=0.01)


def test_progress_lines_every_few_seconds_with_a_rate(capsys):
    now = [0.0]
    advance = LineProgress({"postgres": 10_000}, clock=lambda: now[0]).task("postgres", 10)
    for _ in range(10):
        now[0] += 1.0
        advance(1)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["seed: postgres: 5 of 10 steps (50%), about 1,000 rows/s, 5 s",
                     "seed: postgres: 10 of 10 steps (100%), about 1,000 rows/s, 10 s"]
