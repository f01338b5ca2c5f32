"""Consistency rules a collection's declaration must satisfy before anything is sent.

An index declared twice, a TTL on a compound index, a TTL index on a capped
collection or (unless partial on the metaField) on a time series, a shard key
that no declared index supports, a unique index that cannot be enforced on a
sharded collection, a zone range that does not follow the shard key or
overlaps another: each is a DeclarationError with the JSON pointer of the
culprit.
"""

from __future__ import annotations

from typing import Any

from .extjson import pointer, same
from .normalise import SIMPLE
from .source import Source
from .state import CollectionSpec, IndexSpec, Pairs, ShardKey, ZoneRange, show_pairs

# BSON comparison order of types, for zone bounds (MinKey < null < numbers < strings < ... < MaxKey)
_EXTJSON_RANK = {
    "$minKey": 0,
    "$binary": 6,
    "$oid": 7,
    "$date": 9,
    "$timestamp": 10,
    "$regularExpression": 11,
    "$maxKey": 13,
}


def check_collection(source: Source, spec: CollectionSpec) -> None:
    """Indexes and zones are in file order here, so positions are the file's."""
    check_indexes(source, spec.indexes)
    check_timeseries_indexes(source, spec)
    check_ttl_indexes(source, spec)
    if spec.shard_key:
        check_shard_key(source, spec, spec.shard_key)
    if spec.zones:
        check_zones(source, spec)


def _identity(index: IndexSpec) -> list:
    """What tells two indexes on the same key apart for MongoDB."""
    return [index.key, index.options.get("collation"), index.options.get("partialFilterExpression")]


def check_indexes(source: Source, indexes: tuple[IndexSpec, ...]) -> None:
    for j, index in enumerate(indexes):
        at = ("indexes", j)
        for i, earlier in enumerate(indexes[:j]):
            if earlier.name == index.name:
                raise source.error(
                    at, f"index {index.name!r} is declared twice (also at {pointer('indexes', i)})"
                )
            if same(_identity(earlier), _identity(index)):
                raise source.error(
                    at + ("key",), f"an index declared twice: same key and options as {pointer('indexes', i)}"
                )
        _check_index(source, at, index)


def _check_index(source: Source, at: tuple, index: IndexSpec) -> None:
    if index.ttl is not None and len(index.key) > 1:
        raise source.error(
            at + ("expireAfterSeconds",),
            "a TTL index must have a single key field; "
            "MongoDB never expires documents through a compound index",
        )
    if sum(v == "hashed" for _, v in index.key) > 1:
        raise source.error(at + ("key",), "at most one field of an index can be hashed")
    if index.hashed and index.options.get("unique"):
        raise source.error(at + ("unique",), "a hashed index cannot be unique")


TIMESERIES_PROHIBITED = ("text", "2d")  # index types; unique is an option, checked apart


def check_timeseries_indexes(source: Source, spec: CollectionSpec) -> None:
    """Index kinds MongoDB refuses on a time series: text, 2d, unique, sparse on the metaField."""
    timeseries = spec.options.get("timeseries")
    if not timeseries:
        return
    meta = timeseries.get("metaField")
    for j, index in enumerate(spec.indexes):
        at = ("indexes", j)
        kind = next((v for _, v in index.key if v in TIMESERIES_PROHIBITED), None)
        if kind:
            raise source.error(at + ("key",), f"MongoDB allows no {kind} index on a time-series collection")
        if index.options.get("unique"):
            raise source.error(at + ("unique",), "MongoDB allows no unique index on a time-series collection")
        on_meta = any(f == meta or f.startswith(f"{meta}.") for f, _ in index.key) if meta else False
        if index.options.get("sparse") and on_meta:
            raise source.error(
                at + ("sparse",), f"MongoDB allows no sparse index on the metaField {meta!r} of a time series"
            )


def check_ttl_indexes(source: Source, spec: CollectionSpec) -> None:
    """TTL indexes the collection's kind refuses: capped, or a time series without a metaField filter."""
    timeseries = spec.options.get("timeseries")
    for j, index in enumerate(spec.indexes):
        if index.ttl is None:
            continue
        at = ("indexes", j)
        if spec.options.get("capped"):
            raise source.error(
                at + ("expireAfterSeconds",),
                "TTL indexes are not supported for capped collections: "
                "a capped collection drops its oldest documents by itself",
            )
        if timeseries:
            _check_timeseries_ttl(source, at, index, timeseries)


def _check_timeseries_ttl(source: Source, at: tuple, index: IndexSpec, timeseries: dict) -> None:
    """MongoDB 6.3+ takes a TTL index on a time series only on the timeField, partial on the metaField."""
    meta, time = timeseries.get("metaField"), timeseries["timeField"]
    instead = "to expire every measurement, set the collection-level expireAfterSeconds instead"
    if not meta:
        raise source.error(
            at + ("expireAfterSeconds",),
            "a TTL index on a time series needs a partialFilterExpression on the metaField, "
            f"and [timeseries] declares no metaField; {instead}",
        )
    needs = (
        f"a TTL index on a time series needs a partialFilterExpression on the metaField {meta!r} "
        f"only (MongoDB 6.3+); {instead}"
    )
    partial = index.options.get("partialFilterExpression")
    if not partial:
        raise source.error(at + ("expireAfterSeconds",), needs)
    culprit = _non_meta_field(partial, meta)
    if culprit is not None:
        raise source.error(at + ("partialFilterExpression",) + culprit, needs)
    if index.key[0][0] != time:
        raise source.error(
            at + ("key",),
            f"a TTL index on a time series must be on the timeField {time!r}, not {index.key[0][0]!r}",
        )


def _non_meta_field(expression: Any, meta: str) -> tuple | None:
    """The path of the first condition of ``expression`` on something other than ``meta``, or None."""
    for field, value in expression.items():
        if field == "$and" and isinstance(value, list) and value:
            for i, clause in enumerate(value):
                inner = _non_meta_field(clause, meta) if isinstance(clause, dict) and clause else ()
                if inner is not None:
                    return (field, i) + inner
        elif field != meta and not field.startswith(meta + "."):
            return (field,)
    return None


def supports_shard_key(index: IndexSpec, key: ShardKey, collection_collation: dict | None = None) -> bool:
    """An index MongoDB accepts as the shard key index: it starts with the key, whole, and
    compares binary (its own collation, else the collection's default, is simple)."""
    collation = index.options.get("collation") or collection_collation
    simple = collation is None or collation == SIMPLE
    plain = simple and not any(index.options.get(o) for o in ("sparse", "partialFilterExpression", "hidden"))
    return plain and index.key[: len(key.key)] == key.key


def check_shard_key(source: Source, spec: CollectionSpec, key: ShardKey) -> None:
    hashed = any(v == "hashed" for _, v in key.key)
    if sum(v == "hashed" for _, v in key.key) > 1:
        raise source.error(("shard", "key"), "at most one shard key field can be hashed")
    if key.unique and hashed:
        raise source.error(("shard", "unique"), "a hashed shard key cannot be unique")
    if spec.options.get("capped"):
        raise source.error(("shard",), "a capped collection cannot be sharded")
    supporting = [i for i in spec.indexes if supports_shard_key(i, key, spec.options.get("collation"))]
    if not supporting:
        need = (
            "a hashed index on that field"
            if hashed
            else f"an index whose key starts with {show_pairs(key.key)}"
        )
        raise source.error(
            ("shard", "key"),
            f"no declared index supports the shard key {show_pairs(key.key)}: "
            f"declare {need} (not sparse, partial or hidden, and with collation {{locale: \"simple\"}} "
            "where the collection has a default collation)",
        )
    if key.unique and not any(i.options.get("unique") for i in supporting):
        raise source.error(("shard", "unique"), "a unique shard key needs a unique index that supports it")
    _check_unique_indexes(source, spec.indexes, key)


def _check_unique_indexes(source: Source, indexes: tuple[IndexSpec, ...], key: ShardKey) -> None:
    for j, index in enumerate(indexes):
        fields = tuple(f for f, _ in index.key)
        if index.options.get("unique") and fields[:1] != ("_id",) and fields[: len(key.fields)] != key.fields:
            raise source.error(
                ("indexes", j, "unique"),
                "a unique index on a sharded collection must start "
                f"with the shard key fields ({', '.join(key.fields)}) to be enforced",
            )


def check_zones(source: Source, spec: CollectionSpec) -> None:
    if not spec.shard_key:
        raise source.error(("zones",), "zones need a [shard] key: a zone is a range of shard key values")
    for i, zone in enumerate(spec.zones):
        _check_zone(source, i, zone, spec.shard_key)
    ordered = sorted(range(len(spec.zones)), key=lambda i: pairs_order(spec.zones[i].min))
    for before, after in zip(ordered, ordered[1:], strict=False):
        if pairs_order(spec.zones[after].min) < pairs_order(spec.zones[before].max):
            raise source.error(
                ("zones", after),
                f"overlaps the range of zone {spec.zones[before].zone!r} at {pointer('zones', before)}",
            )


def _check_zone(source: Source, i: int, zone: ZoneRange, key: ShardKey) -> None:
    hashed = {f for f, v in key.key if v == "hashed"}
    for bound in ("min", "max"):
        pairs: Pairs = getattr(zone, bound)
        fields = tuple(f for f, _ in pairs)
        if fields != key.fields:
            raise source.error(
                ("zones", i, bound),
                f"must name the shard key fields {', '.join(key.fields)} "
                f"in that order, not {', '.join(fields) or 'none'}",
            )
        for field, value in pairs:
            if field in hashed and not _hashed_bound(value):
                raise source.error(
                    ("zones", i, bound, field),
                    "a hashed shard key field takes hashed values (whole numbers), $minKey or $maxKey",
                )
    if pairs_order(zone.min) >= pairs_order(zone.max):
        raise source.error(("zones", i), "min must be below max (a zone range is [min, max))")


def _hashed_bound(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or value in (
        {"$minKey": 1},
        {"$maxKey": 1},
    )


def value_order(value: Any) -> tuple:
    """A sort key following MongoDB's comparison order of BSON values (canonical form)."""
    if value is None:
        return (1, 0)
    if isinstance(value, bool):
        return (8, value)
    if isinstance(value, (int, float)):
        return (2, value)
    if isinstance(value, str):
        return (3, value)
    if isinstance(value, list):
        return (5, str(value))
    marker = next(iter(value), None) if isinstance(value, dict) and len(value) == 1 else None
    return (_EXTJSON_RANK.get(marker, 4), str(value))


def pairs_order(pairs: Pairs) -> tuple:
    return tuple(value_order(v) for _, v in pairs)
