"""Redis keys from a declared key family, for families Sovren's generators do not know.

A profile names the family with its parent Postgres table
(``[redis] carts = { per = "accounts", share = 0.4 }``); each key belongs to
one parent row of the block. A placeholder named after a key or foreign key
column of the parent chain (``{user_id}``, ``{accountId}``) holds that row's
value, so a key exists only for a seeded row; any other placeholder gets a
seeded token (``5eed`` and hex, what ``--reset`` recognises). The value has
the family's type (a string within ``max_bytes``, a hash, set, list or sorted
set within ``max_elements``, stream entries with a seeded ``messageId``), and
the TTL its rule asks for (:func:`.redis_keys.seed_ttl`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import vocab
from .documents import key_columns, owners_of
from .draws import SEEDED_PREFIX
from .redis_keys import KeyBatch, seed_ttl

if TYPE_CHECKING:
    from ..redis.state import KeyFamily
    from .entities import Block
    from .profiles import TableProfile

ELEMENTS = 3


def family_keys(name: str, family: "KeyFamily", spec: "TableProfile", block: "Block") -> KeyBatch:
    draws, prefix = block.draws, f"redis.{name}"
    parents, owners = owners_of(block, spec, prefix)
    columns = key_columns(parents, family.parsed.placeholders)
    tokens = {p: [SEEDED_PREFIX + h for h in draws.hexes(f"{prefix}.{p}", len(owners), 60)]
              for p in family.parsed.placeholders if p not in columns}
    keys = []
    for i, owner in enumerate(owners):
        values = {p: str(block.rows(t).values(c)[rows[owner]]) for p, (t, c, rows) in columns.items()}
        values.update({p: found[i] for p, found in tokens.items()})
        keys.append(family.parsed.render(values))
    return KeyBatch(family, family.type, keys, _values(family, draws, prefix, len(owners)), seed_ttl(family))


def _values(family: "KeyFamily", draws, prefix: str, count: int) -> list:
    words = draws.pick(prefix + ".words", count * ELEMENTS, vocab.WORDS)
    sizes = [1 + x for x in draws.below(prefix + ".size", count, min(ELEMENTS, family.max_elements or ELEMENTS))]
    groups = [words[ELEMENTS * i:ELEMENTS * i + k] for i, k in enumerate(sizes)]
    kind = family.type
    if kind == "string":
        limit = family.max_bytes or 64
        return [" ".join(group).encode()[:limit] for group in groups]
    if kind == "hash":
        return [{f"f{j}": w for j, w in enumerate(group)} for group in groups]
    if kind == "set":
        return [sorted(set(group)) for group in groups]
    if kind == "zset":
        return [[(w, j) for j, w in enumerate(dict.fromkeys(group))] for group in groups]
    if kind == "stream":
        ids = draws.uuids(prefix + ".messageId", count)
        return [{"messageId": m, "body": " ".join(group)} for m, group in zip(ids, groups)]
    return groups
