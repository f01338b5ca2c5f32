"""The keyspace audit: every key classified to its family and checked.

SCAN (never KEYS) on every master, with each batch's probes pipelined in one
write (see :mod:`.scan`): for every inspected key of a declared family its
``PTTL`` and its type's length command (``STRLEN``, ``HLEN``, ``LLEN``,
``SCARD``, ``ZCARD``, ``XLEN``), which answers ``WRONGTYPE`` for a key of another
type, so it stands for ``TYPE`` and gives the size for the declared limit
(:mod:`.probes`); ``MEMORY USAGE`` on a sample. Keys that match no family are only counted,
grouped by prefix with examples. Consumer groups of stream families are
checked with ``XINFO GROUPS`` once the scan is done (streams are few).
"""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import redis

from .state import as_text
from .live import stream_groups
from .patterns import KeyMatcher, key_prefix, prefix_head, printable_key
from .probes import MEMORY_HEADER, FamilyProbe, FamilyStats, Tally, ask, bulks
from .scan import RawNode, probed_batches
from .state import KeyFamily



@dataclass(frozen=True)
class AuditOptions:
    count: int = 300                 # SCAN COUNT: keys the server looks at per step (~0.3 ms)
    max_keys: int | None = None      # stop after this many keys (sampling a huge keyspace)
    fraction: float = 1.0            # inspect this fraction of the keys scanned
    rate: float | None = None        # at most this many keys per second
    memory_every: int = 100          # MEMORY USAGE on every Nth inspected key; 0: never
    examples: int = 5


@dataclass
class AuditReport:
    families: dict[str, FamilyStats]
    unknown: dict[str, Tally] = field(default_factory=dict)
    scanned: int = 0
    nodes: int = 0
    elapsed: float = 0.0
    complete: bool = True

    @property
    def inspected(self) -> int:
        return sum(stats.inspected for stats in self.families.values())

    @property
    def keys_per_second(self) -> float:
        return self.scanned / self.elapsed if self.elapsed > 0 else 0.0


class KeyspaceAudit:
    """One audit run: classify, probe and check every key on every node."""

    def __init__(self, families: Sequence[KeyFamily], options: AuditOptions = AuditOptions()):
        self.options = options
        self.probes = [FamilyProbe.of(f) for f in families]
        self.matcher = KeyMatcher([f.parsed for f in families])
        self.report = AuditReport({f.name: FamilyStats(f) for f in families})
        self._stats = [self.report.families[f.name] for f in families]
        self._every = max(1, round(1 / options.fraction)) if options.fraction > 0 else 1
        self._seen = [0] * len(families)
        self._memory_seen = [0] * len(families)
        self._streams: list[tuple[redis.Redis, bytes, FamilyStats]] = []
        self.sleep = time.sleep

    def run(self, clients: Sequence[tuple[str, redis.Redis]]) -> AuditReport:
        started = time.perf_counter()
        nodes = [RawNode(client, name=name) for name, client in clients]
        try:
            for node, batch in _round_robin(nodes, self.options.count, self.plan):
                self.check(node, *batch)
                if self._limit_reached():
                    self.report.complete = False
                    break
                self._pace(started)
        finally:
            for node in nodes:
                node.close()
        self._check_groups()
        self.report.nodes = len(nodes)
        self.report.elapsed = time.perf_counter() - started
        return self.report

    def plan(self, keys: list[bytes]) -> tuple[bytes, int, tuple]:
        """The probes of one batch: (payload, reply lines expected, context for ``check``)."""
        groups, unknown = self.matcher.group(keys)
        inspected = {index: self._sample(index, members) for index, members in groups.items()}
        sampled = [(key, index) for index, members in inspected.items()
                   for key in self._memory_sample(index, members)]
        parts, lines = [], 0
        for index, family_keys in inspected.items():
            if family_keys:
                headers = self.probes[index].headers
                parts.append(ask(headers, bulks(family_keys)))
                lines += len(headers) * len(family_keys)
        if sampled:
            parts.append(ask([MEMORY_HEADER], bulks([key for key, _ in sampled])))
            lines += len(sampled)
        return b"".join(parts), lines, (groups, unknown, inspected, sampled)

    def _sample(self, index: int, members: list[bytes]) -> list[bytes]:
        """Every ``1/fraction``-th key of the family (all by default), counted across batches."""
        seen = self._seen[index]
        self._seen[index] = seen + len(members)
        return members if self._every == 1 else members[(-seen) % self._every::self._every]

    def _memory_sample(self, index: int, inspected: list[bytes]) -> list[bytes]:
        """Every ``memory_every``-th inspected key of the family, for MEMORY USAGE."""
        every = self.options.memory_every
        if not every:
            return []
        done = self._memory_seen[index]
        self._memory_seen[index] = done + len(inspected)
        return inspected[(-done - 1) % every::every]

    def check(self, node: RawNode, keys: Sequence[bytes], context: tuple, replies: list) -> None:
        """Count the batch's keys per family and check the inspected ones against their replies."""
        groups, unknown, inspected, sampled = context
        self.report.scanned += len(keys)
        for index, members in groups.items():
            self._stats[index].keys += len(members)
        self._unknown(unknown)
        position, limit = 0, self.options.examples
        for index, family_keys in inspected.items():
            probe, stats = self.probes[index], self._stats[index]
            width = len(probe.headers) * len(family_keys)
            block = replies[position:position + width]
            typed = probe.check(stats, family_keys, block, limit, _type_asker(node)) if width else []
            if probe.family.groups:
                self._streams.extend((node.client, key, stats) for key in typed)
            position += width
        for (key, index), reply in zip(sampled, replies[position:]):
            self.probes[index].record_memory(self._stats[index], key, reply, limit)

    def _unknown(self, keys: list[bytes]) -> None:
        """Unknown keys, counted by prefix; examples only while a prefix has room for them."""
        limit = self.options.examples
        for head, count in Counter(map(prefix_head, keys)).items():
            tally = self.report.unknown.setdefault(key_prefix(head), Tally())
            if len(tally.examples) < limit:
                for key in [k for k in keys if prefix_head(k) == head][:limit - len(tally.examples)]:
                    tally.examples.append(printable_key(key))
            tally.count += count

    def _limit_reached(self) -> bool:
        return self.options.max_keys is not None and self.report.scanned >= self.options.max_keys

    def _pace(self, started: float) -> None:
        """Sleep between batches so that no more than ``rate`` keys per second are read."""
        if self.options.rate:
            ahead = self.report.scanned / self.options.rate - (time.perf_counter() - started)
            if ahead > 0:
                self.sleep(ahead)

    def _check_groups(self) -> None:
        for client, key, stats in self._streams:
            present = stream_groups(client, key)
            if present is None:
                continue  # the key vanished or changed type since it was probed
            for group in stats.family.groups:
                if group not in present:
                    stats.tally("missing_group").add(key, self.options.examples, f"no consumer group {group}")


def _type_asker(node: RawNode):
    """TYPE of one key, asked on the node's ordinary client (for wrong-type examples only)."""
    return lambda key: as_text(node.client.type(key))


def _round_robin(nodes: list[RawNode], count: int, plan) -> Iterator[tuple[RawNode, tuple]]:
    """Batches from every node in turn, so that a sample covers every master."""
    streams = [((node, batch) for batch in probed_batches(node, count, plan)) for node in nodes]
    for group in itertools.zip_longest(*streams):
        for item in group:
            if item is not None:
                yield item
