"""One declared table's rows in one block: how many, whose children they are, and every column's values.

A root table's rows ``b * BLOCK_USERS ..`` are in block ``b``; a child's rows
are drawn per parent row of the same block (``<table>.n`` or ``<table>.share``
streams), grouped by parent. Foreign keys other than the parent's point at:

- an ancestor: the row's own ancestor (a payment's user is its transaction's user);
- a table under a common ancestor: one of that ancestor's rows there (a
  transaction pays one of its user's subscriptions), else NULL, else any;
- the table itself: an earlier row of the block (the first row: NULL, or itself);
- any other table: a row of the same block, else of block 0 (small lookup tables).

Integer keys are seeded values, ``0x5eed`` in their top 16 bits (``5eed`` ids
for uuids), plus the block's stride and the row: what ``--reset`` deletes.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from ..core.errors import ConfigError
from .columns import Draw, draw_column
from .declared import Reference, TablePlan

if TYPE_CHECKING:
    from .entities import Block

CHILD_STRIDE = 1 << 22             # ordinals of a child table: block * CHILD_STRIDE + row
SERIAL = {"int2": (0x5EED, 8192), "int4": (0x5EED << 16, 1 << 20), "int8": (0x5EED << 48, 1 << 24)}
BITS = {"int2": 16, "int4": 32, "int8": 64}


def serial_range(encoding: str) -> tuple[int, int]:
    """The values seeded integer keys of this width take: [low, high]."""
    low = SERIAL[encoding][0]
    return low, 2 ** (BITS[encoding] - 1) - 1


class TableBlock:
    def __init__(self, block: "Block", plan: TablePlan):
        self.block, self.plan, self.name = block, plan, plan.name
        self.draws = block.draws
        self._values: dict[str, list] = {}

    @cached_property
    def parent_block(self) -> "TableBlock | None":
        return self.block.rows(self.plan.parent.target) if self.plan.parent else None

    @cached_property
    def counts(self) -> list[int]:
        parents = self.parent_block.size
        if self.plan.share:
            return [int(x) for x in self.draws.chance(f"{self.name}.share", parents, self.plan.amount)]
        return self.draws.counts(f"{self.name}.n", parents, self.plan.amount)

    @cached_property
    def parent(self) -> list[int]:
        return [p for p, k in enumerate(self.counts) for _ in range(k)]

    @cached_property
    def size(self) -> int:
        if self.plan.parent is None:
            rows = self.block.plan.rows_of(self.name)
            return max(0, min(self.block.plan.block_rows, rows - self.block.start))
        return len(self.parent)

    @cached_property
    def ordinals(self) -> list[int]:
        start = self.block.start if self.plan.parent is None else self.block.index * CHILD_STRIDE
        return list(range(start, start + self.size))

    def values(self, column: str) -> list:
        found = self._values.get(column)
        if found is None:
            if column in self._referenced:
                self._values.update(self._references())
            else:
                self._values[column] = self._draw(self.plan.column(column))
            found = self._values[column]
        return found

    def columns(self) -> list[list]:
        return [self.values(c.name) for c in self.plan.columns]

    # -- own columns -------------------------------------------------------------------------------------
    def _draw(self, column) -> list:
        if column.kind == "serial":
            base, stride = SERIAL[column.encoding]
            if self.size > stride:
                raise ConfigError(f"Seeding {self.name}: {self.size:,} rows in one block do not fit its "
                                  f"{column.encoding} key {column.name}; lower the profile's amounts.")
            return [base + self.block.index * stride + i for i in range(self.size)]
        if column.kind == "position":
            return self._positions()
        plan = self.block.plan
        draw = Draw(self.draws, f"{self.name}.{column.name}", self.size, self.ordinals,
                    plan.window_of(self.name, column.name), plan)
        if column.kind == "uuid" and column.name == (self.plan.marker or ('',))[0]:
            draw.stream = f"{self.name}.id"   # the streams the MongoDB and Redis generators share
        return draw_column(column, draw)

    def _positions(self) -> list[int]:
        out, previous, position = [], None, 0
        for p in self.parent:
            position = position + 1 if p == previous else 1
            previous = p
            out.append(position)
        return out

    # -- foreign keys ------------------------------------------------------------------------------------
    @cached_property
    def _referenced(self) -> set[str]:
        refs = ([self.plan.parent] if self.plan.parent else []) + list(self.plan.references)
        return {c for ref in refs for c in ref.columns}

    def _references(self) -> dict[str, list]:
        out: dict[str, list] = {}
        if self.plan.parent:
            self._copy(out, self.plan.parent, self.parent_block, self.parent)
        for ref in self.plan.references:
            target, rows = self._resolve(ref)
            self._copy(out, ref, target, rows)
        return out

    def _copy(self, out: dict, ref: Reference, target: "TableBlock | None", rows: list) -> None:
        for column, target_column in zip(ref.columns, ref.target_columns):
            if column in out:
                continue
            if target is None:
                out[column] = [None] * self.size
                continue
            source = target.values(target_column)
            out[column] = [None if k is None else source[k] for k in rows]

    def _resolve(self, ref: Reference) -> tuple["TableBlock | None", list]:
        if ref.target == self.name:
            return self._self_rows(ref)
        if ref.target not in self.block.plan.seeded:
            return self._absent(ref, f"{ref.target} is not seeded by this profile")
        chain = self.ancestry()
        if ref.target in chain:
            return self.block.rows(ref.target), chain[ref.target]
        target = self.block.rows(ref.target)
        common = next((name for name in chain if name in target.ancestry()), None)
        if common is not None:
            return target, self._under(ref, target, chain[common], target.ancestry()[common])
        if not target.size:
            target = self.block.plan.lookup(ref.target)
        if not target.size:
            return self._absent(ref, f"{ref.target} has no seeded rows")
        return target, [x % target.size for x in self.draws.u32(f"{self.name}.{ref.columns[0]}#ref", self.size)]

    def _self_rows(self, ref: Reference) -> tuple["TableBlock", list]:
        """An earlier row of the block, under the same parent row for a child table (so that a composite
        self-reference holding the parent's key stays inside it); the first row: NULL, or itself."""
        picks = self.draws.u32(f"{self.name}.{ref.columns[0]}#ref", self.size)
        firsts = self._group_starts()
        rows = []
        for i, x in enumerate(picks):
            earlier = i - firsts[i]
            rows.append(firsts[i] + x % earlier if earlier else (None if ref.nullable else i))
        return self, rows

    def _group_starts(self) -> list[int]:
        if self.plan.parent is None:
            return [0] * self.size
        starts, previous, first = [], None, 0
        for i, p in enumerate(self.parent):
            if p != previous:
                first, previous = i, p
            starts.append(first)
        return starts

    def _under(self, ref: Reference, target: "TableBlock", mine: list[int], theirs: list[int]) -> list:
        """A row of ``target`` under the same ancestor row; distinct within a parent row (so that a key
        made of the parent's key and this reference stays unique while the ancestor has rows enough)."""
        groups: dict[int, list[int]] = {}
        for row, ancestor in enumerate(theirs):
            groups.setdefault(ancestor, []).append(row)
        picks = self.draws.u32(f"{self.name}.{ref.columns[0]}#ref", self.size)
        starts = self._group_starts()
        rows = []
        for i, (ancestor, x) in enumerate(zip(mine, picks)):
            candidates = groups.get(ancestor)
            if candidates:
                first = picks[starts[i]]
                rows.append(candidates[(first + i - starts[i]) % len(candidates)])
            elif ref.nullable or not target.size:
                rows.append(None)
            else:
                rows.append(x % target.size)
        if None in rows and not ref.nullable:
            self._absent(ref, f"{ref.target} has no seeded rows")
        return rows

    def _absent(self, ref: Reference, why: str) -> tuple[None, list]:
        if ref.nullable or not self.size:
            return None, [None] * self.size
        raise ConfigError(f"Seeding {self.name}: its foreign key ({', '.join(ref.columns)}) needs a row of "
                          f"{ref.target}, but {why}; give {ref.target} rows in the profile.")

    def ancestry(self) -> dict[str, list[int]]:
        """Each ancestor table, with the index of every row's ancestor in that table's block."""
        return self._ancestry

    @cached_property
    def _ancestry(self) -> dict[str, list[int]]:
        out: dict[str, list[int]] = {}
        if self.plan.parent is None:
            return out
        rows, block = list(self.parent), self.parent_block
        while block is not None:
            out[block.name] = rows
            if block.parent_block is None:
                break
            rows = [block.parent[r] for r in rows]
            block = block.parent_block
        return out
