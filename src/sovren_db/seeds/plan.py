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
from typing import Iterator

from .clock import Clock
from .entities import Block
from .profiles import ENTITIES, Profile

BLOCK_USERS = 8192


def normal_scale(scale: float) -> int | float:
    """``--scale`` as it is recorded and compared: a whole number as an int (2.0 is 2), else the fraction."""
    return int(scale) if float(scale).is_integer() else float(scale)


def scaled_users(profile: Profile, scale: float) -> int:
    """The users a profile makes at ``scale`` (fractions allowed, at least one user)."""
    return max(1, round(profile.users * scale))


def seed_identity(profile: Profile, scale: float, seed: int) -> dict:
    """What makes two seeds the same data (the anchor month aside)."""
    return {"profile": profile.name, "fingerprint": profile.fingerprint, "scale": normal_scale(scale), "seed": seed}


@dataclass
class Plan:
    profile: Profile
    scale: int | float
    seed: int
    anchor: dt.date
    months: int = 1                  # operation partitions: this month and the following ones
    clock: Clock = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.clock = Clock(self.anchor)

    @property
    def users(self) -> int:
        return scaled_users(self.profile, self.scale)

    @property
    def block_count(self) -> int:
        return -(-self.users // BLOCK_USERS)

    def block(self, index: int) -> Block:
        start = index * BLOCK_USERS
        return Block(self, index, start, min(BLOCK_USERS, self.users - start))

    def blocks(self) -> Iterator[Block]:
        for index in range(self.block_count):
            yield self.block(index)

    def expected(self, name: str) -> float:
        """About how many ``name`` the plan makes (the profile's amounts along the parent chain)."""
        if name == "users":
            return float(self.users)
        entity = ENTITIES[name]
        return self.expected(entity.parent) * self.profile.amount(name)

    def identity(self) -> dict:
        return seed_identity(self.profile, self.scale, self.seed)

    def describe(self) -> str:
        return f"profile {self.profile.name!r} (scale {self.scale}, seed {self.seed})"
