"""Pipelined SCAN with per-key probes on one connection of the client's pool.

The keyspace audit keeps two steps in flight: the SCAN for the next batch
and the probes of the batch it has (``PTTL``, length commands, ``MEMORY
USAGE``), and checks the batch before while the server answers. The
connection is redis-py's (AUTH, SELECT, TLS, RESP2 or RESP3 as the client
says), used through its public API only: ``send_packed_command`` writes,
``read_response`` parses every reply (with hiredis, a dependency).
A pipeline is not atomic: the server serves other clients between the chunks
it reads, so the audit never holds it for more than one ``SCAN COUNT``.

The commands themselves are encoded here (:func:`bulk`, and the probes'
fixed headers in :mod:`.probes`): a key is encoded once and joined behind each
command's header, 1.8 us a key for two probes against 25 us with redis-py's
``pack_commands`` and 7.4 us with ``hiredis.pack_command`` (100,000 keys,
measured in one process on the shared development machine).
"""

from __future__ import annotations

from typing import Iterator, Sequence

import redis


def bulk(value: bytes) -> bytes:
    """One bulk string in RESP (``$len``, the bytes): an argument of a command."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def encode(*parts: bytes) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(parts) + b"".join(map(bulk, parts))


class RawNode:
    """One connection of a client's pool, written and read a pipeline at a time."""

    def __init__(self, client: redis.Redis, *, name: str = ""):
        self.client = client
        self.name = name
        self.pool = client.connection_pool
        self.connection = self._dropped(self.pool.get_connection)

    def close(self) -> None:
        # Replies may still be owed (the caller stopped early): the socket is not reused.
        self.connection.disconnect()
        self.pool.release(self.connection)

    def send(self, payload: bytes) -> None:
        if payload:
            self._dropped(self.connection.send_packed_command, [payload], check_health=False)

    def read(self, count: int) -> list:
        """The next ``count`` replies; an error reply is returned as its ``ResponseError``."""
        replies: list = []
        append, read = replies.append, self.connection.read_response
        while len(replies) < count:
            try:
                for _ in range(count - len(replies)):
                    append(read(disable_decoding=True))
            except redis.ResponseError as error:
                append(error)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                raise self._named(exc) from exc
        return replies

    def read_scan(self) -> tuple[bytes, list[bytes]]:
        """The next SCAN reply: (cursor, keys)."""
        cursor, keys = self._dropped(self.connection.read_response, disable_decoding=True)
        return cursor, keys

    def _dropped(self, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise self._named(exc) from exc

    def _named(self, exc: redis.RedisError) -> redis.RedisError:
        """redis-py's own error, naming this node (so callers report the server that was lost)."""
        return type(exc)(f"{self.name or 'the server'} dropped the connection ({exc})")


def scan_command(cursor: bytes, count: int) -> bytes:
    return encode(b"SCAN", cursor, b"COUNT", b"%d" % count)


def probed_batches(node: RawNode, count: int, plan) -> Iterator[tuple[Sequence[bytes], object, list]]:
    """SCAN batches with their probe replies; stop iterating at any time.

    ``plan(keys)`` returns ``(payload, expected_replies, context)``: the probes of a
    batch. Yields ``(keys, context, replies)``. Two steps stay in flight so that
    the server works while the caller plans a batch and checks the one before:
    writes go SCAN 1, probes 0, SCAN 2, probes 1, ... and replies are read in
    that order.
    """
    node.send(scan_command(b"0", count))
    cursor, keys = node.read_scan()
    previous = None
    while True:
        if cursor != b"0":
            node.send(scan_command(cursor, count))
        payload, replies, context = plan(keys)
        node.send(payload)
        if previous is not None:
            yield previous[0], previous[1], node.read(previous[2])
        if cursor == b"0":
            yield keys, context, node.read(replies)
            return
        previous = (keys, context, replies)
        cursor, keys = node.read_scan()
