"""The entities of one block of users, as lazily drawn columns of plain values.

Every column is drawn from its own stream on first use (``cached_property``),
so a pass that needs only some columns (the users table needs executives'
ids for the shadow board, not their names) draws only those. Children are
grouped by parent: ``parent`` holds the parent's index in the block and
``counts`` how many each parent has, so a parent's children are contiguous.

Times are seconds relative to the anchor month (see :mod:`.clock`):
everything happens before the anchor except operations and what hangs off
them, which spread over the operation partitions, from the anchor to
``plan.months`` months later.

The stores' forms (COPY text, documents, keys) are built from these columns
by :mod:`.postgres_rows`, :mod:`.mongo_docs` and :mod:`.redis_keys`.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from . import vocab
from .clock import DAY
from .draws import Draws, expand, offsets

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

    def amount(self, entity: str) -> float:
        if self.plan.graph is not None and entity in self.plan.seeded:
            return self.plan.graph.table(entity).amount
        return self.plan.profile.amount(entity)

    def rows(self, table: str):
        """The declared table's rows in this block (:class:`.rows.TableBlock`)."""
        found = self._tables.get(table)
        if found is None:
            from .rows import TableBlock

            found = self._tables[table] = TableBlock(self, self.plan.graph.table(table))
        return found

    @cached_property
    def users(self) -> "Users":
        return Users(self)

    @cached_property
    def operations(self) -> "Operations":
        return Operations(self)

    @cached_property
    def executives(self) -> "Executives":
        return Executives(self)

    @cached_property
    def communications(self) -> "Communications":
        return Communications(self)

    @cached_property
    def queued(self) -> "Queued":
        return Queued(self)

    @cached_property
    def simulations(self) -> "Simulations":
        return Simulations(self)

    @cached_property
    def analytics(self) -> "Analytics":
        return Analytics(self)


class Users:
    def __init__(self, block: Block):
        self.block, self.d, self.n = block, block.draws, block.size

    @cached_property
    def id(self) -> list[str]:
        return self.d.uuids("users.id", self.n)

    @cached_property
    def first(self) -> list[str]:
        return self.d.pick("users.first", self.n, vocab.FIRST_NAMES)

    @cached_property
    def last(self) -> list[str]:
        return self.d.pick("users.last", self.n, vocab.LAST_NAMES)

    @cached_property
    def username(self) -> list[str]:
        start = self.block.start
        return [f"{f}.{s}{start + i}" for i, (f, s) in enumerate(zip(self.first, self.last))]

    @cached_property
    def email(self) -> list[str]:
        return [f"{u}@{domain}" for u, domain in zip(self.username, self.d.pick("users.domain", self.n, vocab.DOMAINS))]

    @cached_property
    def created(self) -> list[int]:
        return [-(DAY + x) for x in self.d.below("users.created", self.n, 729 * DAY)]

    @cached_property
    def region(self) -> list[str]:
        pinned = self.block.plan.profile.region   # a target's residency (see .residency)
        return [pinned] * self.n if pinned else self.d.pick("users.region", self.n, vocab.REGIONS)

    @cached_property
    def last_login(self) -> list[int | None]:
        logged = self.d.chance("users.logged_in", self.n, 0.88)
        login = between(self.created, 0, self.d.unit("users.last_login", self.n))
        return [t if ok else None for ok, t in zip(logged, login)]


class Children:
    """An entity whose rows belong to parents; subclasses say how many each parent has."""

    name = ""

    def __init__(self, block: Block):
        self.block, self.d = block, block.draws

    def _counts(self) -> list[int]:
        raise NotImplementedError

    def _mean(self, parents: int) -> list[int]:
        return self.d.counts(f"{self.name}.n", parents, self.block.amount(self.name))

    def _share(self, eligible: list[bool]) -> list[int]:
        chosen = self.d.chance(f"{self.name}.share", len(eligible), self.block.amount(self.name))
        return [1 if ok and pick else 0 for ok, pick in zip(eligible, chosen)]

    @cached_property
    def counts(self) -> list[int]:
        return self._counts()

    @cached_property
    def parent(self) -> list[int]:
        return expand(self.counts)

    @property
    def size(self) -> int:
        return len(self.parent)

    @cached_property
    def id(self) -> list[str]:
        return self.d.uuids(f"{self.name}.id", self.size)

    @cached_property
    def offsets(self) -> list[int]:
        return offsets(self.counts)

    def of(self, parent: int) -> range:
        start = self.offsets[parent]
        return range(start, start + self.counts[parent])

    def pick(self, column: str, items):
        return self.d.pick(f"{self.name}.{column}", self.size, items)

    def unit(self, column: str) -> list[float]:
        return self.d.unit(f"{self.name}.{column}", self.size)

    def below(self, column: str, bound: int) -> list[int]:
        return self.d.below(f"{self.name}.{column}", self.size, bound)

    def since_parent(self, column: str, parent_times: list[int], end: int = 0) -> list[int]:
        """A time between each child's parent time and ``end``."""
        return between([parent_times[p] for p in self.parent], end, self.unit(column))


class Operations(Children):
    name = "operations"

    def _counts(self) -> list[int]:
        return self._mean(self.block.size)

    @cached_property
    def kind(self) -> list[str]:
        return self.pick("kind", vocab.OPERATION_KINDS)

    @cached_property
    def executed(self) -> list[int]:
        """The Postgres rows' ``executed_at`` where operations are seeded there, else in the profile's window."""
        plan = self.block.plan
        if "operations" in plan.seeded and "executed_at" in {c.name for c in plan.graph.table("operations").columns}:
            return self.block.rows("operations").values("executed_at")
        low, high = plan.window
        return [low + x for x in self.below("executed_at", max(1, high - low))]

    @cached_property
    def confidence_cents(self) -> list[int]:
        return self.below("confidence", 10001)

    @cached_property
    def horizon(self) -> list[int]:
        return self.pick("horizon", vocab.HORIZONS)

    @cached_property
    def recommendation(self) -> list[str]:
        return self.pick("recommendation", vocab.RECOMMENDATIONS)


class Executives(Children):
    name = "executives"

    def _counts(self) -> list[int]:
        return self._mean(self.block.size)

    @cached_property
    def role(self) -> list[str]:
        return self.pick("role", vocab.EXECUTIVE_ROLES)

    @cached_property
    def display_name(self) -> list[str]:
        return self.pick("display_name", vocab.EXECUTIVE_NAMES)

    @cached_property
    def skills(self) -> list[list[str]]:
        return self.d.distinct("executives.skills", [2 + x for x in self.below("skills_n", 4)], vocab.SKILLS)

    @cached_property
    def voice(self) -> list[str]:
        assets = self.d.hexes("executives.voice_asset", self.size, 8)
        return [f"tts://voices/{v}/{a}" for v, a in zip(self.pick("voice", vocab.VOICES), assets)]

    @cached_property
    def active(self) -> list[bool]:
        return self.d.chance("executives.active", self.size, 0.9)

    @cached_property
    def created(self) -> list[int]:
        return self.since_parent("created", self.block.users.created)

    @cached_property
    def updated(self) -> list[int]:
        return between(self.created, 0, self.unit("updated"))


class Messages(Children):
    """Messages to a recipient on behalf of a user."""

    statuses: tuple[str, ...] = ()

    @cached_property
    def recipient(self) -> list[str]:
        parts = zip(self.pick("first", vocab.FIRST_NAMES), self.pick("last", vocab.LAST_NAMES),
                    self.pick("domain", vocab.DOMAINS))
        return [f"{f}.{s}@{domain}" for f, s, domain in parts]

    @cached_property
    def text(self) -> list[str]:
        return self.pick("text", vocab.MESSAGES)

    @cached_property
    def status(self) -> list[str]:
        return self.pick("status", self.statuses)


class Communications(Messages):
    """Sent messages, persisted in MongoDB."""

    name = "communications"
    statuses = vocab.COMMUNICATION_STATUSES

    def _counts(self) -> list[int]:
        return self._mean(self.block.size)

    @cached_property
    def at(self) -> list[int]:
        return self.since_parent("at", self.block.users.created)


class Queued(Messages):
    """Messages waiting in the Redis outbox, queued in the hour before the anchor (not in MongoDB yet)."""

    name = "comms_outbox"
    statuses = ("sent",)

    def _counts(self) -> list[int]:
        return self._mean(self.block.size)

    @cached_property
    def at(self) -> list[int]:
        return [-1 - x for x in self.below("at", 3600)]


class Simulations(Children):
    """A simulation of one operation, for the profile's share of operations."""

    name = "scenario_simulations"

    def _counts(self) -> list[int]:
        return self._share([True] * self.block.operations.size)

    @cached_property
    def scenario(self) -> list[str]:
        return self.pick("scenario", vocab.SCENARIOS)

    @cached_property
    def status(self) -> list[str]:
        return self.pick("status", vocab.SIMULATION_STATUSES)

    @cached_property
    def executives(self) -> list[list[str]]:
        """Up to three of the user's executives."""
        ops, execs = self.block.operations, self.block.executives
        board = []
        for p, x, k in zip(self.parent, self.d.u32("scenario_simulations.board", self.size), self.below("board_n", 4)):
            mine = execs.of(ops.parent[p])
            board.append([execs.id[mine[(x + j) % len(mine)]] for j in range(min(k, len(mine)))] if mine else [])
        return board

    @cached_property
    def created(self) -> list[int]:
        executed = self.block.operations.executed
        return [executed[p] for p in self.parent]

    @cached_property
    def completed(self) -> list[int | None]:
        took = self.below("took", 3600)
        return [c + 60 + t if s in ("completed", "failed") else None
                for s, c, t in zip(self.status, self.created, took)]

    @cached_property
    def iterations(self) -> list[int]:
        return [1000 * (1 + x) for x in self.below("iterations", 50)]


class Analytics(Children):
    """An analytics payload of one operation, for the profile's share of operations."""

    name = "analytics_payloads"

    def _counts(self) -> list[int]:
        return self._share([True] * self.block.operations.size)

    @cached_property
    def kind(self) -> list[str]:
        return self.pick("kind", vocab.ANALYTICS_KINDS)

    @cached_property
    def points(self) -> list[list[int]]:
        values = self.d.below("analytics_payloads.points", 7 * self.size, 1000)
        return [values[7 * i:7 * i + 7] for i in range(self.size)]

    @cached_property
    def created(self) -> list[int]:
        executed = self.block.operations.executed
        return [executed[p] for p in self.parent]
