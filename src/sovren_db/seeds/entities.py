"""One block of a seed: the rows of every table, collection and key family under its root rows.

Every column is drawn from its own stream on first use, so a pass that needs
only some columns (a cache needs the executives' ids, not their names) draws
only those. Children are grouped by parent: ``parent`` holds the parent's
index in the block and ``counts`` how many each parent has, so a parent's
children are contiguous. Tables are :class:`.rows.TableBlock`, collections and
families :class:`.records.RecordBlock`.

Times are seconds relative to the anchor month (see :mod:`.clock`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .draws import Draws

if TYPE_CHECKING:
    from .plan import Plan


def between(start: list[int], end: int, fractions: list[float]) -> list[int]:
    """A time between each ``start`` and ``end`` (seconds)."""
    return [s + int(f * (end - s)) for s, f in zip(start, fractions)]


class Block:
    """Users ``start .. start + size`` of a plan and everything they own."""

    def __init__(self, plan: "Plan", index: int, start: int, size: int):
        self.plan = plan
        self.index = index
        self.start = start
        self.size = size
        self.draws = Draws(plan.seed, index, plan.profile.region)
        self._tables: dict = {}

    def release(self) -> None:
        """Forget the block's drawn rows now: each holds the block (a cycle), which reference counting alone
        would never free, so a seed would keep blocks until the cycle collector's next full pass (a peak
        that grew with --scale)."""
        self._tables.clear()

    def rows(self, name: str):
        """The rows of table ``name`` in this block (:class:`.rows.TableBlock`), or the records of the
        profile's collection or family ``name`` (:class:`.records.RecordBlock`)."""
        found = self._tables.get(name)
        if found is None:
            if name in self.plan.seeded:
                from .rows import TableBlock

                found = TableBlock(self, self.plan.graph.table(name))
            else:
                from .records import RecordBlock

                found = RecordBlock(self, name, self.plan.profile.records(name), self.plan.declarations[name])
            self._tables[name] = found
        return found
