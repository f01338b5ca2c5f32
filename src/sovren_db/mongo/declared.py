"""Declared state: the ``mongo/`` folder, validated as it is loaded.

Per collection ``<name>.schema.json`` holds the ``$jsonSchema`` document and
``<name>.toml`` its options::

    validationLevel = "strict"          # off | strict | moderate
    validationAction = "error"          # error | warn | errorAndLog (MongoDB 8.1+)
    [[indexes]]                         # key order is kept: {userId = 1, timestamp = -1}
    key = { userId = 1, timestamp = -1 }
    unique = false                      # name, sparse, hidden, partialFilterExpression,
                                        # expireAfterSeconds, collation, weights...
    [shard]
    key = { userId = "hashed" }         # 1 (ranged) or "hashed"; unique = true for ranged keys
    [[zones]]                           # data residency: a zone and a shard key range [min, max)
    zone = "eu"
    min = { region = "eu", userId = { "$minKey" = 1 } }
    max = { region = "eu", userId = { "$maxKey" = 1 } }
    [capped]                            # or [timeseries] timeField/metaField/granularity
    size = 1048576

A time series takes ``granularity`` or, on MongoDB 6.3+, custom bucketing
(``bucketMaxSpanSeconds`` = ``bucketRoundingSeconds``), never both; it has no
validator (no schema file, no validationLevel/validationAction), and expires
documents through the collection-level ``expireAfterSeconds``.

Every problem raises DeclarationError naming the file and a JSON pointer
(``mongo/communications.toml at /indexes/2/key``); nothing reaches a server.
"""

from __future__ import annotations

import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from .dialect import schema_problem
from .extjson import canonical, from_extjson, load_json_file
from .normalise import (
    TIMESERIES_BUCKETING,
    index_from_document,
    normalise_action,
    normalise_level,
    normalise_options,
    relative_collations,
)
from .rules import check_collection
from .source import Source
from .state import (
    LEDGER_COLLECTION,
    CollectionSpec,
    DatabaseState,
    IndexSpec,
    ShardKey,
    ZoneRange,
    as_pairs,
    sorted_zones,
)

SCHEMA_SUFFIX = ".schema.json"
OPTIONS_SUFFIX = ".toml"
TOP_LEVEL_KEYS = frozenset(
    {
        "description",
        "validationLevel",
        "validationAction",
        "indexes",
        "shard",
        "zones",
        "capped",
        "timeseries",
        "expireAfterSeconds",
        "collation",
    }
)
LEVELS = ("off", "strict", "moderate")
ACTIONS = ("error", "warn", "errorAndLog")
INDEX_KEYS = frozenset(
    {
        "key",
        "name",
        "unique",
        "sparse",
        "hidden",
        "partialFilterExpression",
        "expireAfterSeconds",
        "collation",
        "weights",
        "default_language",
        "language_override",
        "wildcardProjection",
    }
)
KEY_TYPES = (1, -1, "hashed", "text", "2dsphere", "2d")
GRANULARITIES = tuple(TIMESERIES_BUCKETING)  # seconds, minutes, hours


def has_declarations(mongo_dir: Path) -> bool:
    return mongo_dir.is_dir() and any(_collection_files(mongo_dir))


def load_declared(mongo_dir: Path, *, display_root: Path | None = None) -> DatabaseState:
    """Every collection declared in ``mongo_dir``; DeclarationError on the first problem."""
    root = display_root or mongo_dir.parent
    collections = {}
    for name, (options_file, schema_file) in sorted(_collection_files(mongo_dir, root).items()):
        _check_name(name, Source(options_file or schema_file, root))
        collections[name] = load_collection(name, options_file, schema_file, root)
    return DatabaseState(collections=collections, sharded=True)


def _collection_files(mongo_dir: Path, root: Path | None = None) -> dict[str, tuple]:
    """collection name -> (options file or None, schema file or None)."""
    files: dict[str, list[Path | None]] = {}
    for path in sorted(mongo_dir.glob("*")) if mongo_dir.is_dir() else ():
        if path.name.endswith(SCHEMA_SUFFIX):
            files.setdefault(path.name[: -len(SCHEMA_SUFFIX)], [None, None])[1] = path
        elif path.suffix == OPTIONS_SUFFIX:
            files.setdefault(path.stem, [None, None])[0] = path
        elif path.suffix == ".json":
            raise Source(path, root).error((), f"name $jsonSchema files <collection>{SCHEMA_SUFFIX}")
    return {name: (pair[0], pair[1]) for name, pair in files.items()}


def _check_name(name: str, source: Source) -> None:
    if not name or "$" in name or "\0" in name or name.startswith("system.") or name == LEDGER_COLLECTION:
        raise source.error((), f"{name!r} is not a collection name sovren-db can manage")


def load_collection(
    name: str, options_file: Path | None, schema_file: Path | None, root: Path
) -> CollectionSpec:
    validator = _load_validator(schema_file, Source(schema_file, root)) if schema_file else None
    source = Source(options_file, root)
    table = _read_toml(options_file, source) if options_file else {}
    for key in table:
        if key not in TOP_LEVEL_KEYS:
            raise source.error((key,), f"unknown key {key!r} (known: {', '.join(sorted(TOP_LEVEL_KEYS))})")
    indexes = [_parse_index(source, i, raw) for i, raw in enumerate(source.array(table, "indexes"))]
    shard_key = _parse_shard(source, table.get("shard"))
    spec = CollectionSpec(
        name=name,
        validator=validator,
        validation_level=normalise_level(source.choice(table, "validationLevel", LEVELS)),
        validation_action=normalise_action(source.choice(table, "validationAction", ACTIONS)),
        options=_parse_options(source, table),
        indexes=tuple(indexes),
        shard_key=shard_key,
        zones=tuple(_parse_zone(source, i, raw) for i, raw in enumerate(source.array(table, "zones"))),
    )
    _check_timeseries_validation(source, table, schema_file, root)
    check_collection(source, spec)
    return _finish(spec)


def _check_timeseries_validation(source: Source, table: dict, schema_file: Path | None, root: Path) -> None:
    """MongoDB refuses a validator on a time series: "option not supported on a time-series collection"."""
    if "timeseries" not in table:
        return
    refused = 'MongoDB refuses validation on a time series ("option not supported on a time-series collection")'
    if schema_file is not None:
        schema = Source(schema_file, root).display
        raise source.error(
            ("timeseries",),
            f"a time-series collection cannot have a validator, but {schema} declares one: {refused}; "
            "remove the schema file or the [timeseries] table",
        )
    for key in ("validationLevel", "validationAction"):
        if key in table:
            raise source.error((key,), f"a time-series collection has no validator to configure: {refused}")


def _finish(spec: CollectionSpec) -> CollectionSpec:
    indexes = relative_collations(list(spec.indexes) + _implicit_indexes(spec), spec.options.get("collation"),
                                  echoed=False)
    return replace(spec, indexes=tuple(sorted(indexes, key=lambda i: i.name)), zones=sorted_zones(spec.zones))


def _implicit_indexes(spec: CollectionSpec) -> list[IndexSpec]:
    """MongoDB 6.3+ gives a time series collection a {metaField: 1, timeField: 1} index."""
    timeseries = spec.options.get("timeseries") or {}
    if "metaField" not in timeseries:
        return []
    implicit = index_from_document({"key": {timeseries["metaField"]: 1, timeseries["timeField"]: 1}})
    taken = any(i.name == implicit.name or i.key == implicit.key for i in spec.indexes)
    return [] if taken else [implicit]


def _read_toml(path: Path, source: Source) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise source.error((), f"not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise source.error((), f"cannot be read ({exc})") from None


def _load_validator(path: Path, source: Source) -> dict:
    schema = from_extjson(load_json_file(path, source.display))
    problem = schema_problem(schema)
    if problem:
        raise source.error(problem[0], problem[1])
    return {"$jsonSchema": canonical(schema)}


def _parse_index(source: Source, i: int, raw: Any) -> IndexSpec:
    at = ("indexes", i)
    source.table(raw, at)
    for key in raw:
        if key not in INDEX_KEYS:
            raise source.error(at + (key,), f"unknown index option {key!r}")
    _parse_key(source, raw.get("key"), at + ("key",), KEY_TYPES)
    if raw["key"] == {"_id": 1}:
        raise source.error(at + ("key",), "the _id index always exists; do not declare it")
    source.optional(raw, at, "name", str, "a non-empty string", lambda v: bool(v))
    for flag in ("unique", "sparse", "hidden"):
        source.optional(raw, at, flag, bool, "true or false")
    source.optional(
        raw,
        at,
        "expireAfterSeconds",
        int,
        "a whole number of seconds from 0 to 2147483647",
        lambda v: 0 <= v <= 2**31 - 1,
    )
    for table in ("partialFilterExpression", "collation", "weights", "wildcardProjection"):
        source.optional(raw, at, table, dict, "a table")
    if "collation" in raw and not isinstance(raw["collation"].get("locale"), str):
        raise source.error(at + ("collation", "locale"), "a collation needs a locale")
    return index_from_document(from_extjson(raw))


def _parse_key(source: Source, key: Any, at: tuple, allowed: tuple) -> None:
    if not isinstance(key, dict) or not key:
        raise source.error(at, "must be a non-empty table of field = direction")
    for field, value in key.items():
        value = canonical(value)
        if isinstance(value, bool) or value not in allowed:
            raise source.error(at + (field,), f"{value!r} is not one of {', '.join(map(repr, allowed))}")


def _parse_shard(source: Source, raw: Any) -> ShardKey | None:
    if raw is None:
        return None
    source.table(raw, ("shard",))
    for key in raw:
        if key not in ("key", "unique"):
            raise source.error(("shard", key), f"unknown shard option {key!r} (known: key, unique)")
    _parse_key(source, raw.get("key"), ("shard", "key"), (1, "hashed"))
    source.optional(raw, ("shard",), "unique", bool, "true or false")
    return ShardKey(key=as_pairs(canonical(list(raw["key"].items()))), unique=raw.get("unique", False))


def _parse_zone(source: Source, i: int, raw: Any) -> ZoneRange:
    at = ("zones", i)
    source.table(raw, at)
    for key in raw:
        if key not in ("zone", "min", "max"):
            raise source.error(at + (key,), f"unknown zone option {key!r} (known: zone, min, max)")
    source.optional(raw, at, "zone", str, "a zone name", lambda v: bool(v), required=True)
    for bound in ("min", "max"):
        source.optional(raw, at, bound, dict, "a table of shard key field = value", required=True)
    bounds = {b: as_pairs(canonical(list(from_extjson(raw[b]).items()))) for b in ("min", "max")}
    return ZoneRange(zone=raw["zone"], min=bounds["min"], max=bounds["max"])


def _parse_options(source: Source, table: dict) -> dict:
    if "capped" in table and "timeseries" in table:
        raise source.error(("timeseries",), "a collection cannot be both capped and a time series")
    options: dict[str, Any] = {}
    if "capped" in table:
        options.update(capped=True, **_parse_capped(source, table["capped"]))
    if "timeseries" in table:
        options["timeseries"] = _parse_timeseries(source, table["timeseries"])
    if "expireAfterSeconds" in table:
        if "timeseries" not in table:
            raise source.error(
                ("expireAfterSeconds",),
                "a collection-wide TTL needs [timeseries]; use an index with expireAfterSeconds otherwise",
            )
        source.optional(table, (), "expireAfterSeconds", int, "a whole number of seconds", lambda v: v > 0)
        options["expireAfterSeconds"] = table["expireAfterSeconds"]
    if "collation" in table:
        source.optional(table, (), "collation", dict, "a table with a locale", lambda v: "locale" in v)
        options["collation"] = table["collation"]
    return normalise_options(options)


def _parse_capped(source: Source, raw: Any) -> dict:
    source.table(raw, ("capped",))
    for key in raw:
        if key not in ("size", "max"):
            raise source.error(("capped", key), f"unknown capped option {key!r} (known: size, max)")
    source.optional(
        raw, ("capped",), "size", int, "a positive number of bytes", lambda v: v > 0, required=True
    )
    source.optional(raw, ("capped",), "max", int, "a positive number of documents", lambda v: v > 0)
    return {k: raw[k] for k in ("size", "max") if k in raw}


def _parse_timeseries(source: Source, raw: Any) -> dict:
    at = ("timeseries",)
    source.table(raw, at)
    known = ("timeField", "metaField", "granularity", "bucketMaxSpanSeconds", "bucketRoundingSeconds")
    for key in raw:
        if key not in known:
            raise source.error(at + (key,), f"unknown time series option {key!r} (known: {', '.join(known)})")
    source.optional(raw, at, "timeField", str, "a field name", lambda v: bool(v), required=True)
    source.optional(raw, at, "metaField", str, "a field name", lambda v: bool(v))
    source.choice(raw, "granularity", GRANULARITIES, at)
    for key in ("bucketMaxSpanSeconds", "bucketRoundingSeconds"):
        source.optional(raw, at, key, int, "a positive whole number of seconds", lambda v: v > 0)
    _check_bucketing(source, raw)
    return dict(raw)


def _check_bucketing(source: Source, raw: dict) -> None:
    """The server's validateAndSetBucketingParameters: granularity, or both bucket sizes, equal."""
    at = ("timeseries",)
    custom = [k for k in ("bucketMaxSpanSeconds", "bucketRoundingSeconds") if k in raw]
    if not custom:
        return
    if "granularity" in raw:
        span, rounding = TIMESERIES_BUCKETING[raw["granularity"]]
        raise source.error(
            at + (custom[0],),
            f"cannot be combined with granularity: keep granularity = {raw['granularity']!r} "
            f"(buckets of {span} s rounded to {rounding} s) or drop it and give "
            "bucketMaxSpanSeconds and bucketRoundingSeconds, equal (custom bucketing needs MongoDB 6.3+)",
        )
    if len(custom) == 1:
        other = "bucketRoundingSeconds" if custom[0] == "bucketMaxSpanSeconds" else "bucketMaxSpanSeconds"
        raise source.error(
            at + (custom[0],),
            f"needs {other} too, with the same value: MongoDB takes the two together "
            "(custom bucketing needs MongoDB 6.3+)",
        )
    if raw["bucketMaxSpanSeconds"] != raw["bucketRoundingSeconds"]:
        raise source.error(
            at + ("bucketRoundingSeconds",),
            f"must equal bucketMaxSpanSeconds ({raw['bucketMaxSpanSeconds']}), not "
            f"{raw['bucketRoundingSeconds']} (custom bucketing needs MongoDB 6.3+)",
        )
