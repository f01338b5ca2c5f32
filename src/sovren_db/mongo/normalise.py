"""One normal form for what the declarations say and what the server echoes.

Both sides go through the same functions, so what the server adds on its own
never shows as drift: the index version ``v``, ``ns`` (MongoDB < 4.4),
``background``, ``1.0`` / ``Int64(1)`` for ``1``, collation fields echoed
with their defaults and the ICU ``version``, text-index internals
(``_fts``/``_ftsx``, ``weights`` of 1, default language), default index
names, absent validation level/action, and time-series bucketing defaults.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
# Locales (of those MongoDB supports) whose ICU tailoring changes a default; the server echoes
# the value the collator resolved. Read from ICU's collator attributes (python3-icu, ICU 72)
# against the root locale; these tailorings are CLDR's and older than ICU 57, MongoDB's.
_NORMALISING = ("as", "bn", "bo", "el", "fa", "gu", "he", "hi", "ig", "km", "kn", "kok", "mr", "my",
                "or", "pa", "ps", "si", "ta", "te", "vi", "yi", "yo")
LOCALE_COLLATION_DEFAULTS: dict[str, dict] = {
    **{locale: {"normalization": True} for locale in _NORMALISING},
    "da": {"caseFirst": "upper"},
    "mt": {"caseFirst": "upper"},
    "th": {"alternate": "shifted", "normalization": True},
    "fr_CA": {"backwards": True},
}
SIMPLE = {"locale": "simple"}
# Index types that take no collation: on a collection with a default collation they must be
# created with the simple one (the server answers 67, "collation not supported", otherwise).
NO_COLLATION_TYPES = ("text", "2d", "geoHaystack")
# granularity -> (bucketMaxSpanSeconds, bucketRoundingSeconds), as MongoDB 6.3+ derives them
TIMESERIES_BUCKETING = {"seconds": (3600, 60), "minutes": (86400, 3600), "hours": (2592000, 86400)}
# collMod cappedMax <= 0 means "no maximum"; the server stores and echoes it as 2^31 - 1.
NO_CAPPED_MAX = 2**31 - 1


def default_index_name(key: list | tuple) -> str:
    """The name MongoDB gives an index created without one: ``userId_1_timestamp_-1``."""
    return "_".join(f"{field}_{value}" for field, value in key)


def normalise_collation(collation: Any, *, keep_simple: bool = False) -> dict | None:
    """Drop ``version`` and every field equal to its default; ``simple`` means no collation
    (kept as ``{"locale": "simple"}`` with ``keep_simple``: an index's collation is relative
    to its collection's, see :func:`relative_collations`)."""
    collation = canonical(collation) if collation else None
    if not collation:
        return None
    if collation.get("locale") == "simple":
        return dict(SIMPLE) if keep_simple else None
    defaults = {**COLLATION_DEFAULTS, **locale_defaults(str(collation.get("locale", "")))}
    return {
        k: v for k, v in collation.items() if k != "version" and not (k in defaults and same(defaults[k], v))
    }


def locale_defaults(locale: str) -> dict:
    """The tailored defaults of ``locale`` (``da_DK`` and ``da@...`` as ``da``; ``fr_CA`` its own)."""
    if locale in LOCALE_COLLATION_DEFAULTS:
        return LOCALE_COLLATION_DEFAULTS[locale]
    return LOCALE_COLLATION_DEFAULTS.get(locale.split("@")[0].split("_")[0], {})


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
        collation = normalise_collation(options.pop("collation"), keep_simple=True)
        if collation:
            options["collation"] = collation
    return IndexSpec(name=name, key=as_pairs(key), options=options)


def takes_collation(index: IndexSpec) -> bool:
    return not any(value in NO_COLLATION_TYPES for _, value in index.key)


def relative_collations(indexes: Iterable[IndexSpec], collection_collation: dict | None, *,
                        echoed: bool) -> list[IndexSpec]:
    """Index collations stated the same way on both sides, relative to the collection's default.

    An index created without a collation inherits the collection's default and
    listIndexes echoes it in full; an index made ``simple`` on such a collection
    is echoed with none (``echoed`` says which side this is). In the normal form
    no collation means "the collection's default" and ``{"locale": "simple"}``
    means simple where the collection has another default. Text and 2d indexes
    take no collation at all.
    """
    out = []
    for index in indexes:
        options = dict(index.options)
        collation = options.pop("collation", None)
        if not takes_collation(index):
            collation = None
        elif collection_collation is None:
            collation = None if collation == SIMPLE else collation
        else:
            if collation is None and echoed:
                collation = dict(SIMPLE)
            if same(collation, collection_collation):
                collation = None
        if collation is not None:
            options["collation"] = collation
        out.append(IndexSpec(name=index.name, key=index.key, options=options))
    return out


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
        maximum = canonical(options.get("max") or 0)
        if 0 < maximum < NO_CAPPED_MAX:
            out["max"] = maximum
    if options.get("timeseries"):
        out["timeseries"] = normalise_timeseries(options["timeseries"])
    if options.get("expireAfterSeconds") is not None:
        out["expireAfterSeconds"] = canonical(options["expireAfterSeconds"])
    collation = normalise_collation(options.get("collation"))
    if collation:
        out["collation"] = collation
    return out


def capped_size(size: Any) -> int:
    """A cap in bytes, rounded up to a multiple of 256 as MongoDB before 6.2 stores it.

    6.2+ stores the size exactly as given; rounding both sides makes either
    server's echo equal to the declaration, and sovren-db sends the rounded size,
    which every version stores unchanged.
    """
    size = int(canonical(size) or 0)
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
