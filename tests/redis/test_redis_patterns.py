"""Pure: the placeholder grammar, overlap decision, matching, globs, hash tags."""

from __future__ import annotations

import fnmatch

import pytest

from sovren_db.redis.patterns import KeyMatcher, PatternError, key_prefix, overlap_witness, parse_pattern


@pytest.mark.parametrize("text, problem", [
    ("", "empty"),
    ("session:{", "malformed placeholder"),
    ("session:{user id}", "malformed placeholder"),
    ("session:{1x}", "malformed placeholder"),
    ("a}b", "unmatched '}'"),
    ("{a}{b}", "follows another placeholder"),
    ("{a}:{a}", "appears twice"),
])
def test_malformed_patterns_say_why(text, problem):
    with pytest.raises(PatternError, match=problem):
        parse_pattern(text)


def test_literal_braces_and_hash_tags():
    tagged = parse_pattern("{{{tenant}}}:outbox")
    assert tagged.placeholders == ("tenant",)
    assert tagged.hash_tag() == "{tenant}"
    assert tagged.render({"tenant": "acme"}) == b"{acme}:outbox"
    assert tagged.regex().fullmatch(b"{acme}:outbox")["tenant"] == b"acme"
    assert parse_pattern("{{comms}}:dead").hash_tag() == "comms"
    assert parse_pattern("session:{user_id}").hash_tag() is None
    assert parse_pattern("x{{}}y").hash_tag() is None  # empty braces: Redis hashes the whole key


@pytest.mark.parametrize("first, second, overlap", [
    ("session:{u}", "session:{v}", True),
    ("session:{u}", "session:index:{u}", False),   # a placeholder never spans ':'
    ("a{x}", "ab{y}", True),
    ("{t}:x", "session:{a}", True),
    ("{t}:a:b", "session:{a}", False),
    ("celery", "celery-task-meta-{id}", False),
    ("x{a}y", "x{b}y{c}", True),
    ("{{{t}}}:q", "{t}:q", False),                 # placeholders never hold braces
    ("cache:{h}", "cache:", False),               # a placeholder is never empty
])
def test_overlap_is_decided_with_a_witness(first, second, overlap):
    a, b = parse_pattern(first), parse_pattern(second)
    witness = overlap_witness(a, b)
    assert (witness is not None) is overlap
    if witness is not None:
        key = witness.encode()
        assert a.regex().fullmatch(key) and b.regex().fullmatch(key)
    assert (overlap_witness(b, a) is not None) is overlap


def test_matcher_dispatches_each_key_to_its_one_family():
    patterns = ["session:{u}", "session:devices:{u}", "celery", "celery-task-meta-{id}",
                "{{sovren-db}}:{name}", "{t}:a:b", "_kombu.binding.{q}"]
    matcher = KeyMatcher([parse_pattern(p) for p in patterns])
    assert matcher.match(b"session:1") == 0
    assert matcher.match(b"session:devices:1") == 1
    assert matcher.match(b"session:1:2") is None
    assert matcher.match(b"celery") == 2
    assert matcher.match(b"celery-task-meta-9f") == 3
    assert matcher.match(b"{sovren-db}:ledger") == 4
    assert matcher.match(b"session:a:b") == 5      # literal head group misses, the rest matches
    assert matcher.match(b"_kombu.binding.celery.pidbox") == 6
    assert matcher.match(b"nope") is None
    assert matcher.match(b"session:") is None


def test_glob_escapes_specials_and_fixes_given_values():
    pattern = parse_pattern("rate*[x]:{user}:{window}")
    glob = pattern.glob()
    assert glob == "rate\\*\\[x\\]:*:*"
    assert fnmatch.fnmatchcase("rate*[x]:u1:60", glob.replace("\\*", "[*]").replace("\\[", "[[]").replace("\\]", "]"))
    assert pattern.glob({"user": "u1"}) == "rate\\*\\[x\\]:u1:*"
    assert pattern.accepts("user", "u1") and not pattern.accepts("user", "a:b") and not pattern.accepts("nope", "x")


def test_unknown_keys_are_grouped_by_prefix():
    assert key_prefix(b"legacy:thing:1") == "legacy:*"
    assert key_prefix(b"tmp_123") == "tmp*"
    assert key_prefix(b"123") == "1*"
