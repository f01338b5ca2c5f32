"""What one seed is: a profile at a scale, a seed number and an anchor month, cut into blocks of users.

Users are generated :data:`BLOCK_USERS` at a time with everything they own
(subscriptions, operations, executives, sessions...). Each block draws from
its own streams, so blocks are independent: memory stays bounded, a store's
loader streams block after block, and validation and loading can each
regenerate a block instead of keeping it. ``BLOCK_USERS`` is part of what
makes data reproducible: changing it changes every seed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator

from .clock import Clock
from .entities import Block
from .profiles import Profile

if TYPE_CHECKING:
    from .declared import TableGraph

BLOCK_USERS = 8192


def normal_scale(scale: float) -> int | float:
    """``--scale`` as it is recorded and compared: a whole number as an int (2.0 is 2), else the fraction."""
    return int(scale) if float(scale).is_integer() else float(scale)


def scaled_users(profile: Profile, scale: float) -> int:
    """The users a profile makes at ``scale`` (fractions allowed, at least one user)."""
    return scaled(profile.users, scale)


def scaled(rows: int, scale: float) -> int:
    return max(1, round(rows * scale)) if rows else 0


def seed_identity(profile: Profile, scale: float, seed: int) -> dict:
    """What makes two seeds the same data (the anchor month aside)."""
    return {"profile": profile.name, "fingerprint": profile.fingerprint, "scale": normal_scale(scale), "seed": seed}


@dataclass
class Plan:
    profile: Profile
    scale: int | float
    seed: int
    anchor: dt.date
    months: int = 1                  # kept for callers; partitions are read from the catalog (``partitions``)
    graph: "TableGraph | None" = None
    partitions: dict[str, tuple[int, int] | None] = field(default_factory=dict)   # table -> key range, seconds
    # collection or family -> its $jsonSchema or KeyFamily (:meth:`.targets.Targets.declarations`)
    declarations: dict[str, object] = field(default_factory=dict)
    clock: Clock = field(init=False, repr=False)
    block_rows: int = field(init=False, default=BLOCK_USERS)

    def __post_init__(self) -> None:
        self.clock = Clock(self.anchor)
        self.window = (self.clock.seconds_at(self.profile.window[0]), self.clock.seconds_at(self.profile.window[1]))
        self.seeded = frozenset(self.graph.names()) if self.graph else frozenset()
        self._lookups: Block | None = None

    @property
    def users(self) -> int:
        return self.rows_of("users") if "users" in self.seeded else scaled_users(self.profile, self.scale)

    def rows_of(self, table: str) -> int:
        """A root table's rows at this scale."""
        plan = self.graph.table(table)
        return scaled(plan.rows, self.scale)

    @property
    def block_count(self) -> int:
        roots = [self.rows_of(t.name) for t in self.graph.tables if t.parent is None] if self.graph else []
        return -(-max([self.users, *roots]) // BLOCK_USERS)

    def block(self, index: int) -> Block:
        """Block ``index``, drawn afresh: nothing of a block outlives its pass (memory stays one block's)."""
        start = index * BLOCK_USERS
        return Block(self, index, start, max(0, min(BLOCK_USERS, self.users - start)))

    def lookup(self, table: str):
        """Block 0's rows of ``table``, for the blocks that have none of their own (small lookup tables);
        kept on a block of their own, so that only the tables referenced this way stay in memory."""
        if self._lookups is None:
            self._lookups = self.block(0)
        return self._lookups.rows(table)

    def window_of(self, table: str, column: str) -> tuple[int, int]:
        """Seconds from the anchor that a time column's values fall in: the profile's window, within the
        partitions that exist when the column is its table's partition key (and no default partition)."""
        low, high = self.window
        if self.graph and self.graph.partition_keys.get(table) == column and self.partitions.get(table):
            first, last = self.partitions[table]
            low, high = max(low, first), min(high, last)
        return low, max(low + 1, high)

    def blocks(self) -> Iterator[Block]:
        """Each block in turn, released once the caller moves on to the next."""
        for index in range(self.block_count):
            block = self.block(index)
            yield block
            block.release()

    def expected(self, name: str) -> float:
        """About how many ``name`` the plan makes (the profile's amounts along the parent chain)."""
        if self.graph and name in self.seeded:
            table = self.graph.table(name)
            if table.parent is None:
                return float(self.rows_of(name))
            return self.expected(table.parent.target) * table.amount
        if name == "users":
            return float(self.users)
        records = self.profile.records(name)
        return self.expected(records.per) * records.amount if records is not None else 0.0

    def identity(self) -> dict:
        return seed_identity(self.profile, self.scale, self.seed)

    def describe(self) -> str:
        return f"profile {self.profile.name!r} (scale {self.scale}, seed {self.seed})"
