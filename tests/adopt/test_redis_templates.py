"""Key names to family patterns, and the TOML written from an inference (pure)."""

from __future__ import annotations

import tomllib
from collections import Counter

import pytest

from sovren_db.adopt.redis_infer import Inference, Observed, render_toml
from sovren_db.adopt.redis_templates import hash_tag, pattern_of, template
from sovren_db.redis.declared import load_declarations


@pytest.mark.parametrize("key, pattern", [
    (b"session:5eed0000-0000-8000-8000-000000000001", "session:{uuid}"),
    (b"celery-task-meta-5eed0000-0000-8000-8000-000000000001", "celery-task-meta-{uuid}"),
    (b"rl:user:123:20260101", "rl:user:{n}:{date}"),
    (b"stats:2026-12-05:7", "stats:{date}:{n}"),
    (b"cache:abcdef0123456789", "cache:{hex}"),
    (b"order:12:item:13", "order:{n}:item:{n_2}"),
    (b"{comms}:outbox", "{{comms}}:outbox"),
    (b"celery\x06\x163", "celery\x06\x16{n}"),
    (b"v2:config", "v2:config"),   # short mixed tokens are names, not ids
])
def test_variable_segments_become_placeholders(key, pattern):
    assert pattern_of(template(key)) == pattern


def test_hash_tags_are_kept_only_when_fixed():
    assert hash_tag("{{comms}}:outbox") == "comms"
    assert hash_tag("session:{uuid}") is None


def _observed(kind: str, ttls: list[int], n: int = 3) -> Observed:
    return Observed(sampled=n, types=Counter({kind: n}), ttls=ttls, memory=[100, 300], examples=[b"x"])


def test_rendered_families_load_as_declarations(tmp_path):
    result = Inference(every=10, scanned=400, sampled=40, server={"maxmemory-policy": "volatile-lru"},
                       channels=["live:user:1", "live:user:2", "broadcast"])
    result.templates = {template(b"session:1"): _observed("string", [90_000, 3_000_000], 6)}
    result.templates[template(b"{comms}:outbox")] = _observed("stream", [-1])
    result.templates[template(b"cache:eu:1")] = _observed("hash", [-1, 5_000])
    result.groups = {template(b"{comms}:outbox"): ("dispatchers",)}
    for region in range(12):   # twelve literal values in one position: one family
        result.templates[template(b"geo:region%c:stats" % (65 + region))] = _observed("zset", [-1], 1)
    text = render_toml(result)
    (tmp_path / "inspected.toml").write_text(text)
    declared = load_declarations(tmp_path)
    by_pattern = {f.pattern: f for f in declared.families.values()}
    session = by_pattern["session:{n}"]
    assert (session.type, session.ttl.policy, session.ttl.max) == ("string", "required", 3600)
    assert "about 60 keys (6 sampled)" in session.description and "memory 100..300 B" in session.description
    outbox = by_pattern["{{comms}}:outbox"]
    assert outbox.hash_tag == "comms" and outbox.groups == ("dispatchers",) and outbox.ttl.policy == "none"
    assert by_pattern["cache:eu:{n}"].ttl.policy == "optional"
    assert "geo:{segment}:stats" in by_pattern
    assert {c.pattern for c in declared.channels.values()} == {"live:user:{n}", "broadcast"}
    assert tomllib.loads(text)["server"] == {"maxmemory-policy": "volatile-lru"}
