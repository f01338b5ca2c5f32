"""The move's SCAN step on a real Redis: keys already moved never reach the client again."""

from __future__ import annotations

import random

import pytest
import redis

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


RENAMES = [("sess:{id}", "s%1:{id}"), ("a.b%c:{x}:y", "%%{x}.z"),
           ("{{{tenant}}}:out:{id}", "{{{tenant}}}:o%d:{id}:new"), ("k[1]*?:{a}-{b}$^", "{b}^$:{a}%2"),
           ("caf\u00e9:{id}", "(x)+:{id}")]


@pytest.mark.parametrize("old, new", RENAMES)
def test_the_server_renders_each_new_key_as_the_client_would(backend, client, old, new):
    """Each key moves to the name the pattern renders (placeholders reordered, '%' and Lua's magic
    characters literal); a key SCAN's glob matches but the pattern does not stays where it is."""
    move, sample = moves.Move(parse_pattern(old), parse_pattern(new)), random.Random(old)
    names = move.old.placeholders
    keys = {move.old.render({n: sample.choice(["7", "ab", "a.b", "%1", "x-y"]) + str(i) for n in names})
            for i in range(200)}
    strays = {move.old.render({n: "a:b" for n in names}), move.old.render({n: "z" for n in names}) + b":x"}
    for key in keys | strays:
        client.set(key, key)
    count = moves.move_keys(backend, move, moves.Pace(batch=20))
    assert count.moved == len(keys) and all(client.get(key) == key for key in strays)
    regex = move.old.regex()
    assert {key: client.get(move.new.render(regex.fullmatch(key).groupdict())) for key in keys} == {k: k for k in keys}
    assert not any(client.exists(key) for key in keys)


def test_a_server_refusing_writes_stops_the_move_with_its_error_and_loses_nothing(backend, client):
    seed(client, 300)
    client.replicaof("127.0.0.1", 1)  # a read-only replica of a master that never answers
    try:
        with pytest.raises(redis.ReadOnlyError):
            moves.move_keys(backend, UNDER_OLD_GLOB, moves.Pace(batch=50))
    finally:
        client.replicaof("no", "one")
    assert sorted(client.scan_iter("sess:*", count=1000)) == sorted(f"sess:{i}".encode() for i in range(300))
    assert moves.move_keys(backend, UNDER_OLD_GLOB, moves.Pace(batch=50)).moved == 300
