"""The hand-written generation of Sovren's users that the declarations replaced (issue 16), kept as a baseline.

``bench/seed.py`` times it against the generation from the declarations on the
same number of users: the new path must be no slower than 1.3 x this one. It
is the code of ``entities.Users``, ``user_tier`` and ``shadow_boards`` as they
were, reduced to the users table, with the same binary COPY encoders.
"""

from __future__ import annotations

import struct
from itertools import repeat

from sovren_db.seeds import vocab
from sovren_db.seeds.clock import DAY, Clock
from sovren_db.seeds.draws import Draws, offsets
from sovren_db.seeds.entities import between
from sovren_db.seeds.postgres_rows import BINARY_ENCODERS, password_hash

KINDS = ("uuid", "text", "label", "text", "timestamp", "label", "jsonb", "timestamp")


def legacy_users(seed: int, index: int, start: int, size: int, password: str, executives: float,
                 subscriptions: float = 0.0) -> list[list]:
    """The users columns of one block, exactly as the hand-written generator drew them."""
    d = Draws(seed, index)
    ids = d.uuids("users.id", size)
    first, last = d.pick("users.first", size, vocab.FIRST_NAMES), d.pick("users.last", size, vocab.LAST_NAMES)
    username = [f"{f}.{s}{start + i}" for i, (f, s) in enumerate(zip(first, last))]
    email = [f"{u}@{domain}" for u, domain in zip(username, d.pick("users.domain", size, vocab.DOMAINS))]
    created = [-(DAY + x) for x in d.below("users.created", size, 729 * DAY)]
    logged = d.chance("users.logged_in", size, 0.88)
    login = between(created, 0, d.unit("users.last_login", size))
    return [ids, username, [password_hash(password, seed)] * size, email, created,
            _tiers(d, size, subscriptions), _boards(d, size, executives),
            [t if ok else None for ok, t in zip(logged, login)]]


def _tiers(d: Draws, size: int, mean: float) -> list[str]:
    counts = d.counts("subscriptions.n", size, mean)
    total = sum(counts)
    tier = d.pick("subscriptions.tier", total, vocab.TIERS)
    status = d.pick("subscriptions.status", total, vocab.SUBSCRIPTION_STATUSES)
    return [tier[s + k - 1] if k and status[s + k - 1] != "cancelled" else "free"
            for s, k in zip(offsets(counts), counts)]


def _boards(d: Draws, size: int, mean: float) -> list[str]:
    counts = d.counts("executives.n", size, mean)
    ids, join = d.uuids("executives.id", sum(counts)), '", "'.join
    return [f'{{"executives": ["{join(ids[s:s + k])}"]}}' if k else '{"executives": []}'
            for s, k in zip(offsets(counts), counts)]


def legacy_binary(columns: list[list], clock: Clock) -> bytes:
    encoded = [BINARY_ENCODERS[kind](values, clock) for kind, values in zip(KINDS, columns)]
    header = struct.pack(">h", len(KINDS))
    return b"".join(map(b"".join, zip(repeat(header, len(columns[0])), *encoded)))
