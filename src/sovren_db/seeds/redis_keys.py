"""Sovren's Redis keys (sessions, caches, the communications queue), one block of users at a time.

A generator gives a :class:`KeyBatch` for one declared family: keys rendered
from the family's declared pattern, values of one Redis type, and the TTL the
family's rule asks for (its ``default``, else its bounds; none where the
family has no TTL). Placeholder values are seeded ids (see :mod:`.draws`), so
``--reset`` recognises seeded keys; the stream families get their entries'
``messageId`` seeded instead.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Callable

from ..redis.patterns import Placeholder
from ..redis.state import KeyFamily
from . import vocab
from .draws import SEEDED_PREFIX, SEEDED_UUID
from .entities import Block

DEFAULT_REQUIRED_TTL = 86400
SEEDED_HASH = re.compile(SEEDED_PREFIX + "[0-9a-f]{60}")


@dataclass
class KeyBatch:
    """Keys of one family; ``values[i]`` is bytes (string), dict (hash, or a stream entry),
    list (set, list) or list of (member, score) (zset)."""

    family: KeyFamily
    kind: str                       # the Redis type of the values
    keys: list[bytes]
    values: list
    ttl: int | None | list[int | None] = None

    def ttl_of(self, index: int) -> int | None:
        return self.ttl[index] if isinstance(self.ttl, list) else self.ttl

    def __len__(self) -> int:
        return len(self.keys)


def seed_ttl(family: KeyFamily) -> int | None:
    rule = family.ttl
    if rule.policy != "required":
        return None
    return rule.default or rule.min or rule.max or DEFAULT_REQUIRED_TTL


def key_maker(family: KeyFamily) -> Callable[[str], bytes]:
    """Render keys of a one-placeholder pattern fast (prefix + value + suffix)."""
    tokens = family.parsed.tokens
    if sum(isinstance(t, Placeholder) for t in tokens) != 1:
        name = family.parsed.placeholders[0] if family.parsed.placeholders else None
        return lambda value: family.parsed.render({name: value} if name else {})
    at = next(i for i, t in enumerate(tokens) if isinstance(t, Placeholder))
    prefix = "".join(tokens[:at]).encode("utf-8", "surrogateescape")
    suffix = "".join(tokens[at + 1:]).encode("utf-8", "surrogateescape")
    return lambda value: prefix + value.encode() + suffix


def is_seeded_value(value: bytes) -> bool:
    """A seeded uuid, a seeded token (``5eed`` and 60 hex digits) or a seeded integer key (0x5eed in its
    top 16 bits, see :mod:`.rows`)."""
    text = value.decode("ascii", "replace")
    if text.isdigit() and len(text) < 20:
        number = int(text)
        return any(0x5EED <= number >> shift < 0x8000 for shift in (16, 48))   # int4 and int8 keys
    return SEEDED_UUID.fullmatch(text) is not None or SEEDED_HASH.fullmatch(text) is not None


def _batch(family: KeyFamily, kind: str, ids: list[str], values: list) -> KeyBatch:
    make = key_maker(family)
    return KeyBatch(family, kind, [make(i) for i in ids], values, seed_ttl(family))


def _signed_in(block: Block) -> list[int]:
    chosen = block.draws.chance("redis.session.share", block.size, block.amount("session"))
    return [user for user, ok in enumerate(chosen) if ok]


def session(block: Block, family: KeyFamily) -> KeyBatch:
    users = _signed_in(block)
    tokens = block.draws.tokens("redis.session.token", len(users), 33)
    return _batch(family, "string", [block.users.id[u] for u in users], [("sess_" + t).encode() for t in tokens])


def session_devices(block: Block, family: KeyFamily) -> KeyBatch:
    d, signed_in = block.draws, _signed_in(block)
    with_devices = [u for u, ok in zip(signed_in, d.chance("redis.session_devices.share", len(signed_in),
                                                           block.amount("session_devices"))) if ok]
    n = len(with_devices)
    fingerprints = d.hexes("redis.session_devices.fingerprint", 3 * n, 16)
    kinds = d.pick("redis.session_devices.kind", 3 * n, vocab.DEVICE_KINDS)
    sizes = [1 + x for x in d.below("redis.session_devices.n", n, 3)]
    members = [[f"{kinds[3 * i + j]}:{fingerprints[3 * i + j]}" for j in range(k)] for i, k in enumerate(sizes)]
    return _batch(family, "set", [block.users.id[u] for u in with_devices], members)


def executive_cache(block: Block, family: KeyFamily) -> KeyBatch:
    execs = block.executives
    chosen = [i for i, ok in enumerate(block.draws.chance("redis.executive_cache.share", execs.size,
                                                          block.amount("executive_cache"))) if ok]
    values = [{"userId": block.users.id[execs.parent[i]], "role": execs.role[i], "name": execs.display_name[i],
               "skills": ",".join(execs.skills[i]), "voiceProfile": execs.voice[i],
               "active": "1" if execs.active[i] else "0"} for i in chosen]
    return _batch(family, "hash", [execs.id[i] for i in chosen], values)


def simulation_cache(block: Block, family: KeyFamily) -> KeyBatch:
    sims, ops = block.simulations, block.operations
    chosen = [i for i, ok in enumerate(block.draws.chance("redis.simulation_cache.share", sims.size,
                                                          block.amount("simulation_cache"))) if ok]
    values = [json.dumps({"simulationId": sims.id[i], "status": sims.status[i], "scenario": sims.scenario[i],
                          "recommendation": ops.recommendation[sims.parent[i]]}).encode() for i in chosen]
    return _batch(family, "string", [ops.id[sims.parent[i]] for i in chosen], values)


def analytics_cache(block: Block, family: KeyFamily) -> KeyBatch:
    d, ops = block.draws, block.operations
    counts = d.counts("redis.analytics_cache.n", block.size, block.amount("analytics_cache"))
    owners = [user for user, k in enumerate(counts) for _ in range(k)]
    hashes = [SEEDED_PREFIX + h for h in d.hexes("redis.analytics_cache.query_hash", len(owners), 60)]
    kinds = d.pick("redis.analytics_cache.kind", len(owners), vocab.ANALYTICS_KINDS)
    values = []
    for user, kind in zip(owners, kinds):
        rows = [{"operationId": ops.id[i], "kind": ops.kind[i]} for i in ops.of(user)][:10]
        values.append(json.dumps({"userId": block.users.id[user], "query": kind, "rows": rows}).encode())
    return _batch(family, "string", hashes, values)


def comms_outbox(block: Block, family: KeyFamily) -> KeyBatch:
    queued, users, iso = block.queued, block.users, block.plan.clock.iso
    entries = [{"messageId": queued.id[i], "userId": users.id[queued.parent[i]], "recipient": queued.recipient[i],
                "message": queued.text[i], "queuedAt": iso(queued.at[i])} for i in range(queued.size)]
    return KeyBatch(family, "stream", [family.parsed.render({})] * len(entries), entries, seed_ttl(family))


def comms_status(block: Block, family: KeyFamily) -> KeyBatch:
    queued, iso = block.queued, block.plan.clock.iso
    chosen = [i for i, ok in enumerate(block.draws.chance("redis.comms_status.share", queued.size,
                                                          block.amount("comms_status"))) if ok]
    values = [{"status": queued.status[i], "userId": block.users.id[queued.parent[i]],
               "updatedAt": iso(queued.at[i])} for i in chosen]
    return _batch(family, "hash", [queued.id[i] for i in chosen], values)


def comms_dead(block: Block, family: KeyFamily) -> KeyBatch:
    sent, users, iso = block.communications, block.users, block.plan.clock.iso
    failed = [i for i, s in enumerate(sent.status) if s == "failed"]
    shares = block.draws.chance("redis.comms_dead.share", len(failed), block.amount("comms_dead"))
    reasons = block.draws.pick("redis.comms_dead.reason", len(failed), vocab.DEAD_LETTER_REASONS)
    entries = [{"messageId": sent.id[i], "userId": users.id[sent.parent[i]], "recipient": sent.recipient[i],
                "reason": reason, "failedAt": iso(sent.at[i])}
               for i, ok, reason in zip(failed, shares, reasons) if ok]
    return KeyBatch(family, "stream", [family.parsed.render({})] * len(entries), entries, seed_ttl(family))


def keys_of(name: str, family: KeyFamily, block: Block) -> KeyBatch:
    """The keys of family ``name`` in ``block``: Sovren's generator for it, else from the family's
    declaration as the profile's ``[redis] name = { per = ..., share = ... }`` says (:mod:`.families`)."""
    if name in FAMILIES:
        return FAMILIES[name](block, family)
    from .families import family_keys

    return family_keys(name, family, block.plan.profile.families[name], block)


# Family -> keys of a block. The profile's [redis] entries switch them on.
FAMILIES: dict[str, Callable[[Block, KeyFamily], KeyBatch]] = {
    "session": session,
    "session_devices": session_devices,
    "executive_cache": executive_cache,
    "simulation_cache": simulation_cache,
    "analytics_cache": analytics_cache,
    "comms_outbox": comms_outbox,
    "comms_status": comms_status,
    "comms_dead": comms_dead,
}
