"""Seed profiles: ``seeds/<name>.toml``, validated as they are loaded.

A profile says *what* to seed, never how: rows per root table (multiplied by
``--scale``), children per parent, a time window, and optionally a generator
per column. Postgres tables are read from the declarations (:mod:`.declared`),
so a table or column added to the schema is seeded without a profile change::

    description = "Small and quick, for CI."
    seed = 1                  # the default of --seed
    password = "sovren-ci"    # what columns of kind password_hash hash (one PBKDF2 hash for every row)
    encryption_key = "..."    # for columns declared Encrypted, unless SOVREN_DB_ENCRYPTION_KEY is set
    window = { start = "-1y", end = "now" }   # the default: the year up to now, never in the future
    locale = "de_DE"          # for faker:... generators (Faker is optional)

    [postgres]
    users = 120               # a root table: its rows
    operations = 6.0          # a child: mean rows per parent (each parent gets 0 to twice the mean)

    [postgres.payments]       # the long form
    per = "transactions"      # the parent (default: the table its first NOT NULL foreign key names)
    share = 0.9               # or mean = 1.5
    columns = { provider = { values = ["stripe", "adyen"] }, card_last4 = "digits" }

    [mongo.executives]        # documents from the collection's $jsonSchema, per row of a parent
    per = "users"             # a table, or another collection or key family of the profile
    mean = 3.0
    fields.role = { values = ["Chief Strategy Officer", "Chief Financial Officer"] }
    fields.updatedAt = { after = "createdAt" }

    [redis.comms_dead]        # keys from the family's declaration
    per = "communications"
    share = 1.0
    where = { status = "failed" }              # only under parents whose field holds this value
    fields.failedAt = { from = "communications.timestamp" }

``users = N`` at the top is short for ``[postgres] users = N``. What fields
take (``from``, ``after``, kinds, values) is in :mod:`.records`. An unknown
table, column, collection or field is a declaration error naming the file
(checked against the declarations when the seed starts).
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..core.errors import ConfigError, DeclarationError

MEAN, SHARE = "mean", "share"
MAX_MEAN = 1000


STORE_TABLES = ("postgres", "mongo", "redis")
TOP_KEYS = frozenset({"description", "users", "seed", "password", "encryption_key", "window", "locale", "extends",
                      "regions", *STORE_TABLES})
AMOUNT_KEYS = ("rows", "mean", "share")   # one of them: a profile that extends another replaces the base's
TABLE_KEYS = frozenset({"rows", "per", "mean", "share", "columns"})
WINDOW_KEYS = frozenset({"start", "end"})
COLUMN_KEYS = frozenset({"kind", "values", "min", "max", "value", "nulls", "by_region"})
FIELD_KEYS = COLUMN_KEYS | {"from", "after"}     # a document's or key's field: also an ancestor's value, a later time
RECORD_KEYS = frozenset({"per", "mean", "share", "fields", "where", "value"})
DEFAULT_WINDOW = ("-1y", "now")
MAX_USERS = 1_000_000_000


@dataclass(frozen=True)
class ColumnSpec:
    """How one column is generated: a built-in kind, ``module:function``, ``faker:provider``, a list
    of values, a constant, bounds; ``nulls`` is the share of NULLs of a nullable column."""

    kind: str | None = None
    values: tuple | None = None
    low: float | None = None
    high: float | None = None
    value: object = None
    nulls: float | None = None
    source: str | None = None        # fields: "table.column" or "collection.field" of an ancestor (or a sibling)
    after: str | None = None         # fields: a time after this field's, before the window's end
    by_region: dict[str, tuple] | None = None   # values under a target's region (see .residency)


@dataclass(frozen=True)
class TableProfile:
    rows: int | None = None          # a root table's rows at --scale 1
    per: str | None = None           # the parent table (default: from the foreign keys)
    amount: float | None = None      # a child's mean per parent, or share of parents (share=True)
    share: bool = False
    number: float | None = None      # the short form: rows of a root, mean of a child
    columns: dict[str, ColumnSpec] = field(default_factory=dict)   # or a document's or key's fields
    where: dict[str, object] = field(default_factory=dict)          # records only under parents with these values
    value: ColumnSpec | None = None                                  # a key family's members or string value


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    users: int = 0
    seed: int = 0
    password: str = "sovren"
    description: str = ""
    encryption_key: str | None = None
    fingerprint: str = ""
    tables: dict[str, TableProfile] = field(default_factory=dict)
    documents: dict[str, TableProfile] = field(default_factory=dict)   # collections generated from $jsonSchema
    families: dict[str, TableProfile] = field(default_factory=dict)    # key families generated from their rules
    window: tuple[str, str] = DEFAULT_WINDOW
    locale: str | None = None
    region: str | None = None   # a target's residency: every user drawn there (see .residency)
    regions: dict[str, int] | None = None   # the regions users are drawn in, with weights (None: vocab.REGIONS)

    def records(self, name: str) -> "TableProfile | None":
        """The profile's entry for collection or key family ``name`` (collections first)."""
        return self.documents.get(name) or self.families.get(name)


def profile_names(seeds_dir: Path) -> list[str]:
    return sorted(p.stem for p in Path(seeds_dir).glob("*.toml")) if Path(seeds_dir).is_dir() else []


def load_profile(seeds_dir: Path, name: str) -> Profile:
    """``seeds_dir/<name>.toml`` as a Profile; ConfigError or DeclarationError (one sentence) otherwise."""
    path = Path(seeds_dir) / f"{name}.toml"
    if not name or "/" in name or not path.is_file():
        known = ", ".join(profile_names(seeds_dir)) or "none"
        raise ConfigError(f"No seed profile {name!r} in {seeds_dir} (profiles there: {known}).")
    table, raw = _with_base(Path(seeds_dir), path, (name,))
    return parse_profile(name, path, table, fingerprint=hashlib.sha256(raw).hexdigest()[:16])


def _read(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    try:
        return tomllib.loads(raw.decode("utf-8")), raw
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DeclarationError(path, None, f"is not valid TOML ({exc})") from None


def _with_base(seeds_dir: Path, path: Path, chain: tuple[str, ...]) -> tuple[dict, bytes]:
    """The profile's table over the one it ``extends`` (tables merged key by key), and the bytes of both."""
    table, raw = _read(path)
    base = table.pop("extends", None)
    if base is None:
        return table, raw
    if not isinstance(base, str) or not (seeds_dir / f"{base}.toml").is_file() or "/" in base:
        raise DeclarationError(path, "extends", f"must name another profile in {seeds_dir}, not {base!r}")
    if base in chain:
        raise DeclarationError(path, "extends", f"profile {base!r} extends this one in turn")
    under, more = _with_base(seeds_dir, seeds_dir / f"{base}.toml", chain + (base,))
    return _merged(under, table), more + raw


def _merged(base: dict, over: dict) -> dict:
    out = dict(base)
    if any(key in over for key in AMOUNT_KEYS):
        out = {k: v for k, v in out.items() if k not in AMOUNT_KEYS}
    for key, value in over.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def parse_profile(name: str, path: Path, table: dict, *, fingerprint: str = "") -> Profile:
    _known_keys(path, "", table, TOP_KEYS)
    seed = _integer(path, table, "seed", 0, 2**63 - 1, default=0)
    for key in ("description", "password", "encryption_key", "locale"):
        if key in table and not isinstance(table[key], str):
            raise DeclarationError(path, key, "must be a string")
    for store in STORE_TABLES:
        if not isinstance(table.get(store, {}), dict):
            raise DeclarationError(path, store, f"must be a table ([{store}])")
    tables = {name: _table(path, name, value) for name, value in table.get("postgres", {}).items()}
    if "users" in table:
        given = tables.get("users", TableProfile())
        if given.rows is not None or given.number is not None or given.amount is not None:
            raise DeclarationError(path, "users", "is given twice (at the top and in [postgres])")
        tables["users"] = replace(given, rows=_integer(path, table, "users", 1, MAX_USERS))
    if not any(t.rows or t.number for t in tables.values()):
        raise DeclarationError(path, "postgres", "names no table with rows (e.g. users = 100: how many at --scale 1)")
    documents = {name: _documents(path, name, value) for name, value in table.get("mongo", {}).items()}
    families = {name: _documents(path, name, value, "redis") for name, value in table.get("redis", {}).items()}
    users = (tables["users"].rows or int(tables["users"].number or 0)) if "users" in tables else 0
    return Profile(name=name, path=path, users=users, seed=seed, password=table.get("password", "sovren"),
                   description=table.get("description", ""), encryption_key=table.get("encryption_key"),
                   fingerprint=fingerprint, tables=tables, documents=documents, families=families,
                   window=_window(path, table),
                   locale=table.get("locale"), regions=_regions(path, table, {"postgres": tables, "mongo": documents,
                                                                                "redis": families}))


def _regions(path: Path, table: dict, stores: dict[str, dict[str, TableProfile]]) -> dict[str, int] | None:
    """``regions = { eu = 11, us = 9 }``: the regions users are drawn in and their weights; every
    ``by_region`` of a column or field names only these (checked here, so a typo is not a silent default)."""
    regions = table.get("regions")
    if regions is not None and (not isinstance(regions, dict) or not regions or not all(
            isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in regions.values())):
        raise DeclarationError(path, "regions", "must be a table of region = weight (a whole number above 0), "
                                                "e.g. { eu = 11, us = 9 }")
    for store, specs in stores.items():
        for name, spec in specs.items():
            given = {f"{'columns' if store == 'postgres' else 'fields'}.{c}": g for c, g in spec.columns.items()}
            for where, column in {**given, "value": spec.value}.items():
                unknown = sorted(set(getattr(column, "by_region", None) or ()) - set(regions or ()))
                if unknown:
                    raise DeclarationError(path, f"{store}.{name}.{where}.by_region.{unknown[0]}",
                                           "names a region that the profile's regions do not list (" +
                                           (", ".join(sorted(regions)) if regions else "it has no regions = {...}") + ")")
    return dict(regions) if regions is not None else None


def _known_keys(path: Path, where: str, table: dict, known: frozenset) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise DeclarationError(path, where + unknown[0], f"unknown key (expected {', '.join(sorted(known))})")


def _window(path: Path, table: dict) -> tuple[str, str]:
    window = table.get("window", {})
    if not isinstance(window, dict):
        raise DeclarationError(path, "window", 'must be a table ({ start = "-1y", end = "now" })')
    _known_keys(path, "window.", window, WINDOW_KEYS)
    from .clock import parse_moment

    for key in WINDOW_KEYS & set(window):
        if not isinstance(window[key], str) or parse_moment(window[key]) is None:
            raise DeclarationError(path, f"window.{key}", "must be now, an offset such as -1y, -90d, -6m, +1m, "
                                                          "or a date such as 2025-01-31")
    return window.get("start", DEFAULT_WINDOW[0]), window.get("end", DEFAULT_WINDOW[1])


def _table(path: Path, name: str, value: object) -> TableProfile:
    where = f"postgres.{name}"
    if isinstance(value, dict):
        return _long_table(path, where, value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise DeclarationError(path, where, "must be rows of a root table or a mean per parent (a number, 0 or "
                                            "more), or a table { rows, per, mean, share, columns }")
    if value > MAX_USERS:
        raise DeclarationError(path, where, f"must be at most {MAX_USERS:,}")
    return TableProfile(number=float(value))


def _long_table(path: Path, where: str, value: dict) -> TableProfile:
    _known_keys(path, where + ".", value, TABLE_KEYS)
    if len({"rows", "mean", "share"} & set(value)) > 1:
        raise DeclarationError(path, where, "takes one of rows, mean and share")
    rows = _integer(path, value, "rows", 0, MAX_USERS, where=where) if "rows" in value else None
    share = "share" in value
    amount = _amount(path, "postgres", where[9:], value["share" if share else "mean"], SHARE if share else MEAN) \
        if share or "mean" in value else None
    per = value.get("per")
    if per is not None and not isinstance(per, str):
        raise DeclarationError(path, where + ".per", "must be the name of the parent table")
    columns = value.get("columns", {})
    if not isinstance(columns, dict):
        raise DeclarationError(path, where + ".columns", "must be a table of column = generator")
    return TableProfile(rows=rows, per=per, amount=amount, share=share,
                        columns={c: _column(path, f"{where}.columns.{c}", spec) for c, spec in columns.items()})


def _documents(path: Path, name: str, value: object, store: str = "mongo") -> TableProfile:
    """``[mongo] name = { per = "users", mean = 2, fields = {...} }``: documents from the collection's $jsonSchema
    (or ``[redis]``: keys from the family's declaration), each under a row of ``per`` (a table, or another
    collection or family of the profile), optionally only under parents whose fields hold ``where``'s values."""
    where = f"{store}.{name}"
    if not isinstance(value, dict):
        raise DeclarationError(path, where, 'must be a table { per = "users", mean = 2 } (or share = 0.5): the '
                                            "records per row of their parent")
    _known_keys(path, where + ".", value, RECORD_KEYS if store == "redis" else RECORD_KEYS - {"value"})
    if not isinstance(value.get("per"), str):
        raise DeclarationError(path, where + ".per", "is required: the table, collection or family each record "
                                                     "belongs to")
    if len({"mean", "share"} & set(value)) != 1:
        raise DeclarationError(path, where, "takes one of mean and share (records per parent row)")
    share = "share" in value
    amount = _amount(path, store, name, value["share" if share else "mean"], SHARE if share else MEAN)
    fields, filters = value.get("fields", {}), value.get("where", {})
    if isinstance(fields, list) and all(isinstance(f, str) for f in fields):
        fields = dict.fromkeys(fields, {})   # fields = ["userId", "role"]: each its ancestor's value
    for key, given in (("fields", fields), ("where", filters)):
        if not isinstance(given, dict):
            raise DeclarationError(path, f"{where}.{key}", "must be a table of field = " +
                                   ("generator" if key == "fields" else "value"))
    return TableProfile(per=value["per"], amount=amount, share=share, where=dict(filters),
                        columns={f: _column(path, f"{where}.fields.{f}", spec, FIELD_KEYS) for f, spec in fields.items()},
                        value=_column(path, where + ".value", value["value"]) if "value" in value else None)


def _column(path: Path, where: str, spec: object, known: frozenset = COLUMN_KEYS) -> ColumnSpec:
    if isinstance(spec, str):
        return ColumnSpec(kind=spec)
    if isinstance(spec, list):
        spec = {"values": spec}
    if not isinstance(spec, dict):
        raise DeclarationError(path, where, 'must be a kind ("email"), "module:function", a list of values, '
                                            "or a table { kind, values, min, max, value, nulls }")
    _known_keys(path, where + ".", spec, known)
    for key in ("from", "after"):
        if key in spec and not isinstance(spec[key], str):
            raise DeclarationError(path, f"{where}.{key}", "must name a field" + (" (table.column or collection.field)"
                                                                                 if key == "from" else ""))
    values = spec.get("values")
    if values is not None and (not isinstance(values, list) or not values):
        raise DeclarationError(path, where + ".values", "must be a list of one or more values")
    for key in ("min", "max", "nulls"):
        if key in spec and (isinstance(spec[key], bool) or not isinstance(spec[key], (int, float))):
            raise DeclarationError(path, f"{where}.{key}", "must be a number")
    if "nulls" in spec and not 0 <= spec["nulls"] <= 1:
        raise DeclarationError(path, where + ".nulls", "is a share of NULLs: it must be between 0 and 1")
    kind = spec.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise DeclarationError(path, where + ".kind", "must be a string")
    by_region = spec.get("by_region")
    if by_region is not None and (not isinstance(by_region, dict) or not all(
            isinstance(v, list) and v for v in by_region.values())):
        raise DeclarationError(path, where + ".by_region", 'must be a table of region = a list of one or more '
                                                           'values, e.g. { eu = ["EUR"], us = ["USD"] }')
    return ColumnSpec(by_region={r: tuple(v) for r, v in by_region.items()} if by_region else None, kind=kind, values=tuple(values) if values else None, low=spec.get("min"),
                      high=spec.get("max"), value=spec.get("value"), nulls=spec.get("nulls"), source=spec.get("from"),
                      after=spec.get("after"))


def _integer(path: Path, table: dict, key: str, low: int, high: int, *, default: int = 0, where: str = "") -> int:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DeclarationError(path, f"{where}.{key}" if where else key, f"must be a whole number from {low} to {high:,}")
    return value


def _amount(path: Path, store: str, name: str, value: object, kind: str) -> float:
    where = f"{store}.{name}.{kind}"
    what = f"rows of {name} per parent" if kind == MEAN else f"share of parents with a row of {name}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise DeclarationError(path, where, f"must be a number of {what}, 0 or more")
    if kind == SHARE and value > 1:
        raise DeclarationError(path, where, f"is a share ({what}): it must be between 0 and 1")
    if value > MAX_MEAN:
        raise DeclarationError(path, where, f"must be at most {MAX_MEAN} ({what})")
    return float(value)
