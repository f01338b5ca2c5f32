"""The key ranges a partitioned table's partitions accept, read from the catalog before generating.

A time column that is its table's range partition key gets values only where
a partition exists: the profile's window when the table has a default
partition, else the window within the partitions' range. A window no
partition covers is refused in one sentence naming the table.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from ..core.errors import Refused
from .clock import Clock

if TYPE_CHECKING:
    import psycopg

    from .declared import TableGraph

_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")
_BOUNDS_SQL = """SELECT pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = to_regclass(%s)"""


def partition_ranges(conn: "psycopg.Connection", graph: "TableGraph", anchor: dt.date,
                     window: tuple[int, int]) -> dict[str, tuple[int, int] | None]:
    """Table -> (first, end) seconds from the anchor its partitions accept; None with a default partition."""
    clock, out = Clock(anchor), {}
    for table in graph.names():
        if table not in graph.partition_keys:
            continue
        bounds = [row[0] for row in conn.execute(_BOUNDS_SQL, (table,)).fetchall()]
        if not bounds or "DEFAULT" in bounds:
            out[table] = None
            continue
        ranges = [_seconds(clock, found) for found in map(_BOUND.search, bounds) if found]
        first, end = min(r[0] for r in ranges), max(r[1] for r in ranges)
        if first >= window[1] or end <= window[0]:
            raise Refused(f"Seeding refused: {table} is partitioned by {graph.partition_keys[table]} and no "
                          f"partition covers the profile's window ({clock.one_text(window[0])} to "
                          f"{clock.one_text(window[1])}); create its partitions, or set the profile's window.")
        out[table] = (first, end)
    conn.rollback()
    return out


def _seconds(clock: Clock, found: re.Match) -> tuple[int, int]:
    start, end = (dt.datetime.fromisoformat(found.group(i)[:19]) for i in (1, 2))
    return int((start - clock.origin).total_seconds()), int((end - clock.origin).total_seconds())
