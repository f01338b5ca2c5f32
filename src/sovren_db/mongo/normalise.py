"""One normal form for what the declarations say and what the server echoes.

Both sides go through the same functions, so what the server adds on its own
never shows as drift: the index version ``v``, ``ns`` (MongoDB < 4.4),
``background``, ``1.0`` / ``Int64(1)`` for ``1``, collation fields echoed
with their defaults and the ICU ``version``, text-index internals
(``_fts``/``_ftsx``, ``weights`` of 1, default language), default index
names, absent validation level/action, and time-series bucketing defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .extjson import canonical, document_to_pairs, same
from .state import DEFAULT_ACTION, DEFAULT_LEVEL, IndexSpec, as_pairs

IGNORED_INDEX_FIELDS = frozenset(
    {"key", "name", "v", "ns", "background", "textIndexVersion", "2dsphereIndexVersion"}
)
FALSE_BY_DEFAULT = ("unique", "sparse", "hidden")
TEXT_DEFAULTS = {"default_language": "english", "language_override": "language"}
COLLATION_DEFAULTS = {
    "caseLevel": False,
    "caseFirst": "off",
    "strength": 3,
    "numericOrdering": False,
    "alternate": "non-ignorable",
    "maxVariable": "punct",
    "normalization": False,
    "backwards": False,
}
# ICU locales whose tailoring changes a default; the server echoes the resolved value.
LOCALE_COLLATION_DEFAULTS = {"fr_CA": {"backwards": True}}
# granularity -> (bucketMaxSpanSeconds, bucketRoundingSeconds), as MongoDB 6.3+ derives them
TIMESERIES_BUCKETING = {"seconds": (3600, 60), "minutes": (86400, 3600), "hours": (2592000, 86400)}
CAPPED_MINIMUM_SIZE = 4096


def default_index_name(key: list | tuple) -> str:
    """The name MongoDB gives an index created without one: ``userId_1_timestamp_-1``."""
    return "_".join(f"{field}_{value}" for field, value in key)


def normalise_collation(collation: Any) -> dict | None:
    """Drop ``version`` and every field equal to its default; ``simple`` means no collation."""
    collation = canonical(collation) if collation else None
    if not collation or collation.get("locale") == "simple":
        return None
    defaults = {**COLLATION_DEFAULTS, **LOCALE_COLLATION_DEFAULTS.get(collation.get("locale"), {})}
    return {
        k: v for k, v in collation.items() if k != "version" and not (k in defaults and same(defaults[k], v))
    }


def index_from_document(document: Mapping) -> IndexSpec:
    """An IndexSpec from a listIndexes entry or a declared index table."""
    key = document_to_pairs(document["key"])
    name = str(document.get("name") or default_index_name(key))
    options = {k: canonical(v) for k, v in document.items() if k not in IGNORED_INDEX_FIELDS}
    key, options = _normalise_text_index(key, options)
    for flag in FALSE_BY_DEFAULT:
        if options.get(flag) is False:
            del options[flag]
    if "collation" in options:
        collation = normalise_collation(options.pop("collation"))
        if collation:
            options["collation"] = collation
    return IndexSpec(name=name, key=as_pairs(key), options=options)


def _text_span(key: list, options: dict) -> tuple[int, int, set] | None:
    """Where the text part of a key starts and ends, and every text field; None if no text."""
    fields = [f for f, _ in key]
    weighted = set(options.get("weights") or {})
    if "_fts" in fields:  # the server's form: {_fts: "text", _ftsx: 1}, fields in weights
        start = fields.index("_fts")
        return start, fields.index("_ftsx") if "_ftsx" in fields else start, weighted
    text_at = [i for i, (_, v) in enumerate(key) if v == "text"]
    if not text_at:
        return None
    return text_at[0], text_at[-1], {key[i][0] for i in text_at} | weighted


def _normalise_text_index(key: list, options: dict) -> tuple[list, dict]:
    """Text indexes in the declared ``{field: "text"}`` form, whatever the server echoes."""
    span = _text_span(key, options)
    if span is None:
        return key, options
    start, end, text_fields = span
    weights = options.pop("weights", None) or {}
    ordered = sorted(text_fields)
    if any(weights.get(f, 1) != 1 for f in ordered):
        options["weights"] = {f: weights.get(f, 1) for f in ordered}
    for option, default in TEXT_DEFAULTS.items():
        if options.get(option) == default:
            del options[option]
    return key[:start] + [[f, "text"] for f in ordered] + key[end + 1 :], options


def normalise_validator(validator: Any) -> dict | None:
    return canonical(validator) or None


def normalise_level(level: Any) -> str:
    return str(level) if level else DEFAULT_LEVEL


def normalise_action(action: Any) -> str:
    return str(action) if action else DEFAULT_ACTION


def normalise_options(options: Mapping) -> dict:
    """The creation options sovren-db manages: capped, time series, TTL of a time series, collation."""
    out: dict[str, Any] = {}
    if options.get("capped"):
        out.update(capped=True, size=capped_size(options.get("size")))
        if options.get("max"):
            out["max"] = canonical(options["max"])
    if options.get("timeseries"):
        out["timeseries"] = normalise_timeseries(options["timeseries"])
    if options.get("expireAfterSeconds") is not None:
        out["expireAfterSeconds"] = canonical(options["expireAfterSeconds"])
    collation = normalise_collation(options.get("collation"))
    if collation:
        out["collation"] = collation
    return out


def capped_size(size: Any) -> int:
    """MongoDB raises a cap to at least 4096 bytes and to a multiple of 256."""
    size = int(canonical(size) or 0)
    if size <= CAPPED_MINIMUM_SIZE:
        return CAPPED_MINIMUM_SIZE
    return -(-size // 256) * 256


def normalise_timeseries(timeseries: Mapping) -> dict:
    out = canonical(dict(timeseries))
    granularity = out.get("granularity")
    if granularity is None and "bucketMaxSpanSeconds" not in out and "bucketRoundingSeconds" not in out:
        granularity = out["granularity"] = "seconds"
    if granularity in TIMESERIES_BUCKETING:
        span, rounding = TIMESERIES_BUCKETING[granularity]
        if out.get("bucketMaxSpanSeconds") == span:
            del out["bucketMaxSpanSeconds"]
        if out.get("bucketRoundingSeconds") == rounding:
            del out["bucketRoundingSeconds"]
    return out
