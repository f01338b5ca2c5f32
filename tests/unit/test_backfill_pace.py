"""The backfill's pace (pure): batch sizes follow the batches' durations towards the target, at most
halved or doubled at a time and within bounds; the rest after a batch is nice times its duration."""

from __future__ import annotations

from sovren_db.postgres.backfill import MAX_BATCH, MIN_BATCH, Pace


def test_a_slow_batch_shrinks_the_next_one_at_most_by_half():
    pace = Pace(1000, 0.010, 0.0)
    pace.after(0.015)
    assert pace.size == 666
    pace.after(1.0)  # one batch slowed by a cache miss: halved, not cut a hundredfold
    assert pace.size == 333


def test_a_fast_batch_grows_the_next_one_at_most_twofold_and_never_past_the_bounds():
    pace = Pace(MAX_BATCH // 2 + 1, 0.010, 0.0)
    pace.after(0.001)
    assert pace.size == MAX_BATCH
    pace = Pace(MIN_BATCH, 0.010, 0.0)
    pace.after(0.5)
    assert pace.size == MIN_BATCH


def test_without_a_target_the_size_stays_and_the_rest_is_nice_times_the_batch():
    pace = Pace(500, None, 1.5)
    assert pace.after(0.020) == 0.030
    assert pace.size == 500


def test_a_blocked_batch_halves_the_next_down_to_a_single_row():
    pace = Pace(3, 0.010, 0.0)
    pace.blocked()
    pace.blocked()
    pace.blocked()
    assert pace.size == 1
