"""Time in seeded data: whole seconds relative to an anchor month, never the wall clock.

The anchor is midnight (UTC) on the first day of the month the database is
in when the seed is first written (``date_trunc('month', current_date)``), so
that operations land in the monthly partitions that exist then (this month
and the ``months_ahead`` following). Seeding with the same profile, scale and
seed gives identical data within a month; the manifest keeps the anchor, so
finishing an interrupted seed or checking it later uses the same one.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from functools import lru_cache
from typing import Sequence

DAY = 86400
_OFFSET = re.compile(r"([+-])(\d{1,4})([dmy])")


def parse_moment(text: str) -> tuple[str, int] | dt.date | None:
    """A window bound: ``now`` (the anchor), an offset from it (``-1y``, ``-90d``, ``+2m``) or a date."""
    text = text.strip().lower()
    if text == "now":
        return ("d", 0)
    found = _OFFSET.fullmatch(text)
    if found:
        sign, count, unit = found.groups()
        return (unit, int(count) * (-1 if sign == "-" else 1))
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


@lru_cache(maxsize=1)
def _times_of_day() -> tuple[str, ...]:
    return tuple(f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60))


class Clock:
    """Formats seconds relative to ``anchor`` as Postgres text or BSON dates."""

    def __init__(self, anchor: dt.date):
        self.anchor = anchor
        self.origin = dt.datetime(anchor.year, anchor.month, anchor.day)
        self.epoch = calendar.timegm(anchor.timetuple())
        self._days: dict[int, str] = {}

    def seconds_at(self, text: str) -> int:
        """Seconds from the anchor to a window bound (:func:`parse_moment`)."""
        moment = parse_moment(text)
        if isinstance(moment, dt.date):
            return (moment - self.anchor).days * DAY
        unit, count = moment
        if unit == "d":
            return count * DAY
        return (add_months(self.anchor, count * (12 if unit == "y" else 1)) - self.anchor).days * DAY

    def seconds_until(self, months: int) -> int:
        """Seconds from the anchor to the first day of the month ``months`` later."""
        return (add_months(self.anchor, months) - self.anchor).days * DAY

    def _day(self, offset: int) -> str:
        text = self._days.get(offset)
        if text is None:
            text = self._days[offset] = (self.anchor + dt.timedelta(days=offset)).isoformat()
        return text

    def text(self, seconds: Sequence[int]) -> list[str]:
        """``YYYY-MM-DD HH:MM:SS`` for each offset, as COPY reads a ``timestamp``."""
        times, day = _times_of_day(), self._day
        return [day(s // DAY) + " " + times[s % DAY] for s in seconds]

    def one_text(self, seconds: int) -> str:
        return self._day(seconds // DAY) + " " + _times_of_day()[seconds % DAY]

    def datetime(self, seconds: int) -> dt.datetime:
        """A naive UTC datetime (how pymongo writes BSON dates)."""
        return self.origin + dt.timedelta(seconds=seconds)

    def unix(self, seconds: int) -> int:
        return self.epoch + seconds

    def iso(self, seconds: int) -> str:
        return self.datetime(seconds).isoformat() + "Z"
