"""The move's SCAN step on a real Redis: keys already moved never reach the client again."""

from __future__ import annotations

import random

import pytest

from sovren_db.redis import moves
from sovren_db.redis.patterns import parse_pattern

pytestmark = pytest.mark.redis

UNDER_OLD_GLOB = moves.Move(parse_pattern("sess:{user_id}"), parse_pattern("sess:v2:{user_id}"))
COUNT = 3000


def seed(client, count: int) -> None:
    for start in range(0, count, 1000):
        pipe = client.pipeline(transaction=False)
        for i in range(start, min(start + 1000, count)):
            pipe.set(f"sess:{i}", f"v0-{i}")
        pipe.execute()


def moved_handling_only_old_keys(backend, client) -> None:
    seed(client, COUNT)
    count = moves.move_keys(backend, UNDER_OLD_GLOB, moves.Pace(batch=50))
    assert count.moved == COUNT
    assert count.scanned == COUNT  # not the new keys SCAN's glob sess:* also matches, pass after pass
    assert sorted(client.scan_iter("sess:v2:*", count=1000)) == sorted(f"sess:v2:{i}".encode() for i in range(COUNT))
    assert [k for k in client.scan_iter("sess:*", count=1000) if not k.startswith(b"sess:v2:")] == []


def test_the_client_handles_only_the_keys_to_move(backend, client):
    moved_handling_only_old_keys(backend, client)


def test_the_client_handles_only_the_keys_to_move_on_a_cluster(cluster_backend, cluster_client):
    moved_handling_only_old_keys(cluster_backend, cluster_client)


TEXTS = ["sess:{id}", "a.b%c:{x}:y", "{{{tenant}}}:out:{id}", "k[1]*?:{a}-{b}$^", "caf\u00e9:{id}", "(x)+:{id}"]
ALPHABET = ["a", "1", ":", "{", "}", ".", "%", "-", "*", "[", "]", "$", "^", "(", ")", "+", "\u00e9", "v2", "x"]


@pytest.mark.parametrize("text", TEXTS)
def test_the_server_side_filter_keeps_exactly_the_keys_the_regex_keeps(client, text):
    pattern = parse_pattern(text)
    sample = random.Random(text)
    keys = {pattern.render({n: sample.choice(["7", "ab", "a.b"]) for n in pattern.placeholders}) for _ in range(20)}
    keys |= {"".join(sample.choice(ALPHABET) for _ in range(sample.randint(1, 12))).encode() for _ in range(300)}
    keys |= {key + b":x" for key in list(keys)[:50]} | {b"\xff" + key for key in list(keys)[:20]}
    only = moves.lua_pattern(pattern)
    kept = client.eval("local out = {} for _, key in ipairs(ARGV) do if string.find(key, ARGV[1]) "
                       "then out[#out + 1] = key end end return out", 0, only, *keys)
    expected = {key for key in keys if pattern.regex().fullmatch(key)}
    assert expected and set(kept) - {only} == expected
