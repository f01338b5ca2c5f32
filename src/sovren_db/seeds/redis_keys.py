"""Seeded Redis keys as batches: :class:`KeyBatch`, the TTL a family's rule asks for, seeded values.

:mod:`.families` gives a :class:`KeyBatch` for one declared family: keys rendered
from the family's declared pattern, values of one Redis type, and the TTL the
family's rule asks for (its ``default``, else its bounds; none where the
family has no TTL). Placeholder values are seeded ids (see :mod:`.draws`), so
``--reset`` recognises seeded keys; the stream families get their entries'
``messageId`` seeded instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..redis.patterns import Placeholder
from ..redis.state import KeyFamily
from .draws import SEEDED_PREFIX, SEEDED_UUID

DEFAULT_REQUIRED_TTL = 86400
SEEDED_HASH = re.compile(SEEDED_PREFIX + "[0-9a-f]{60}")


@dataclass
class KeyBatch:
    """Keys of one family; ``values[i]`` is bytes (string), dict (hash, or a stream entry),
    list (set, list) or list of (member, score) (zset)."""

    family: KeyFamily
    kind: str                       # the Redis type of the values
    keys: list[bytes]
    values: list
    ttl: int | None | list[int | None] = None

    def ttl_of(self, index: int) -> int | None:
        return self.ttl[index] if isinstance(self.ttl, list) else self.ttl

    def __len__(self) -> int:
        return len(self.keys)


def seed_ttl(family: KeyFamily) -> int | None:
    rule = family.ttl
    if rule.policy != "required":
        return None
    return rule.default or rule.min or rule.max or DEFAULT_REQUIRED_TTL


def key_maker(family: KeyFamily) -> Callable[[str], bytes]:
    """Render keys of a one-placeholder pattern fast (prefix + value + suffix)."""
    tokens = family.parsed.tokens
    if sum(isinstance(t, Placeholder) for t in tokens) != 1:
        name = family.parsed.placeholders[0] if family.parsed.placeholders else None
        return lambda value: family.parsed.render({name: value} if name else {})
    at = next(i for i, t in enumerate(tokens) if isinstance(t, Placeholder))
    prefix = "".join(tokens[:at]).encode("utf-8", "surrogateescape")
    suffix = "".join(tokens[at + 1:]).encode("utf-8", "surrogateescape")
    return lambda value: prefix + value.encode() + suffix


def is_seeded_value(value: bytes) -> bool:
    """A seeded uuid, a seeded token (``5eed`` and 60 hex digits) or a seeded integer key (0x5eed in its
    top 16 bits, see :mod:`.rows`)."""
    text = value.decode("ascii", "replace")
    if text.isdigit() and len(text) < 20:
        number = int(text)
        return any(0x5EED <= number >> shift < 0x8000 for shift in (16, 48))   # int4 and int8 keys
    return SEEDED_UUID.fullmatch(text) is not None or SEEDED_HASH.fullmatch(text) is not None
