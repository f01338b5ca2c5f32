"""Redis: non-transactional pipelines of raw commands, one connection per master.

Commands are encoded straight into RESP and sent a chunk at a time on a
connection of the client's pool, reading the replies of the previous chunk
while the server works on the next (the Redis package's
:class:`~sovren_db.redis.scan.RawNode`, redis-py's public connection API):
encoding a SET costs a fraction of what redis-py's ``pack_commands`` spends
per command. On a cluster each key goes to the master of its slot. The first
error reply stops the seed.

Writes converge: a string is SET, a hash, set, list or sorted set is deleted
and written whole, so loading a seed twice leaves the same keys. Stream
entries (the communications queue) go through redis-py's pipeline; entries
whose ``messageId`` is already in the stream are not added again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

import redis
from redis.crc import key_slot

from ..redis.keyops import unlink_keys
from ..redis.patterns import KeyMatcher
from ..redis.scan import RawNode, bulk
from .prevalidate import SeedFailed
from .redis_keys import KeyBatch, is_seeded_value

if TYPE_CHECKING:
    from ..redis.backend import RedisBackend
    from ..redis.state import KeyFamily

CHUNK = 4096
PAGE = 1000    # stream entries per XRANGE, keys per SCAN
_ADD = {"hash": b"HSET", "set": b"SADD", "list": b"RPUSH", "zset": b"ZADD"}


def _text(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _expire(key_bulk: bytes, ttl: int | None) -> bytes:
    return b"" if ttl is None else b"*3\r\n$6\r\nEXPIRE\r\n" + key_bulk + bulk(b"%d" % ttl)


def encode_commands(batch: KeyBatch) -> list[tuple[bytes, bytes, int]]:
    """(key, RESP commands, replies expected) for each key of a non-stream batch."""
    out = []
    set_options: dict[int | None, bytes] = {}
    for index, (key, value) in enumerate(zip(batch.keys, batch.values)):
        ttl, key_bulk = batch.ttl_of(index), bulk(key)
        if batch.kind == "string":
            option = set_options.get(ttl)
            if option is None:
                option = set_options[ttl] = b"" if ttl is None else b"$2\r\nEX\r\n" + bulk(b"%d" % ttl)
            out.append((key, b"*%d\r\n$3\r\nSET\r\n" % (5 if option else 3) + key_bulk + bulk(value) + option, 1))
            continue
        parts = _elements(batch.kind, value)
        add = b"*%d\r\n" % (2 + len(parts)) + bulk(_ADD[batch.kind]) + key_bulk + b"".join(map(bulk, parts))
        out.append((key, b"*2\r\n$3\r\nDEL\r\n" + key_bulk + add + _expire(key_bulk, ttl), 2 + (ttl is not None)))
    return out


def _elements(kind: str, value) -> list[bytes]:
    if kind == "hash":
        return [_text(part) for pair in value.items() for part in pair]
    if kind == "zset":
        return [_text(part) for member, score in value for part in (score, member)]
    return [_text(member) for member in value]


class KeyWriter:
    """Writes key batches to a standalone server or to the masters of a cluster."""

    def __init__(self, backend: "RedisBackend"):
        self.backend = backend
        self.nodes: dict[str, RawNode] = {}
        self.pending: dict[str, list[tuple[int, str]]] = {}   # node -> (replies owed, family) per chunk sent
        self.stream_messages: dict[bytes, set[bytes]] = {}   # stream key -> seeded messageIds in it

    def _node(self, key: bytes) -> str:
        client = self.backend.client
        if not self.backend.cluster:
            name = "server"
        else:
            node = client.nodes_manager.get_node_from_slot(key_slot(key))
            name = node.name
            client = client.get_redis_connection(node)
        if name not in self.nodes:
            self.nodes[name] = RawNode(client, name=name)
            self.pending[name] = []
        return name

    def write(self, batch: KeyBatch) -> int:
        """Write a batch; returns how many keys (or stream entries) it holds."""
        if batch.kind == "stream":
            return self._write_stream(batch)
        chunks: dict[str, tuple[list[bytes], int]] = {}
        for key, commands, replies in encode_commands(batch):
            name = self._node(key)
            parts, owed = chunks.get(name, ([], 0))
            parts.append(commands)
            chunks[name] = (parts, owed + replies)
            if len(parts) >= CHUNK:
                self._send(name, parts, owed + replies, batch.family)
                chunks[name] = ([], 0)
        for name, (parts, owed) in chunks.items():
            if parts:
                self._send(name, parts, owed, batch.family)
        return len(batch)

    def _send(self, name: str, parts: list[bytes], owed: int, family: "KeyFamily") -> None:
        node = self.nodes[name]
        node.send(b"".join(parts))
        self.pending[name].append((owed, family.name))
        if len(self.pending[name]) > 1:   # one chunk in flight while the server works on the next
            self._check(node, *self.pending[name].pop(0))

    def _check(self, node: RawNode, owed: int, family: str) -> None:
        for reply in node.read(owed):
            if isinstance(reply, redis.ResponseError):
                raise SeedFailed(f"Redis refused a seeded key of family {family} on {node.name}: "
                                 f"{str(reply).rstrip('.')}.")

    def _write_stream(self, batch: KeyBatch) -> int:
        pipe = self.backend.client.pipeline(transaction=False)
        for key, entry in zip(batch.keys, batch.values):
            if key not in self.stream_messages:
                self.stream_messages[key] = seeded_entries(self.backend.client, key)
            message = _text(entry.get("messageId", ""))
            if message not in self.stream_messages[key]:
                pipe.xadd(key, entry)
                self.stream_messages[key].add(message)
        if batch.keys and batch.ttl_of(0):
            for key in set(batch.keys):
                pipe.expire(key, batch.ttl_of(0))
        try:
            pipe.execute()
        except redis.RedisError as exc:
            raise SeedFailed(f"Redis refused a seeded entry of {batch.family.name}: {exc}.") from None
        return len(batch)

    def finish(self) -> None:
        """Read every reply still owed."""
        for name, chunks in self.pending.items():
            while chunks:
                self._check(self.nodes[name], *chunks.pop(0))

    def close(self) -> None:
        for node in self.nodes.values():
            node.close()
        self.nodes.clear()


def _seeded_stream_entries(client, key: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(entry id, ``messageId``) of every seeded entry of stream ``key``, a page of XRANGE at a time."""
    start = b"-"
    while True:
        entries = client.xrange(key, min=start, max=b"+", count=PAGE)
        for entry_id, fields in entries:
            message = fields.get(b"messageId", b"")
            if is_seeded_value(message):
                yield entry_id, message
        if len(entries) < PAGE:
            return
        start = b"(" + entries[-1][0]


def seeded_entries(client, key: bytes) -> set[bytes]:
    """The ``messageId`` of every seeded entry of stream ``key``."""
    return {message for _, message in _seeded_stream_entries(client, key)}


def delete_seeded(backend: "RedisBackend", families: list["KeyFamily"],
                  advance: Callable[[int], None] = lambda n: None) -> dict[str, int]:
    """Delete seeded keys (and seeded stream entries) of each family (those a profile seeds); returns how
    many per family.

    The keys of every family with placeholders are found in one SCAN pass per master."""
    ours = list(families)
    deleted = {family.name: 0 for family in ours}
    for family in ours:
        if family.fixed_key is not None:
            deleted[family.name] = _delete_entries(backend.client, family.fixed_key)
    scanned = [family for family in ours if family.fixed_key is None]
    if scanned:
        for name, count in _delete_seeded_keys(backend, scanned).items():
            deleted[name] = count
    for family in ours:
        advance(deleted[family.name])
    return deleted


def _delete_seeded_keys(backend: "RedisBackend", families: list["KeyFamily"]) -> dict[str, int]:
    """UNLINK the keys of ``families`` that a seed wrote (a placeholder holds a seeded value):
    one SCAN of each master, its keys told apart by family (families never overlap)."""
    matcher = KeyMatcher(family.parsed for family in families)
    regexes = [family.parsed.regex() for family in families]
    counts = [0] * len(families)
    for _, client in backend.masters():
        cursor = 0
        while True:
            cursor, keys = client.scan(cursor, count=PAGE)
            groups, _ = matcher.group(keys)
            for index, members in groups.items():
                fullmatch = regexes[index].fullmatch
                seeded = [k for k in members if any(map(is_seeded_value, fullmatch(k).groupdict().values()))]
                if seeded:
                    counts[index] += unlink_keys(client, seeded)
            if cursor == 0:
                break
    return {family.name: count for family, count in zip(families, counts)}


def _delete_entries(client, key: bytes) -> int:
    """XDEL the seeded entries of stream ``key``, a page of them at a time; returns how many."""
    deleted, doomed = 0, []
    for entry_id, _ in _seeded_stream_entries(client, key):
        doomed.append(entry_id)
        if len(doomed) >= PAGE:
            deleted += client.xdel(key, *doomed)
            doomed = []
    if doomed:
        deleted += client.xdel(key, *doomed)
    return deleted
