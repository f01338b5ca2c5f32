"""Work on the keys of a family: backfill TTLs, delete (moves are in :mod:`.moves`).

Every function is convergent: it works from a SCAN of what is still to do,
so a run that died half-way is finished by the next one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import redis

from .moves import BATCH, Pace
from .patterns import KeyPattern

if TYPE_CHECKING:
    from .backend import RedisBackend

# PTTL and EXPIRE for one key in one call, so that a batch is one pipeline: SCAN + one round trip,
# not SCAN + PTTL + EXPIRE. No native form exists: EXPIRE NX skips keys above the maximum and EXPIRE LT
# would also cut keys between the default and the maximum.
_BACKFILL = """
local ttl = redis.call('PTTL', KEYS[1])
if ttl == -1 or ttl > tonumber(ARGV[2]) then
  return redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0
"""


def backfill_ttl(backend: "RedisBackend", pattern: KeyPattern, ttl_seconds: int, max_seconds: int | None,
                 pace: Pace = Pace()) -> int:
    """Give ``ttl_seconds`` to keys without a TTL and to keys above ``max_seconds``; returns how many.
    One pipeline a SCAN batch: EXPIRE NX without a maximum, else the script above."""
    changed, throttle, scripts = 0, pace.throttle(), {}
    for client, keys in backend.family_batches(pattern, pace.batch):
        pipe = client.pipeline(transaction=False)
        if max_seconds is None:
            for key in keys:
                pipe.expire(key, ttl_seconds, nx=True)
        else:
            sha = scripts.get(id(client)) or scripts.setdefault(id(client), client.script_load(_BACKFILL))
            for key in keys:
                pipe.evalsha(sha, 1, key, ttl_seconds * 1000, max_seconds * 1000)
        changed += sum(1 for done in pipe.execute() if done)
        throttle.after(len(keys))
    return changed


def delete_family(backend: "RedisBackend", pattern: KeyPattern) -> int:
    """UNLINK every key of the family, one SCAN batch at a time; returns how many."""
    return sum(unlink_keys(client, keys) for client, keys in backend.family_batches(pattern, BATCH))


def unlink_keys(client: redis.Redis, keys: list[bytes]) -> int:
    """UNLINK keys of one node, one command per key (keys of a cluster node span slots)."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.unlink(key)
    return sum(pipe.execute())
