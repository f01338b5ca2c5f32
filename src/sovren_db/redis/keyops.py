"""Work on the keys of a family: move (rename), backfill TTLs, delete.

Every function is convergent: it works from a SCAN of what is still to do,
so a run that died half-way is finished by the next one. A move uses
``RENAMENX`` where both keys live on one slot (always on a standalone
server) and ``DUMP``/``RESTORE``/``DEL`` across slots of a cluster; a
destination that already holds exactly the source's value is a move that was
interrupted after its copy, and the source is just deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import redis
from redis.crc import key_slot

from ..core.errors import MigrationFailed
from .patterns import KeyPattern, printable_key

if TYPE_CHECKING:
    from .backend import RedisBackend

CONFLICT_POLICIES = ("fail", "keep-new", "keep-old")
BATCH = 500


@dataclass
class MoveCount:
    moved: int = 0
    completed: int = 0     # interrupted moves finished (destination already held the value)
    conflicts: int = 0     # resolved by the on_conflict policy


def move_family(backend: "RedisBackend", old: KeyPattern, new: KeyPattern, on_conflict: str = "fail") -> MoveCount:
    """Move every key of ``old`` to the key of ``new`` with the same placeholder values."""
    regex = old.regex()
    count = MoveCount()
    for client, keys in backend.family_batches(old, BATCH):
        pairs = [(key, new.render(regex.fullmatch(key).groupdict())) for key in keys]  # type: ignore[union-attr]
        _move_pairs(backend, client, pairs, on_conflict, count)
    return count


def _move_pairs(backend: "RedisBackend", client: redis.Redis, pairs: list[tuple[bytes, bytes]],
                on_conflict: str, count: MoveCount) -> None:
    local, remote = [], []
    for pair in pairs:
        same_slot = not backend.cluster or key_slot(pair[0]) == key_slot(pair[1])
        (local if same_slot else remote).append(pair)
    pipe = client.pipeline(transaction=False)
    for src, dst in local:
        pipe.renamenx(src, dst)
    for (src, dst), renamed in zip(local, pipe.execute(raise_on_error=False)):
        if renamed is True or renamed == 1:
            count.moved += 1
        elif not isinstance(renamed, redis.ResponseError):  # destination exists
            _resolve(backend, client, src, dst, on_conflict, count)
    if remote:
        _copy_across_slots(backend, client, remote, on_conflict, count)


def _copy_across_slots(backend: "RedisBackend", client: redis.Redis, pairs: list[tuple[bytes, bytes]],
                       on_conflict: str, count: MoveCount) -> None:
    pipe = client.pipeline(transaction=False)
    for src, _ in pairs:
        pipe.dump(src)
        pipe.pttl(src)
    replies = pipe.execute()
    for (src, dst), payload, ttl in zip(pairs, replies[0::2], replies[1::2]):
        if payload is None:
            continue  # gone since SCAN
        try:
            backend.client.restore(dst, max(ttl, 0), payload)
        except redis.ResponseError as exc:
            if "BUSYKEY" not in str(exc):
                raise
            _resolve(backend, client, src, dst, on_conflict, count, payload=payload)
            continue
        client.delete(src)
        count.moved += 1


def _resolve(backend: "RedisBackend", client: redis.Redis, src: bytes, dst: bytes, on_conflict: str,
             count: MoveCount, payload: bytes | None = None) -> None:
    """The destination exists: finish an interrupted move, or apply the conflict policy."""
    payload = payload if payload is not None else client.dump(src)
    if payload is None:
        return
    if backend.client.dump(dst) == payload:
        client.delete(src)
        count.completed += 1
        return
    if on_conflict == "fail":
        raise MigrationFailed(
            f"Cannot move Redis key {_shown(src)} to {_shown(dst)}: the destination exists with another value "
            "(the keys moved so far stay moved; resolve it, or rerun with on_conflict 'keep-new' or 'keep-old')."
        )
    if on_conflict == "keep-old":
        backend.client.restore(dst, max(client.pttl(src), 0), payload, replace=True)
    client.delete(src)
    count.conflicts += 1


def backfill_ttl(backend: "RedisBackend", pattern: KeyPattern, ttl_seconds: int, max_seconds: int | None) -> int:
    """Give ``ttl_seconds`` to keys without a TTL and to keys above ``max_seconds``; returns how many."""
    changed = 0
    for client, keys in backend.family_batches(pattern, BATCH):
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.pttl(key)
        updates = client.pipeline(transaction=False)
        for key, ttl in zip(keys, pipe.execute()):
            if ttl == -1:
                updates.expire(key, ttl_seconds, nx=True)
            elif max_seconds is not None and ttl > max_seconds * 1000:
                updates.expire(key, ttl_seconds, lt=True)
        changed += sum(1 for done in updates.execute() if done)
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


def _shown(key: bytes) -> str:
    return repr(printable_key(key))
