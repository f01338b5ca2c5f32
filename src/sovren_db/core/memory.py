"""Pausing Python's cyclic garbage collector around a burst of allocation.

Comparing a large schema builds tens of thousands of short-lived SQLAlchemy
and Alembic objects; the collector's generation-2 passes over a heap that
size cost about 30% of ``check``'s CPU (bench/doctor.py, 300 tables). Nothing
in that burst forms garbage cycles worth collecting mid-way, so the
collector is paused, then run once.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[None]:
    if not gc.isenabled():  # someone up the stack already decided
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
