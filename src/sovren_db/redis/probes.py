"""The audit's questions about the keys of one family, asked and checked a block at a time.

For the inspected keys of one family in a SCAN batch the audit sends every
``PTTL``, then every length command of the family's type (``STRLEN``,
``HLEN``, ``LLEN``, ``SCARD``, ``ZCARD``, ``XLEN``), which is also the type test
(see :class:`FamilyProbe`). The replies come back as one block per question
(integers, or the ``ResponseError`` of a key of another type), and the usual
case, where every key is fine, is checked with C-speed list operations
(``count``, ``max``). Keys are looked at one by one only when a block shows a
problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

from .patterns import printable_key
from .scan import bulk
from .state import KeyFamily

LENGTH_COMMANDS = {"string": b"STRLEN", "hash": b"HLEN", "list": b"LLEN", "set": b"SCARD", "zset": b"ZCARD",
                   "stream": b"XLEN"}
MEMORY_HEADER = b"*3\r\n$6\r\nMEMORY\r\n$5\r\nUSAGE\r\n"
_NO_TTL, _GONE = -1, -2


def header(command: bytes) -> bytes:
    """The start of a one-key command, up to its key."""
    return b"*2\r\n$%d\r\n%s\r\n" % (len(command), command)


def bulks(keys: Sequence[bytes]) -> list[bytes]:
    return list(map(bulk, keys))


def ask(headers: Sequence[bytes], encoded: list[bytes]) -> bytes:
    """Every key with the first command, then every key with the next..."""
    return b"".join(h + h.join(encoded) for h in headers)


@dataclass
class Tally:
    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, key: bytes, limit: int, detail: str = "") -> None:
        self.count += 1
        if len(self.examples) < limit:
            shown = printable_key(key)
            self.examples.append(f"{shown} ({detail})" if detail else shown)


@dataclass
class FamilyStats:
    family: KeyFamily
    keys: int = 0
    inspected: int = 0
    memory_samples: int = 0
    memory_bytes: int = 0
    problems: dict[str, Tally] = field(default_factory=dict)

    def tally(self, problem: str) -> Tally:
        return self.problems.setdefault(problem, Tally())

    @property
    def estimated_bytes(self) -> int | None:
        if not self.memory_samples:
            return None
        return self.memory_bytes * self.keys // self.memory_samples


@dataclass(frozen=True)
class FamilyProbe:
    """``PTTL`` and the type's own O(1) length command (``STRLEN``, ``HLEN``...) per key.

    The length command is the type test: on a key of another type it fails
    with ``WRONGTYPE`` (the actual type is then asked for the few examples
    only), on the right type it gives the size that the declared limit needs.
    Two commands a key instead of ``TYPE``, ``PTTL`` and a length.
    """

    family: KeyFamily
    headers: tuple[bytes, ...]
    size_limit: int | None = None
    max_ttl_ms: int | None = None

    @classmethod
    def of(cls, family: KeyFamily) -> "FamilyProbe":
        limit = family.max_bytes if family.type == "string" else family.max_elements
        max_ttl = family.ttl.max * 1000 if family.ttl.policy == "required" and family.ttl.max else None
        return cls(family, (header(b"PTTL"), header(LENGTH_COMMANDS[family.type])), limit, max_ttl)

    def check(self, stats: FamilyStats, keys: Sequence[bytes], replies: list, limit: int,
              type_of: Callable[[bytes], str]) -> list[bytes]:
        """Check one block of replies (TTLs, then lengths); returns the keys of the family's type."""
        n = len(keys)
        ttls, lengths = replies[:n], replies[n:2 * n]
        gone = ttls.count(_GONE)
        stats.inspected += n - gone
        longest = _largest(lengths)
        if gone or longest is None:  # a key vanished or has another type: look at each
            return [key for key, ttl, length in zip(keys, ttls, lengths)
                    if self.check_one(stats, key, ttl, length, limit, type_of)]
        for i in self._ttl_suspects(ttls):
            self.check_ttl(stats, keys[i], ttls[i], limit)
        if self.size_limit is not None and longest > self.size_limit:
            for i in _above(lengths, self.size_limit):
                self.check_size(stats, keys[i], lengths[i], limit)
        return list(keys)

    def _ttl_suspects(self, ttls: list[int]) -> list[int]:
        """Positions of the TTLs that may break the rule (usually none: found with list methods)."""
        policy = self.family.ttl.policy
        if policy == "required":
            suspects = _positions(ttls, _NO_TTL)
            if self.max_ttl_ms is not None and ttls and max(ttls) > self.max_ttl_ms:
                suspects += _above(ttls, self.max_ttl_ms)
            return suspects
        if policy == "none" and ttls.count(_NO_TTL) != len(ttls):
            return [i for i, ttl in enumerate(ttls) if ttl != _NO_TTL]
        return []

    def check_one(self, stats: FamilyStats, key: bytes, ttl: int, length, limit: int,
                  type_of: Callable[[bytes], str]) -> bool:
        """Check one key; True when it has the family's type."""
        if ttl == _GONE:
            return False
        if not isinstance(length, int):  # WRONGTYPE
            tally = stats.tally("wrong_type")
            tally.add(key, limit, type_of(key) if len(tally.examples) < limit else "")
            return False
        self.check_ttl(stats, key, ttl, limit)
        if self.size_limit is not None:
            self.check_size(stats, key, length, limit)
        return True

    def check_ttl(self, stats: FamilyStats, key: bytes, ttl: int, limit: int) -> None:
        policy = self.family.ttl.policy
        if policy == "required":
            if ttl == _NO_TTL:
                stats.tally("missing_ttl").add(key, limit)
            elif self.max_ttl_ms is not None and ttl > self.max_ttl_ms:
                stats.tally("ttl_above_max").add(key, limit, f"{ttl // 1000}s left")
        elif policy == "none" and ttl not in (_NO_TTL, _GONE):
            stats.tally("unexpected_ttl").add(key, limit, f"{ttl // 1000}s left")

    def check_size(self, stats: FamilyStats, key: bytes, reply, limit: int) -> None:
        if isinstance(reply, int) and reply > self.size_limit:  # type: ignore[operator]
            unit = "bytes" if self.family.type == "string" else "elements"
            stats.tally("oversize").add(key, limit, f"{reply} {unit}")

    def record_memory(self, stats: FamilyStats, key: bytes, reply, limit: int) -> None:
        if not isinstance(reply, int):
            return  # nil: the key is gone
        stats.memory_samples += 1
        stats.memory_bytes += reply
        family = self.family
        if family.max_bytes and family.type != "string" and reply > family.max_bytes:
            stats.tally("oversize").add(key, limit, f"{reply} bytes in memory")


def _largest(replies: list) -> int | None:
    """The largest integer reply (0 for none); None when an error reply is among them."""
    try:
        largest = max(replies, default=0)
    except TypeError:  # a ResponseError does not compare with an int
        return None
    return largest if isinstance(largest, int) else None


def _above(replies: list[int], limit: int) -> list[int]:
    return [i for i, reply in enumerate(replies) if reply > limit]


def _positions(replies: list[int], value: int) -> list[int]:
    """Every position of ``value`` in ``replies``, found with list.index."""
    found: list[int] = []
    start = 0
    try:
        while True:
            start = replies.index(value, start)
            found.append(start)
            start += 1
    except ValueError:
        return found
