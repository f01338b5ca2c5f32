"""Raw, pipelined SCAN with per-key probes on one server connection.

The keyspace audit keeps two steps in flight: the SCAN for the next batch
and the probes of the batch it has (``PTTL``, length commands, ``MEMORY
USAGE``), and checks the batch before while the server answers. redis-py
opens the connection (AUTH, SELECT, TLS, RESP2); the replies are then read
straight from its socket: every probe reply is one line (``:-1``, ``$-1``,
``-WRONGTYPE ...``), so a whole batch of them is cut with one ``bytes.split``.
A pipeline is not atomic: the server serves other clients between the 16 KB
chunks it reads, so the audit never holds it for more than one ``SCAN COUNT``.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import redis

CRLF = b"\r\n"
_RECV = 1 << 18


def bulk(value: bytes) -> bytes:
    """One bulk string in RESP (``$len``, the bytes): an argument of a command."""
    return b"$%d\r\n%s\r\n" % (len(value), value)


def encode(*parts: bytes) -> bytes:
    """One command in RESP."""
    return b"*%d\r\n" % len(parts) + b"".join(map(bulk, parts))


class IncompleteReply(Exception):
    """More bytes are needed to parse a reply."""


class RawNode:
    """One connection to one server, read and written without redis-py's parser."""

    def __init__(self, client: redis.Redis, *, name: str = ""):
        self.client = client
        pool = client.connection_pool
        # RESP2 on this connection (RESP3 push notifications would interleave with replies)
        kwargs = {k: v for k, v in pool.connection_kwargs.items() if not k.startswith("maint_notifications")}
        self.connection = pool.connection_class(**{**kwargs, "protocol": 2})
        self.connection.connect()
        self.sock = self.connection._sock  # handshake done by redis-py; nothing pending
        self.name = name
        self.buffer = b""

    def close(self) -> None:
        self.connection.disconnect()

    def send(self, payload: bytes) -> None:
        try:
            self.sock.sendall(payload)
        except OSError as exc:  # the server died or dropped us: redis-py's error, so callers name Redis
            raise redis.ConnectionError(f"{self.name or 'the server'} dropped the connection ({exc.strerror or exc})"
                                        ) from exc

    def _receive(self) -> None:
        try:
            chunk = self.sock.recv(_RECV)
        except OSError as exc:
            raise redis.ConnectionError(f"{self.name or 'the server'} dropped the connection ({exc.strerror or exc})"
                                        ) from exc
        if not chunk:
            raise redis.ConnectionError(f"{self.name or 'the server'} closed the connection")
        self.buffer += chunk

    def read_lines(self, count: int) -> list[bytes]:
        """The next ``count`` one-line replies, without their type byte stripped."""
        if count == 0:
            return []
        # Probe replies come before anything else, so counting every CRLF is safe.
        while self.buffer.count(CRLF) < count:
            self._receive()
        lines = self.buffer.split(CRLF, count)
        self.buffer = lines.pop()
        return lines

    def read_scan(self) -> tuple[bytes, list[bytes]]:
        """The next SCAN reply: (cursor, keys)."""
        while True:
            try:
                cursor, keys, end = parse_scan_reply(self.buffer)
            except IncompleteReply:
                self._receive()
                continue
            self.buffer = self.buffer[end:]
            return cursor, keys


def _line(data: bytes, pos: int) -> tuple[bytes, int]:
    end = data.find(CRLF, pos)
    if end < 0:
        raise IncompleteReply
    return data[pos:end], end + 2


def parse_scan_reply(data: bytes) -> tuple[bytes, list[bytes], int]:
    """Parse ``*2 $cursor *n $key...``: (cursor, keys, bytes used); IncompleteReply if ``data`` is short."""
    header, pos = _line(data, 0)
    if header.startswith(b"-"):
        raise redis.ResponseError(header[1:].decode(errors="replace"))
    _, pos = _line(data, pos)
    cursor, pos = _line(data, pos)
    count_line, pos = _line(data, pos)
    count = int(count_line[1:])
    # Fast path: cut the 2n lines ($len, key) at once, then check every length.
    parts = data[pos:].split(CRLF, 2 * count)
    if len(parts) <= 2 * count:
        raise IncompleteReply
    keys = parts[1::2]
    if parts[0:-1:2] == [b"$%d" % len(key) for key in keys]:
        return cursor, keys, len(data) - len(parts[-1])
    return cursor, *_parse_bulks(data, pos, count)


def _parse_bulks(data: bytes, pos: int, count: int) -> tuple[list[bytes], int]:
    """The slow path, for keys that hold CRLF themselves."""
    keys = []
    for _ in range(count):
        length_line, pos = _line(data, pos)
        end = pos + int(length_line[1:])
        if end + 2 > len(data):
            raise IncompleteReply
        keys.append(data[pos:end])
        pos = end + 2
    return keys, pos


def scan_command(cursor: bytes, count: int) -> bytes:
    return encode(b"SCAN", cursor, b"COUNT", b"%d" % count)


def probed_batches(node: RawNode, count: int, plan) -> Iterator[tuple[Sequence[bytes], object, list[bytes]]]:
    """SCAN batches with their probe replies; stop iterating at any time.

    ``plan(keys)`` returns ``(payload, expected_lines, context)``: the probes of a
    batch. Yields ``(keys, context, lines)``. Two steps stay in flight so that
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
        payload, lines, context = plan(keys)
        node.send(payload)
        if previous is not None:
            yield previous[0], previous[1], node.read_lines(previous[2])
        if cursor == b"0":
            yield keys, context, node.read_lines(lines)
            return
        previous = (keys, context, lines)
        cursor, keys = node.read_scan()
