"""The pipelined scanner on a real server, through redis-py's public connection API only."""

from __future__ import annotations

import pytest
import redis

from sovren_db.redis.scan import RawNode, encode, probed_batches

pytestmark = pytest.mark.redis
ODD_KEYS = [b"a\r\nb", b"", b"\r\n", b"$3\r\nabc", b"*2\r\n:1", b"z"]   # keys that hold the protocol's own bytes


@pytest.mark.parametrize("protocol", [2, 3])
def test_every_key_comes_back_whole_with_its_probe_replies(redis_url, client, protocol):
    client.flushdb()
    for key in ODD_KEYS:
        client.set(key, b"v", ex=500)
    client.set(b"plain", b"long value")
    node = RawNode(redis.Redis.from_url(redis_url, protocol=protocol), name="local")
    seen = {}
    try:
        for keys, context, replies in probed_batches(node, 2, lambda keys: (
                b"".join(encode(b"STRLEN", k) for k in keys), len(keys), list(keys))):
            assert context == list(keys)
            seen.update(zip(keys, replies))
    finally:
        node.close()
    assert seen == {**{key: 1 for key in ODD_KEYS}, b"plain": 10}


def test_an_error_reply_is_returned_in_its_place_and_the_next_replies_still_arrive(client):
    client.flushdb()
    client.set("k", "v")
    node = RawNode(client, name="local")
    try:
        node.send(encode(b"HLEN", b"k") + encode(b"STRLEN", b"k") + encode(b"NOSUCHCOMMAND") + encode(b"PTTL", b"k"))
        wrong, length, unknown, ttl = node.read(4)
    finally:
        node.close()
    assert isinstance(wrong, redis.ResponseError) and "WRONGTYPE" in str(wrong)
    assert isinstance(unknown, redis.ResponseError) and (length, ttl) == (1, -1)


def test_closing_a_node_mid_scan_leaves_the_client_usable(client):
    client.flushdb()
    client.mset({f"k{i}": i for i in range(50)})
    node = RawNode(client)
    batches = probed_batches(node, 5, lambda keys: (b"".join(encode(b"PTTL", k) for k in keys), len(keys), None))
    next(batches)  # replies still owed on the node's connection
    node.close()
    assert client.dbsize() == 50 and client.get("k1") == b"1"


@pytest.mark.parametrize("parts", [(b"TYPE", b"k"), (b"SET", *ODD_KEYS[:3]), (b"PING",)])
def test_encode_is_what_redis_py_packs(parts):
    assert encode(*parts) == b"".join(redis.Connection().pack_command(*parts))
