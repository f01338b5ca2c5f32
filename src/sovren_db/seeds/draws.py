"""Deterministic random columns, drawn in bulk.

Each column of each block of users has its own stream: the SHAKE-256
extendable output of ``sovren-seed/<seed>/<block>/<column>``. SHAKE-256 is a
standard (FIPS 202), so the bytes are the same on every machine and every
Python version (``random.Random`` only guarantees ``random()`` across
versions). A longer draw of the same column starts with the shorter one, so
the first users of a bigger ``--scale`` are the users of a smaller one.

Seeded ids are version 8 UUIDs (RFC 9562, "custom") starting with ``5eed``:
``5eedXXXX-XXXX-8XXX-[89ab]XXX-XXXXXXXXXXXX`` (106 random bits). Applications
write version 4 or 7 ids, so a seeded row is recognisable by its id alone.
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
from array import array
from typing import Sequence, TypeVar

T = TypeVar("T")

SEEDED_PREFIX = "5eed"
SEEDED_UUID = re.compile(r"5eed[0-9a-f]{4}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
# Range and shape of seeded UUIDs, for SQL: BETWEEN these, and '8' as the 15th character.
SEEDED_LOW = "5eed0000-0000-0000-0000-000000000000"
SEEDED_HIGH = "5eedffff-ffff-ffff-ffff-ffffffffffff"

_U32 = next(code for code in "IL" if array(code).itemsize == 4)
_VARIANT = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")
_UUID_LAYOUT = "5eedxxxx-xxxx-8xxx-vxxx-xxxxxxxxxxxx"


def is_seeded(value: str) -> bool:
    return SEEDED_UUID.fullmatch(value) is not None


class Draws:
    """The random columns of one block of one seed."""

    def __init__(self, seed: int, block: int, region: str | None = None):
        # a region's streams are its own: no user is drawn for two regions (see .residency)
        self.prefix = f"sovren-seed/{seed}/{block}/{f'{region}/' if region else ''}".encode()

    def bytes(self, name: str, count: int) -> bytes:
        return hashlib.shake_256(self.prefix + name.encode()).digest(count)

    def u32(self, name: str, count: int) -> array:
        numbers = array(_U32, self.bytes(name, 4 * count))
        if sys.byteorder == "big":
            numbers.byteswap()
        return numbers

    def unit(self, name: str, count: int) -> list[float]:
        """Uniform in [0, 1)."""
        scale = 1.0 / 4294967296.0
        return [x * scale for x in self.u32(name, count)]

    def below(self, name: str, count: int, bound: int) -> list[int]:
        """Uniform integers in [0, bound) (bias below bound / 2**32)."""
        if bound <= 1:
            return [0] * count
        return [x % bound for x in self.u32(name, count)]

    def pick(self, name: str, count: int, items: Sequence[T]) -> list[T]:
        size = len(items)
        return [items[x % size] for x in self.u32(name, count)]

    def chance(self, name: str, count: int, share: float) -> list[bool]:
        threshold = int(share * 4294967296.0)
        return [x < threshold for x in self.u32(name, count)]

    def counts(self, name: str, count: int, mean: float) -> list[int]:
        """Children per parent: from 0 to 2 * mean, averaging ``mean`` (floor(2 mean u + w))."""
        if mean <= 0:
            return [0] * count
        spread = 2.0 * mean
        return [int(spread * u + w) for u, w in zip(self.unit(name + "#u", count), self.unit(name + "#w", count))]

    def uuids(self, name: str, count: int) -> list[str]:
        """Seeded version 8 UUIDs, built column-wise with slice assignments (no per-id formatting)."""
        if not count:
            return []
        digits = self.bytes(name, 16 * count).hex().encode()
        out = bytearray(37 * count)
        source = 0
        for position, char in enumerate(_UUID_LAYOUT):
            if char in "xv":
                column = digits[source::32]
                out[position::37] = column.translate(_VARIANT) if char == "v" else column
                source += 1
            else:
                out[position::37] = char.encode() * count
        out[36::37] = b"\n" * count
        return out[:-1].decode("ascii").split("\n")

    def hexes(self, name: str, count: int, chars: int) -> list[str]:
        width = (chars + 1) // 2
        digits = self.bytes(name, width * count).hex()
        step = 2 * width
        return [digits[i:i + chars] for i in range(0, step * count, step)]

    def tokens(self, name: str, count: int, nbytes: int) -> list[str]:
        """URL-safe base64 tokens of ``nbytes`` random bytes (no padding when nbytes % 3 == 0)."""
        raw = self.bytes(name, nbytes * count)
        text = base64.urlsafe_b64encode(raw).decode("ascii")
        width = nbytes * 4 // 3
        if nbytes % 3 == 0:
            return [text[i:i + width] for i in range(0, width * count, width)]
        return [base64.urlsafe_b64encode(raw[i:i + nbytes]).decode().rstrip("=")
                for i in range(0, nbytes * count, nbytes)]

    def distinct(self, name: str, counts: Sequence[int], items: Sequence[T]) -> list[list[T]]:
        """For each count, that many distinct items (``len(items)`` must be prime)."""
        size = len(items)
        starts = self.below(name + "#start", len(counts), size)
        steps = self.below(name + "#step", len(counts), size - 1)
        return [[items[(start + j * (step + 1)) % size] for j in range(min(k, size))]
                for k, start, step in zip(counts, starts, steps)]


def expand(counts: Sequence[int]) -> list[int]:
    """The parent index of every child, children grouped by parent in order."""
    return [parent for parent, k in enumerate(counts) for _ in range(k)]


def offsets(counts: Sequence[int]) -> list[int]:
    """Where each parent's children start in the expanded list."""
    out, total = [], 0
    for k in counts:
        out.append(total)
        total += k
    return out
