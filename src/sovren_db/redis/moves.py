"""Moving a key family on a live keyspace: every key from the old pattern to the new one.

A move runs in passes. Before the first, keys that already exist under the
new pattern (an earlier move, a writer) are settled by the ``on_conflict``
policy, so that a refusal leaves nothing moved. Then each pass SCANs every
master for keys that still follow the old pattern and moves them; passes go on
until one finds none (a key written again under the old name after its move
lands behind the SCAN cursor and is only seen by a later pass), at most
``sweeps`` more times, after which the move is refused naming the count.

From the first pass on, every key under the new pattern belongs to the move,
so a conflict means a client wrote the key again while it moved; the copy the
registry tells writers to use wins: the old key in a plain move (the registry
announces the old pattern until the end), the new key during an overlap (the
registry announces the new pattern for writes). On one server a SCAN batch
moves inside one short script (``RENAME`` / ``RENAMENX``, see :data:`_MOVE_STEP`);
on a cluster the client moves the keys, ``RENAME`` where both keys live on one
slot and ``DUMP`` / ``RESTORE`` / ``DEL`` across slots, the copy written before
its source is deleted, so that a key is never absent from both names (what a
registry-following reader relies on, see :mod:`.follow`).

``bench/redis_moves.py`` (1 M keys, a 2,000 ops/s probe) measures a move against
SCAN + pipelined RENAME by hand: see its docstring for the figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

import redis
from redis.crc import key_slot

from ..core.errors import MigrationFailed
from .patterns import KeyPattern, Placeholder, printable_key

if TYPE_CHECKING:
    from .backend import RedisBackend

CONFLICT_POLICIES = ("fail", "keep-new", "keep-old")
BATCH = 500
SWEEPS = 8


@dataclass(frozen=True)
class Pace:
    """How hard a key step works a server: keys per SCAN batch and a ceiling in keys per second.
    ValueError for a bad value: the runtime names the revision and the step around it."""

    batch: int = BATCH
    rate: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.batch, int) or isinstance(self.batch, bool) or self.batch < 1:
            raise ValueError(f"batch must be a whole number of keys of 1 or more, not {self.batch!r}")
        if self.rate is not None and (isinstance(self.rate, bool) or not isinstance(self.rate, (int, float))
                                      or self.rate <= 0):
            raise ValueError(f"rate must be a number of keys per second above 0, not {self.rate!r}")

    def throttle(self) -> "Throttle":
        return Throttle(self.rate)


class Throttle:
    """Sleeps so that the keys handled since the start stay under ``rate`` a second."""

    def __init__(self, rate: float | None):
        self.rate, self.done, self.start = rate, 0, time.monotonic()

    def after(self, keys: int) -> None:
        if self.rate is None:
            return
        self.done += keys
        ahead = self.done / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            time.sleep(ahead)


@dataclass
class MoveCount:
    moved: int = 0
    completed: int = 0     # interrupted moves finished (destination already held the value)
    conflicts: int = 0     # settled by the on_conflict policy before the first pass
    rewritten: int = 0     # keys written again while they moved, settled for the registry's copy
    passes: int = 0
    scanned: int = 0       # keys under the old pattern the passes found (SCAN's glob may match more)


@dataclass(frozen=True)
class Move:
    """One family move: its patterns and who wins when a client wrote a key again while it moved."""

    old: KeyPattern
    new: KeyPattern
    new_wins: bool = False     # True during an overlap: writers use the new pattern

    def pairs(self, keys: list[bytes]) -> list[tuple[bytes, bytes]]:
        """(old key, new key) for the keys that follow the old pattern (SCAN's glob may match more)."""
        match, render = self.old.regex().fullmatch, self.new.render
        return [(key, render(found.groupdict())) for key in keys if (found := match(key)) is not None]


def old_key_batches(backend: "RedisBackend", move: Move, pace: Pace) -> Iterator[tuple[redis.Redis, list]]:
    """(client of a master, pairs) for one SCAN pass over every master, paced: what is left to move."""
    glob, throttle, only = move.old.glob(), pace.throttle(), lua_pattern(move.old)
    for _, client in backend.masters():
        step, cursor = _scan_step(client, only), 0
        while True:
            cursor, keys = step(cursor, glob, pace.batch)
            pairs = move.pairs(keys)
            if pairs:
                yield client, pairs
                throttle.after(len(pairs))
            if int(cursor) == 0:
                break


# One SCAN step on the server that returns only the keys following the pattern exactly: when the
# new pattern falls under the old one's glob (``sess:*`` also matches ``sess:v2:*``) the moved keys
# never cross the network again. SCAN's MATCH is a glob and cannot say "no ':' in a placeholder".
_SCAN_EXACT = """
local reply = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local keys = {}
for _, key in ipairs(reply[2]) do
  if string.find(key, ARGV[4]) then keys[#keys + 1] = key end
end
return {reply[1], keys}
"""


def _scan_step(client: redis.Redis, only: bytes | None):
    """cursor, glob, count -> (cursor, keys): the filtered server step, or plain SCAN without a Lua form."""
    if only is None:
        return lambda cursor, glob, batch: client.scan(cursor, match=glob, count=batch)
    script = client.register_script(_SCAN_EXACT)
    return lambda cursor, glob, batch: script(args=[cursor, glob, batch, only], client=client)


def lua_pattern(pattern: KeyPattern, captures: bool = False) -> bytes | None:
    """The pattern as an anchored Lua pattern matching the same keys as its regex (a placeholder is
    ``[^:{}]+``, captured with ``captures``, every other byte escaped); None when a literal holds NUL,
    which Lua 5.1 patterns cannot."""
    value = b"([^:{}]+)" if captures else b"[^:{}]+"
    parts = [b"^"]
    for token in pattern.tokens:
        if isinstance(token, Placeholder):
            parts.append(value)
            continue
        literal = token.encode("utf-8", "surrogateescape")
        if b"\0" in literal:
            return None
        parts.extend(bytes([c]) if chr(c).isalnum() and c < 128 else b"%" + bytes([c]) for c in literal)
    return b"".join(parts + [b"$"])


Step = Callable[[int, int, MoveCount], tuple[int, int]]


# The pass proving no key is left walks the keyspace again rather than replaying keyspace
# notifications of the old pattern caught during the move: those need notify-keyspace-events changed
# on the server (a kill -9 would leave it so), and pub/sub drops messages for a subscriber that lags,
# which a proof cannot afford. The walk costs what a plain SCAN walk does (see MOVE_SHARE).
def move_keys(backend: "RedisBackend", move: Move, pace: Pace, sweeps: int | None = None,
              count: MoveCount | None = None) -> MoveCount:
    """Passes until one finds no key under the old pattern; MigrationFailed after ``sweeps`` more."""
    count, sweeps = count or MoveCount(), SWEEPS if sweeps is None else sweeps
    for _ in range(sweeps + 1):
        count.passes += 1
        if not move_pass(backend, move, pace, count):
            return count
    left = sum(len(pairs) for _, pairs in old_key_batches(backend, move, Pace(pace.batch)))
    if not left:
        return count
    raise MigrationFailed(
        f"Cannot finish moving {move.old.text!r} to {move.new.text!r}: {keys_follow(left)} the old pattern "
        f"after {sweeps} sweeps (a client keeps writing them); stop those writers or move with overlap, "
        "then run migrate again (the keys moved so far stay moved).")


def move_pass(backend: "RedisBackend", move: Move, pace: Pace, count: MoveCount) -> int:
    """One SCAN pass over every master, moving each batch as it is found; how many keys it found."""
    found, throttle = 0, pace.throttle()
    for _, client in backend.masters():
        step, cursor = batch_mover(backend, client, move), 0
        while True:
            cursor, moved = step(cursor, pace.batch, count)
            found += moved
            throttle.after(moved)
            if int(cursor) == 0:
                break
    return found


def batch_mover(backend: "RedisBackend", client: redis.Redis, move: Move) -> Step:
    """(cursor, batch, count) -> (cursor, keys found): one SCAN batch of one master, moved.

    On one server the keys move inside a script (:class:`_ServerMover`); on a cluster, or for a
    pattern Lua cannot express, the client renders the new keys and moves them."""
    only = lua_pattern(move.old, captures=True)
    if backend.cluster or only is None:
        return _client_mover(backend, client, move)
    return _ServerMover(client, [move.old.glob(), only, int(move.new_wins), _replacement(move)])


# Moving a key in the script costs the server about five times what SCAN spends visiting one
# (Redis 7.0, 200k keys: SCAN COUNT 500 takes 0.30 ms, 0.64 ms at p99; a script moving 500 keys
# 1.56 ms at p99, 100 keys 0.42 ms). So a call moves at most a fifth of a batch and holds the server
# no longer than a hand SCAN of a whole batch, the longest the hand reference holds it (its RENAME
# pipeline is read and run a 16 KB buffer at a time, between other clients). A call that found no
# key lets the next one visit a whole batch: the last pass, proving none is left, is a plain walk.
MOVE_SHARE = 5


class _ServerMover:
    def __init__(self, client: redis.Redis, fixed: list):
        self.client, self.script, self.fixed, self.found = client, client.register_script(_MOVE_STEP), fixed, 1

    def __call__(self, cursor: int, batch: int, count: MoveCount) -> tuple[int, int]:
        size = max(1, batch // MOVE_SHARE) if self.found else batch
        cursor, self.found, moved, rewritten = self.script(args=[cursor, size, *self.fixed], client=self.client)
        count.scanned, count.moved, count.rewritten = (count.scanned + self.found, count.moved + moved,
                                                       count.rewritten + rewritten)
        return cursor, self.found


def _client_mover(backend: "RedisBackend", client: redis.Redis, move: Move) -> Step:
    scan, glob = _scan_step(client, lua_pattern(move.old)), move.old.glob()

    def step(cursor: int, batch: int, count: MoveCount) -> tuple[int, int]:
        cursor, keys = scan(cursor, glob, batch)
        count.scanned += len(keys)
        pairs = move.pairs(keys)
        if pairs:
            move_pairs(backend, client, pairs, move, count)
        return cursor, len(pairs)
    return step


def _replacement(move: Move) -> bytes:
    """The new key as a ``string.gsub`` replacement over the old pattern's captures (``%1``...)."""
    index = {name: n for n, name in enumerate(move.old.placeholders, 1)}
    return b"".join(b"%%%d" % index[token.name] if isinstance(token, Placeholder)
                    else token.encode("utf-8", "surrogateescape").replace(b"%", b"%%") for token in move.new.tokens)


# One SCAN batch moved on the server: SCAN, render each new key from an old-pattern key (one gsub:
# a key of another pattern is left as it is) and RENAME it (RENAMENX during an overlap, the old key
# dropped when the new one exists). Neither the keys nor one command per key cross the network: by
# hand (SCAN + a pipeline of RENAME) packing and parsing each command is most of the time (a move of
# 200k keys: 1.0 s against 1.7 s by hand, the walks before and after included). A call is atomic,
# so each key is under exactly one name throughout. A key gone since SCAN (expired) is skipped; any
# other error ends the call (what moved stays moved). ARGV: cursor, count, glob, Lua pattern, new wins (1/0), replacement.
_MOVE_STEP = """
local reply = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[3], 'COUNT', ARGV[2])
local command = ARGV[5] == '1' and 'RENAMENX' or 'RENAME'
local found, moved, rewritten = 0, 0, 0
for _, key in ipairs(reply[2]) do
  local new, matched = string.gsub(key, ARGV[4], ARGV[6])
  if matched == 1 then
    found = found + 1
    local done = redis.pcall(command, key, new)
    if type(done) == 'table' and done.err then
      if not string.find(done.err, 'no such key', 1, true) then return redis.error_reply(done.err) end
    elseif done == 0 then
      redis.call('UNLINK', key)
      rewritten = rewritten + 1
    else
      moved = moved + 1
    end
  end
end
return {reply[1], found, moved, rewritten}
"""


def keys_follow(count: int) -> str:
    return f"{count} key still follows" if count == 1 else f"{count} keys still follow"


def move_pairs(backend: "RedisBackend", client: redis.Redis, pairs: list[tuple[bytes, bytes]],
               move: Move, count: MoveCount) -> None:
    """Move one batch of one master: renames within a slot in one pipeline, the rest by copy."""
    local, remote = _split_by_slot(backend, pairs)
    if local:
        pipe = client.pipeline(transaction=False)
        for src, dst in local:
            pipe.renamenx(src, dst) if move.new_wins else pipe.rename(src, dst)
        replies = pipe.execute(raise_on_error=False)
        _raise_unexpected(replies, "no such key")  # a source gone since SCAN (expired, deleted) is fine
        busy = [src for (src, _), reply in zip(local, replies) if reply == 0 or reply is False]
        count.moved += sum(1 for reply in replies if reply is True or reply == 1)
        _drop(client, busy, count)  # RENAMENX found the new key: written during the overlap, it wins
    if remote:
        _copy_across_slots(backend, client, remote, replace=not move.new_wins, count=count)


def _split_by_slot(backend: "RedisBackend", pairs: list[tuple[bytes, bytes]]) -> tuple[list, list]:
    if not backend.cluster:
        return pairs, []
    local, remote = [], []
    for pair in pairs:
        (local if key_slot(pair[0]) == key_slot(pair[1]) else remote).append(pair)
    return local, remote


def _drop(client: redis.Redis, keys: list[bytes], count: MoveCount) -> None:
    if keys:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.unlink(key)
        pipe.execute()
        count.rewritten += len(keys)


def _copy_across_slots(backend: "RedisBackend", client: redis.Redis, pairs: list[tuple[bytes, bytes]], *,
                       replace: bool, count: MoveCount) -> None:
    """DUMP + PTTL from the source node, RESTORE through the cluster, then DEL the sources left unchanged."""
    pipe = client.pipeline(transaction=False)
    for src, _ in pairs:
        pipe.dump(src)
        pipe.pttl(src)
    replies = pipe.execute()
    copies = [(src, dst, payload, max(ttl, 0)) for (src, dst), payload, ttl
              in zip(pairs, replies[0::2], replies[1::2]) if payload is not None]  # None: gone since SCAN
    results = _restore(backend, copies, replace)
    _raise_unexpected(results, "BUSYKEY")  # the new key exists: written during the overlap, it wins
    busy = sum(1 for result in results if isinstance(result, redis.ResponseError))
    _drop_unchanged(client, [(src, payload) for src, _, payload, _ in copies])
    count.moved += len(copies) - busy
    count.rewritten += busy


def _restore(backend: "RedisBackend", copies: list[tuple[bytes, bytes, bytes, int]], replace: bool) -> list:
    pipe = backend.client.pipeline(transaction=False)
    for _, dst, payload, ttl in copies:
        pipe.restore(dst, ttl, payload, replace=replace)
    return pipe.execute(raise_on_error=False)


# DEL a source only if it still holds what was copied: a client that wrote it again between the
# DUMP and now keeps its write under the old name, and the next pass moves it (compare-and-delete
# has no native command).
_DEL_UNCHANGED = "if redis.call('DUMP', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


def _drop_unchanged(client: redis.Redis, copied: list[tuple[bytes, bytes]]) -> None:
    sha = client.script_load(_DEL_UNCHANGED)
    pipe = client.pipeline(transaction=False)
    for src, payload in copied:
        pipe.evalsha(sha, 1, src, payload)
    pipe.execute()


def _raise_unexpected(replies: list, expected: str) -> None:
    for reply in replies:
        if isinstance(reply, redis.ResponseError) and expected not in str(reply):
            raise reply


# -- before the first pass: keys that already exist under the new pattern ---------

# A walk of its own, not folded into the first pass: that pass moves keys as it finds them, so a
# conflict met half-way under ``fail`` would leave the keys before it moved, and a rerun after a kill
# overwrites what it finds under the new pattern (the marker says it is the move's own), which holds
# only once the keys that were there before are settled. The walk returns only new-pattern keys
# (usually none): it costs what a plain SCAN walk does, 0.15 s a 200k keys, ~10% of the move.
def settle_existing(backend: "RedisBackend", move: Move, on_conflict: str, pace: Pace,
                    count: MoveCount) -> None:
    """Keys under both names before the move: an interrupted copy is finished, others follow ``on_conflict``.

    With ``fail``, the first conflict is named and nothing is moved."""
    if on_conflict not in CONFLICT_POLICIES:
        raise MigrationFailed(f"on_conflict must be one of {', '.join(CONFLICT_POLICIES)}.")
    back = Move(move.new, move.old)
    for client, pairs in old_key_batches(backend, back, pace):
        for new_key, old_key in _both_exist(backend, pairs):
            _settle(backend, old_key, new_key, on_conflict, count)


def _both_exist(backend: "RedisBackend", pairs: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    pipe = backend.client.pipeline(transaction=False)
    for _, old_key in pairs:
        pipe.exists(old_key)
    return [pair for pair, exists in zip(pairs, pipe.execute()) if exists]


def _settle(backend: "RedisBackend", old_key: bytes, new_key: bytes, on_conflict: str, count: MoveCount) -> None:
    client = backend.client
    payload = client.dump(old_key)
    if payload is None:
        return
    if client.dump(new_key) == payload:
        client.delete(old_key)
        count.completed += 1
        return
    if on_conflict == "fail":
        raise MigrationFailed(
            f"Cannot move Redis key {_shown(old_key)} to {_shown(new_key)}: the destination exists with another "
            "value (nothing was moved; resolve it, or rerun with on_conflict 'keep-new' or 'keep-old').")
    if on_conflict == "keep-old":
        client.restore(new_key, max(client.pttl(old_key), 0), payload, replace=True)
    client.delete(old_key)
    count.conflicts += 1


def _shown(key: bytes) -> str:
    return repr(printable_key(key))
