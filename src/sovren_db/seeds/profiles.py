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

    [redis]
    session = 0.6             # Sovren's MongoDB and Redis generators: mean or share per parent

``users = N`` at the top is short for ``[postgres] users = N``. :data:`ENTITIES`
lists the MongoDB and Redis names with their parent. An unknown table or
column is a declaration error naming the file (checked against the schema
when the seed starts).
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


@dataclass(frozen=True)
class Entity:
    store: str
    parent: str
    kind: str  # MEAN children per parent, or SHARE of parents with one
    what: str


ENTITIES: dict[str, Entity] = {
    "executives": Entity("mongo", "users", MEAN, "executives per user (the user's shadow board)"),
    "communications": Entity("mongo", "users", MEAN, "sent messages per user"),
    "scenario_simulations": Entity("mongo", "operations", SHARE, "share of operations with a simulation"),
    "analytics_payloads": Entity("mongo", "operations", SHARE, "share of operations with an analytics payload"),
    "session": Entity("redis", "users", SHARE, "share of users signed in"),
    "session_devices": Entity("redis", "session", SHARE, "share of sessions with a device set"),
    "executive_cache": Entity("redis", "executives", SHARE, "share of executives cached"),
    "simulation_cache": Entity("redis", "scenario_simulations", SHARE, "share of simulations cached"),
    "analytics_cache": Entity("redis", "users", MEAN, "cached analytics queries per user"),
    "comms_outbox": Entity("redis", "users", MEAN, "queued messages per user"),
    "comms_status": Entity("redis", "comms_outbox", SHARE, "share of queued messages with a status"),
    "comms_dead": Entity("redis", "communications", SHARE, "share of failed messages dead-lettered"),
}
STORE_TABLES = ("postgres", "mongo", "redis")
TOP_KEYS = frozenset({"description", "users", "seed", "password", "encryption_key", "window", "locale",
                      *STORE_TABLES})
TABLE_KEYS = frozenset({"rows", "per", "mean", "share", "columns"})
WINDOW_KEYS = frozenset({"start", "end"})
COLUMN_KEYS = frozenset({"kind", "values", "min", "max", "value", "nulls"})
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


@dataclass(frozen=True)
class TableProfile:
    rows: int | None = None          # a root table's rows at --scale 1
    per: str | None = None           # the parent table (default: from the foreign keys)
    amount: float | None = None      # a child's mean per parent, or share of parents (share=True)
    share: bool = False
    number: float | None = None      # the short form: rows of a root, mean of a child
    columns: dict[str, ColumnSpec] = field(default_factory=dict)


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    users: int = 0
    seed: int = 0
    password: str = "sovren"
    description: str = ""
    encryption_key: str | None = None
    amounts: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""
    tables: dict[str, TableProfile] = field(default_factory=dict)
    documents: dict[str, TableProfile] = field(default_factory=dict)   # collections generated from $jsonSchema
    families: dict[str, TableProfile] = field(default_factory=dict)    # key families generated from their rules
    window: tuple[str, str] = DEFAULT_WINDOW
    locale: str | None = None
    region: str | None = None   # a target's residency: every user drawn there (see .residency)

    def amount(self, entity: str) -> float:
        return self.amounts.get(entity, 0.0)


def profile_names(seeds_dir: Path) -> list[str]:
    return sorted(p.stem for p in Path(seeds_dir).glob("*.toml")) if Path(seeds_dir).is_dir() else []


def load_profile(seeds_dir: Path, name: str) -> Profile:
    """``seeds_dir/<name>.toml`` as a Profile; ConfigError or DeclarationError (one sentence) otherwise."""
    path = Path(seeds_dir) / f"{name}.toml"
    if not name or "/" in name or not path.is_file():
        known = ", ".join(profile_names(seeds_dir)) or "none"
        raise ConfigError(f"No seed profile {name!r} in {seeds_dir} (profiles there: {known}).")
    raw = path.read_bytes()
    try:
        table = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DeclarationError(path, None, f"is not valid TOML ({exc})") from None
    return parse_profile(name, path, table, fingerprint=hashlib.sha256(raw).hexdigest()[:16])


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
    amounts = {entity: _amount(path, store, entity, value) for store in ("mongo", "redis")
               for entity, value in table.get(store, {}).items() if not isinstance(value, dict)}
    documents = {name: _documents(path, name, value) for name, value in table.get("mongo", {}).items()
                 if isinstance(value, dict)}
    families = {name: _documents(path, name, value, "redis") for name, value in table.get("redis", {}).items()
                if isinstance(value, dict)}
    users = (tables["users"].rows or int(tables["users"].number or 0)) if "users" in tables else 0
    return Profile(name=name, path=path, users=users, seed=seed, password=table.get("password", "sovren"),
                   description=table.get("description", ""), encryption_key=table.get("encryption_key"),
                   amounts=amounts, fingerprint=fingerprint, tables=tables, documents=documents, families=families,
                   window=_window(path, table),
                   locale=table.get("locale"))


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


def _documents(path: Path, name: str, value: dict, store: str = "mongo") -> TableProfile:
    """``[mongo] name = { per = "users", mean = 2 }``: documents from the collection's $jsonSchema (or
    ``[redis]``: keys from the family's declaration)."""
    where = f"{store}.{name}"
    _known_keys(path, where + ".", value, frozenset({"per", "mean", "share"}))
    if not isinstance(value.get("per"), str):
        raise DeclarationError(path, where + ".per", "is required: the Postgres table each record belongs to")
    if len({"mean", "share"} & set(value)) != 1:
        raise DeclarationError(path, where, "takes one of mean and share (records per parent row)")
    share = "share" in value
    amount = _amount(path, store, name, value["share" if share else "mean"], SHARE if share else MEAN)
    return TableProfile(per=value["per"], amount=amount, share=share)


def _column(path: Path, where: str, spec: object) -> ColumnSpec:
    if isinstance(spec, str):
        return ColumnSpec(kind=spec)
    if isinstance(spec, list):
        spec = {"values": spec}
    if not isinstance(spec, dict):
        raise DeclarationError(path, where, 'must be a kind ("email"), "module:function", a list of values, '
                                            "or a table { kind, values, min, max, value, nulls }")
    _known_keys(path, where + ".", spec, COLUMN_KEYS)
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
    return ColumnSpec(kind=kind, values=tuple(values) if values else None, low=spec.get("min"),
                      high=spec.get("max"), value=spec.get("value"), nulls=spec.get("nulls"))


def _integer(path: Path, table: dict, key: str, low: int, high: int, *, default: int = 0, where: str = "") -> int:
    if key not in table:
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DeclarationError(path, f"{where}.{key}" if where else key, f"must be a whole number from {low} to {high:,}")
    return value


def _amount(path: Path, store: str, name: str, value: object, kind: str | None = None) -> float:
    where = f"{store}.{name}" + ({MEAN: ".mean", SHARE: ".share"}[kind] if kind else "")
    entity = ENTITIES.get(name) if kind is None else Entity(store, "", kind, f"rows of {name} per parent")
    if entity is None or entity.store != store:
        known = ", ".join(n for n, e in ENTITIES.items() if e.store == store)
        raise DeclarationError(path, where, f"nothing named {name!r} can be seeded in {store} (known: {known})")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise DeclarationError(path, where, f"must be a number of {entity.what}, 0 or more")
    if entity.kind == SHARE and value > 1:
        raise DeclarationError(path, where, f"is a share ({entity.what}): it must be between 0 and 1")
    if value > MAX_MEAN:
        raise DeclarationError(path, where, f"must be at most {MAX_MEAN} ({entity.what})")
    return float(value)
