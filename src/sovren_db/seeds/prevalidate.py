"""Every document and every key is checked before anything is written.

Documents go through the Mongo package's offline ``$jsonSchema`` validator
(:class:`sovren_db.mongo.validate.DocumentValidator`), as MongoDB would judge
them. Keys are matched to the declared families with the Redis package's
:class:`~sovren_db.redis.patterns.KeyMatcher` (a key must match its own
family and no other) and checked against that family's type, TTL rule and
size limits. The first offending record stops the seed: a generator bug is
reported as that record, with the reason, and nothing is written.

Validating a document costs far more than generating it, so big seeds check
each block's collections in parallel processes (:func:`check_blocks`); the
first offending record is still the first in seed order, with its index in
the whole seed.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import TYPE_CHECKING, Callable, Mapping

import bson
import bson.errors

from ..core.errors import SovrenError
from ..mongo.state import CollectionSpec
from ..mongo.validate import DocumentValidator, validator_schema
from ..redis.patterns import KeyMatcher
from ..redis.state import FRAMEWORK_FAMILIES, KeyFamily, format_duration
from .redis_keys import KeyBatch

if TYPE_CHECKING:
    from .plan import Plan

PARALLEL_FROM_DOCUMENTS = 30_000   # below this, starting worker processes costs more than it saves

VALUE_TYPES = {"string": (bytes,), "hash": (dict,), "set": (list, tuple), "list": (list, tuple),
               "zset": (list, tuple), "stream": (dict,)}


class SeedRejected(SovrenError):
    """Generated data that a store would refuse or that breaks its declaration."""

    def __init__(self, store: str, where: str, index: int, reason: str, name: str = ""):
        self.store, self.where, self.index, self.reason, self.name = store, where, index, reason, name
        reason = reason.rstrip(".")
        super().__init__(f"Seed data rejected before anything was written: {store} {where}, record {index}: {reason}.")


class SeedFailed(SovrenError):
    """A store refused seeded data while it was being written (Postgres keeps none of it)."""


class DocumentCheck:
    """The declared validators of the collections to seed."""

    def __init__(self, collections: Mapping[str, CollectionSpec]):
        self.validators = {}
        for name, spec in collections.items():
            schema = validator_schema(spec.validator)
            self.validators[name] = DocumentValidator(schema) if schema else None
        self.seen: Counter[str] = Counter()

    def check(self, collection: str, documents: list[dict]) -> None:
        validator = self.validators.get(collection)
        start = self.seen[collection]
        self.seen[collection] += len(documents)
        if validator is None:
            return
        for offset, document in enumerate(documents):
            errors = validator.errors(document) or _unencodable(document)
            if errors:
                shown = next((f"{k} {document[k]}" for k in document if k.endswith("Id")), f"_id {document.get('_id')}")
                raise SeedRejected("mongo", f"collection {collection}", start + offset,
                                   f"({shown}) {'; '.join(errors[:3])}", collection)


def _unencodable(document: dict) -> list[str]:
    """Why pymongo could not send ``document`` (e.g. a uuid.UUID with no uuidRepresentation), if so."""
    try:
        bson.encode(document)
    except (bson.errors.InvalidDocument, ValueError, TypeError) as exc:
        return [f"cannot be encoded as BSON ({exc})"]
    return []


class KeyCheck:
    """The declared families; keys must match their own family and obey its rules."""

    def __init__(self, families: Mapping[str, KeyFamily]):
        self.families = [*FRAMEWORK_FAMILIES, *families.values()]
        self.matcher = KeyMatcher([f.parsed for f in self.families])
        self.seen: Counter[str] = Counter()
        self.stream_entries: Counter[bytes] = Counter()

    def check(self, batch: KeyBatch) -> None:
        family = batch.family
        start = self.seen[family.name]
        self.seen[family.name] += len(batch)
        if not batch.keys:
            return
        if batch.kind != family.type:
            self._reject(batch, start, 0, f"would be a {batch.kind} but the family is declared {family.type}")
        own = next(i for i, f in enumerate(self.families) if f.name == family.name)
        match, families, entries = self.matcher.match, self.families, self.stream_entries
        shared_ttl = not isinstance(batch.ttl, list)
        if shared_ttl and (problem := _ttl_problem(family, batch.ttl)):
            self._reject(batch, start, 0, problem)
        for offset, (key, value) in enumerate(zip(batch.keys, batch.values)):
            index = match(key)
            if index != own:
                self._reject(batch, start, offset, f"matches no declared key family (expected {family.pattern!r})"
                             if index is None else f"belongs to family {families[index].name}, not {family.name}")
            problem = _value_problem(family, value, entries, key) or (
                None if shared_ttl else _ttl_problem(family, batch.ttl_of(offset)))
            if problem:
                self._reject(batch, start, offset, problem)

    @staticmethod
    def _reject(batch: KeyBatch, start: int, offset: int, problem: str) -> None:
        shown = batch.keys[offset].decode("utf-8", "backslashreplace")
        raise SeedRejected("redis", f"family {batch.family.name}", start + offset, f"key {shown!r} {problem}",
                           batch.family.name)


def _value_problem(family: KeyFamily, value: object, stream_entries: Counter, key: bytes) -> str | None:
    if not isinstance(value, VALUE_TYPES[family.type]):
        return f"has a {type(value).__name__} value, not one a {family.type} holds"
    if not value and family.type != "string":
        return f"is an empty {family.type} (Redis stores no empty {family.type})"
    if family.type == "stream":
        stream_entries[key] += 1
        if family.max_elements and stream_entries[key] > family.max_elements:
            return f"would hold more than {family.max_elements:,} entries (max_elements)"
        return None
    if family.type == "string":
        if family.max_bytes and len(value) > family.max_bytes:  # type: ignore[arg-type]
            return f"holds {len(value):,} bytes, above max_bytes {family.max_bytes:,}"  # type: ignore[arg-type]
    elif family.max_elements and len(value) > family.max_elements:  # type: ignore[arg-type]
        return f"holds {len(value):,} elements, above max_elements {family.max_elements:,}"  # type: ignore[arg-type]
    return None


def _ttl_problem(family: KeyFamily, ttl: int | None) -> str | None:
    rule = family.ttl
    if rule.policy == "none" and ttl is not None:
        return f"gets a TTL of {format_duration(ttl)} but the family's keys never expire"
    if rule.policy != "required":
        return None
    if ttl is None or ttl <= 0:
        return "gets no TTL but the family requires one"
    if rule.min is not None and ttl < rule.min:
        return f"gets a TTL of {format_duration(ttl)}, below the family's minimum {format_duration(rule.min)}"
    if rule.max is not None and ttl > rule.max:
        return f"gets a TTL of {format_duration(ttl)}, above the family's maximum {format_duration(rule.max)}"
    return None


def _check_part(plan: "Plan", index: int, collections: Mapping[str, CollectionSpec],
                families: Mapping[str, KeyFamily]) -> tuple[Counter, Counter, tuple | None]:
    """Check some collections or families of one block: (records per name, stream entries per key,
    first rejection or None)."""
    from .documents import documents_of
    from .families import keys_of

    block = plan.block(index)
    documents, keys = DocumentCheck(collections), KeyCheck(families)
    try:
        for name in collections:
            documents.check(name, documents_of(name, block))
        for name, family in families.items():
            keys.check(keys_of(name, block))
    except SeedRejected as rejected:
        return documents.seen + keys.seen, keys.stream_entries, (rejected.store, rejected.where, rejected.index,
                                                                 rejected.reason, rejected.name)
    finally:
        block.release()
    return documents.seen + keys.seen, keys.stream_entries, None


def check_blocks(plan: "Plan", collections: Mapping[str, CollectionSpec], families: Mapping[str, KeyFamily],
                 advance: Callable[[int], None] = lambda n: None) -> Counter:
    """Every document and key of every block; returns how many per collection or family, or raises the
    first SeedRejected in seed order (block after block; in a block, collections then families)."""
    if not collections and not families:
        return Counter()
    parts = [({name: collections[name]}, {}) for name in collections] + ([({}, dict(families))] if families else [])
    tasks = [(index, part) for index in range(plan.block_count) for part in parts]
    documents = sum(plan.expected(name) for name in collections)
    workers = min(os.cpu_count() or 1, len(tasks))
    if documents < PARALLEL_FROM_DOCUMENTS or workers < 2:   # keys alone are cheap to check
        results = (_check_part(plan, index, *part) for index, part in tasks)
        return _combine(results, families, advance, len(parts))
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        results = pool.map(_check_part, [plan] * len(tasks), [i for i, _ in tasks], [p[0] for _, p in tasks],
                           [p[1] for _, p in tasks])
        return _combine(results, families, advance, len(parts))


def _combine(results, families: Mapping[str, KeyFamily], advance: Callable[[int], None], per_block: int = 1) -> Counter:
    seen: Counter = Counter()
    entries: Counter = Counter()                      # entries per stream key, over every block
    streams_of = {f.fixed_key: f for f in families.values() if f.type == "stream" and f.fixed_key is not None}
    for done, (counts, streams, rejection) in enumerate(results, 1):
        if rejection is not None:
            store, where, index, reason, name = rejection
            raise SeedRejected(store, where, seen[name] + index, reason, name)
        for key, added in streams.items():
            family = streams_of.get(key)
            if family and family.max_elements and entries[key] + added > family.max_elements:
                raise SeedRejected("redis", f"family {family.name}", seen[family.name] + family.max_elements
                                   - entries[key], f"key {key.decode()!r} would hold more than "
                                   f"{family.max_elements:,} entries (max_elements)", family.name)
            entries[key] += added
        seen.update(counts)
        if done % per_block == 0:
            advance(1)
    return seen
