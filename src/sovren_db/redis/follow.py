"""How a service follows the registry (``{sovren-db}:registry``) so that a family move costs it no miss.

The protocol, for services in any language:

- The entry ``family:<name>`` gives the family's ``pattern``. During an overlap
  (``redis_rename_family(..., overlap=True)`` until ``redis_contract_family``)
  the new family's entry also carries ``fallback``: the old pattern.
- Write with the new pattern: an entry's ``pattern``, or, for a service that
  still knows the family by its old name, the ``pattern`` of the entry whose
  ``fallback`` is its own pattern.
- Read the new key; on a miss read the old key; on a second miss read the new
  key once more. Keys only move from old to new, and a moved key is written
  under its new name before its old name is deleted, so a key that exists is
  found by one of the three reads (the third catches a move between the first two).
- Re-read the registry when a read misses, and at least every ``max_age`` seconds.
- The contract retires the old name: deploy every service with the new name
  first. A follower of the old name then raises LookupError (the family is
  not published), rather than guess where its keys went.
"""

from __future__ import annotations

import json
import time
from typing import Callable

import redis

from .patterns import KeyPattern, parse_pattern
from .state import RESERVED_KEYS


class FamilyFollower:
    """One family's keys for a service, as the registry announces them."""

    def __init__(self, client: redis.Redis, name: str, *, max_age: float = 1.0):
        self.client, self.name, self.max_age = client, name, max_age
        self._view: tuple[KeyPattern, KeyPattern | None] | None = None
        self._read_at = 0.0

    def view(self, *, fresh: bool = False) -> tuple[KeyPattern, KeyPattern | None]:
        """(pattern to write and read first, pattern to read on a miss or None)."""
        if fresh or self._view is None or time.monotonic() - self._read_at > self.max_age:
            self._view, self._read_at = announced(self.client, self.name), time.monotonic()
        return self._view

    def key(self, **values: str) -> bytes:
        """The key to write for these placeholder values."""
        return self.view()[0].render(values)

    def read(self, fetch: Callable[[bytes], object] | None = None, **values: str) -> object:
        """``fetch(key)`` (default GET) of the family's key: the new key, else the old, else the new again;
        on a miss the registry is read again and the reads are repeated once."""
        fetch = fetch or self.client.get
        found = self._read(fetch, self.view(), values)
        return found if found is not None else self._read(fetch, self.view(fresh=True), values)

    @staticmethod
    def _read(fetch: Callable[[bytes], object], view: tuple[KeyPattern, KeyPattern | None],
              values: dict[str, str]) -> object:
        new, old = view
        found = fetch(new.render(values))
        if found is not None or old is None:
            return found
        found = fetch(old.render(values))
        return found if found is not None else fetch(new.render(values))


def announced(client: redis.Redis, name: str) -> tuple[KeyPattern, KeyPattern | None]:
    """What the registry announces for family ``name``: (write pattern, read fallback)."""
    entries = {k.decode(): json.loads(v) for k, v in client.hgetall(RESERVED_KEYS["registry"]).items()
               if k.startswith(b"family:")}
    own = entries.get(f"family:{name}")
    if own is None:
        raise LookupError(f"family {name!r} is not published in the registry")
    for other in entries.values():
        if other.get("fallback") == own["pattern"]:  # this family is moving away under another name
            return parse_pattern(other["pattern"]), parse_pattern(own["pattern"])
    fallback = own.get("fallback")
    return parse_pattern(own["pattern"]), parse_pattern(fallback) if fallback else None
