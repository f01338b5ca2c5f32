"""Redis key families inferred from a sampled SCAN, written as ``redis/*.toml`` declarations.

The scan is the keyspace audit's (:mod:`sovren_db.redis.scan`: raw pipelined
SCAN on every master, two steps in flight, the same ``--rate`` pacing); for
every ``1/fraction``-th key it asks ``TYPE`` and ``PTTL`` and, for one in
ten of those, ``MEMORY USAGE``. Key counts are estimated from the sample.
Streams' consumer groups (``XINFO GROUPS`` on a few keys), channels
(``PUBSUB CHANNELS``) and the server settings the declarations compare are
read once at the end.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import redis

from ..redis.backend import as_text
from ..redis.live import stream_groups
from ..redis.patterns import KeyMatcher
from ..redis.probes import MEMORY_HEADER, ask, bulks, header
from ..redis.scan import RawNode, probed_batches
from ..redis.state import FRAMEWORK_FAMILIES, format_duration
from .redis_templates import Template, family_name, hash_tag, merge_wide_positions, pattern_of, template

PROBES = (header(b"TYPE"), header(b"PTTL"))
SERVER_SETTINGS = ("maxmemory-policy", "notify-keyspace-events")
_NICE_TTLS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400, 30 * 86400, 365 * 86400)


@dataclass
class Observed:
    sampled: int = 0
    types: Counter = field(default_factory=Counter)
    ttls: list[int] = field(default_factory=list)         # remaining TTL in ms; -1: none
    memory: list[int] = field(default_factory=list)
    examples: list[bytes] = field(default_factory=list)


@dataclass
class Inference:
    templates: dict[Template, Observed] = field(default_factory=dict)
    scanned: int = 0
    sampled: int = 0
    elapsed: float = 0.0
    every: int = 1
    channels: list[str] = field(default_factory=list)
    server: dict[str, str] = field(default_factory=dict)
    groups: dict[Template, tuple[str, ...]] = field(default_factory=dict)


class KeyspaceInference:
    def __init__(self, fraction: float = 1.0, rate: float | None = None, count: int = 1000):
        self.every = max(1, round(1 / fraction))
        self.rate, self.count = rate, count
        self.result = Inference(every=self.every)
        self._framework = KeyMatcher([f.parsed for f in FRAMEWORK_FAMILIES])
        self._position = 0
        self.sleep = time.sleep

    def run(self, clients: Sequence[tuple[str, redis.Redis]]) -> Inference:
        started = time.perf_counter()
        for name, client in clients:
            node = RawNode(client, name=name)
            try:
                for keys, sampled, replies in probed_batches(node, self.count, self.plan):
                    self.record(keys, sampled, replies)
                    self._pace(started)
            finally:
                node.close()
        self.result.elapsed = time.perf_counter() - started
        self._read_groups(clients)
        self._read_server(clients)
        return self.result

    def plan(self, keys: list[bytes]) -> tuple[bytes, int, list[bytes]]:
        """Every ``every``-th key (counted across batches) gets TYPE and PTTL; one in ten MEMORY USAGE."""
        start = (-self._position) % self.every
        self._position += len(keys)
        sampled = [k for k in keys[start::self.every] if self._framework.match(k) is None]
        if not sampled:
            return b"", 0, sampled
        encoded = bulks(sampled)
        payload = ask(PROBES, encoded) + ask([MEMORY_HEADER], encoded[::10])
        return payload, 2 * len(sampled) + len(encoded[::10]), sampled

    def record(self, keys: Sequence[bytes], sampled: list[bytes], replies: list) -> None:
        self.result.scanned += len(keys)
        self.result.sampled += len(sampled)
        n = len(sampled)
        memory = dict(zip(sampled[::10], replies[2 * n:]))
        for key, kind, ttl in zip(sampled, replies[:n], replies[n:2 * n]):
            if kind == b"none":
                continue  # expired or deleted between SCAN and TYPE
            seen = self.result.templates.setdefault(template(key), Observed())
            seen.sampled += 1
            seen.types[kind.decode()] += 1
            seen.ttls.append(ttl)
            if isinstance(memory.get(key), int):
                seen.memory.append(memory[key])
            if len(seen.examples) < 3:
                seen.examples.append(key)

    def _pace(self, started: float) -> None:
        if self.rate:
            ahead = self.result.scanned / self.rate - (time.perf_counter() - started)
            if ahead > 0:
                self.sleep(ahead)

    def _read_groups(self, clients) -> None:
        client = clients[0][1]
        for parts, seen in self.result.templates.items():
            if seen.types.most_common(1)[0][0] == "stream":
                found = [stream_groups(client, key) or set() for key in seen.examples]
                self.result.groups[parts] = tuple(sorted(set.intersection(*found))) if found else ()

    def _read_server(self, clients) -> None:
        channels: set[str] = set()
        for _, client in clients:
            channels |= {as_text(c) for c in client.pubsub_channels()}
        self.result.channels = sorted(channels)
        config = clients[0][1].config_get("*")
        self.result.server = {name: as_text(config[name]) for name in SERVER_SETTINGS if name in config}


# -- declarations -------------------------------------------------------------------

def render_toml(result: Inference) -> str:
    joined = merge_wide_positions({t: o.sampled for t, o in result.templates.items()})
    families: dict[Template, Observed] = {}
    for parts, seen in result.templates.items():
        into = families.setdefault(joined[parts], Observed())
        into.sampled += seen.sampled
        into.types.update(seen.types)
        into.ttls += seen.ttls
        into.memory += seen.memory
        into.examples += seen.examples[:3 - len(into.examples)]
    lines = [f"# Inferred by 'sovren-db inspect' from {result.sampled} of {result.scanned} keys "
             f"(1 in {result.every}); review names, owners and TTL bounds.", ""]
    taken: set[str] = set()
    for parts, seen in sorted(families.items(), key=lambda item: pattern_of(item[0])):
        lines += _family(parts, seen, result, family_name(parts, taken))
    taken = set()
    for parts in sorted({merge_wide_positions({template(c.encode()): 1})[template(c.encode())]
                         for c in result.channels}):
        lines += [f"[channels.{family_name(parts, taken)}]", f"pattern = {_string(pattern_of(parts))}",
                  'description = "Seen in PUBSUB CHANNELS when inspected."', ""]
    if result.server:
        lines += ["[server]", *[f"{k} = {_string(v)}" for k, v in sorted(result.server.items())], ""]
    return "\n".join(lines)


def _family(parts: Template, seen: Observed, result: Inference, name: str) -> list[str]:
    pattern = pattern_of(parts)
    kind, count = seen.types.most_common(1)[0]
    estimate = seen.sampled * result.every
    described = [f"about {estimate} keys ({seen.sampled} sampled)", _ttl_spread(seen.ttls)]
    if seen.memory:
        described.append(f"memory {min(seen.memory)}..{max(seen.memory)} B")
    others = {t: n for t, n in seen.types.items() if t != kind}
    if others:
        described.append("also of type " + ", ".join(f"{t} ({n})" for t, n in sorted(others.items())))
    out = [f"[families.{name}]", f"pattern = {_string(pattern)}", f'type = "{kind}"', f"ttl = {_ttl(seen.ttls)}"]
    tag = hash_tag(pattern)
    if tag:
        out.append(f"hash_tag = {_string(tag)}")
    groups = result.groups.get(parts)
    if groups:
        out.append(f"groups = {json.dumps(list(groups))}")
    out += [f"description = {_string('Inferred: ' + '; '.join(described) + '.')}", ""]
    return out


def _ttl(ttls: list[int]) -> str:
    if all(t < 0 for t in ttls):
        return '"none"'
    if any(t < 0 for t in ttls):
        return '"optional"'
    longest = max(ttls) / 1000
    bound = next((n for n in _NICE_TTLS if n >= longest), int(longest) + 1)
    return f'{{ policy = "required", max = "{format_duration(bound)}" }}'


def _ttl_spread(ttls: list[int]) -> str:
    live = sorted(t // 1000 for t in ttls if t >= 0)
    if not live:
        return "no TTL"
    spread = f"TTL {format_duration(max(live[0], 1))}..{format_duration(max(live[-1], 1))} remaining"
    return spread + (f", {len(ttls) - len(live)} without" if len(live) < len(ttls) else "")


def _string(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's)."""
    return json.dumps(text, ensure_ascii=True)
