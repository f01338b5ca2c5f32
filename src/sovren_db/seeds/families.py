"""Redis keys from a declared key family and the profile's fields (:mod:`.records`).

A profile names the family with its parent (``[redis.carts] per = "accounts",
share = 0.4``): a table, or a collection or family of the profile. Each key
belongs to one parent record of the block. A placeholder holds the nearest
ancestor's field of that name (``{user_id}`` the user's seeded id,
``{executive_id}`` the executive's ``executiveId``), so a key exists only for a
seeded row; any other placeholder gets a seeded token (``5eed`` and hex, what
``--reset`` recognises). The value has the family's type:

- with ``fields``: a hash of them, a stream entry of them (a seeded
  ``messageId`` added unless named), a string holding them as JSON;
- with ``value`` (a generator, :mod:`.columns`): the string, or a set, list or
  sorted set of one to three of them;
- else words within ``max_bytes`` or ``max_elements``;

and the TTL its rule asks for (:func:`.redis_keys.seed_ttl`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from . import vocab
from .records import RecordBlock, plain, text
from .redis_keys import KeyBatch, key_maker, seed_ttl

if TYPE_CHECKING:
    from ..redis.state import KeyFamily
    from .entities import Block

ELEMENTS = 3


def keys_of(name: str, block: "Block") -> KeyBatch:
    """The keys of family ``name`` in ``block``."""
    return family_keys(block.rows(name))


def family_keys(records: RecordBlock) -> KeyBatch:
    family: "KeyFamily" = records.family
    placeholders = family.parsed.placeholders
    columns = {p: records.values(p) for p in placeholders}
    if len(columns) == 1:
        make = key_maker(family)
        keys = [make(text(v)) for v in columns[placeholders[0]]]
    else:
        render = family.parsed.render
        keys = [render({p: text(values[i]) for p, values in columns.items()}) for i in range(records.size)]
    return KeyBatch(family, family.type, keys, _values(records), seed_ttl(family))


def _values(records: RecordBlock) -> list:
    family, spec = records.family, records.spec
    if spec.columns:
        return _fielded(records)
    if spec.value is not None:
        return _generated(records)
    return _words(family, records.draws, records.prefix, records.size)


def _fielded(records: RecordBlock) -> list:
    fields = [(f, records.values(f)) for f in records.spec.columns]
    rows = [dict(zip([f for f, _ in fields], row)) for row in zip(*(values for _, values in fields))] or [
        {} for _ in range(records.size)]
    kind = records.family.type
    if kind == "string":
        return [json.dumps({k: plain(v) for k, v in row.items()}, separators=(",", ":")).encode() for row in rows]
    entries = [{k: text(v) for k, v in row.items()} for row in rows]
    if kind == "stream" and "messageId" not in records.spec.columns:
        ids = records.draws.uuids(records.prefix + ".messageId", records.size)
        entries = [{"messageId": m, **entry} for m, entry in zip(ids, entries)]
    return entries


def _generated(records: RecordBlock) -> list:
    """The ``value`` generator's values: a string's, or one to three members of a collection type."""
    kind, spec = records.family.type, records.spec
    if kind == "string":
        limit = records.family.max_bytes
        return [text(v).encode()[:limit] for v in records._kind("value", spec.value, {})]
    pool = records._kind("value", spec.value, {}, ELEMENTS * records.size)
    sizes = [1 + x for x in records.draws.below(records.prefix + ".size", records.size,
                                                min(ELEMENTS, records.family.max_elements or ELEMENTS))]
    groups = [list(dict.fromkeys(text(v) for v in pool[ELEMENTS * i:ELEMENTS * i + k])) for i, k in enumerate(sizes)]
    if kind == "zset":
        return [[(member, j) for j, member in enumerate(group)] for group in groups]
    if kind == "hash":
        return [{f"f{j}": member for j, member in enumerate(group)} for group in groups]
    return [sorted(group) if kind == "set" else group for group in groups]


def _words(family: "KeyFamily", draws, prefix: str, count: int) -> list:
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
