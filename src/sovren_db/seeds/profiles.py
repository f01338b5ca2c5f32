"""Seed profiles: ``seeds/<name>.toml``, validated as they are loaded.

A profile says how many users to create (``users``, multiplied by
``--scale``) and, per store, how much of everything else there is relative to
its parent: a *mean* number of children per parent (each parent gets from 0
to twice the mean) or a *share* of the parents that get one (0 to 1)::

    description = "Small and quick, for CI."
    users = 120
    seed = 1                  # the default of --seed
    password = "sovren-ci"    # every seeded user's password (one PBKDF2 hash)
    encryption_key = "..."    # for columns declared Encrypted, unless SOVREN_DB_ENCRYPTION_KEY is set

    [postgres]
    operations = 6.0          # mean per user

    [redis]
    session = 0.6             # share of users with a session

:data:`ENTITIES` lists every name a profile may use, with its parent. Names
left out are not seeded.
"""

from __future__ import annotations

import hashlib
import math
import tomllib
from dataclasses import dataclass, field
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
    "subscriptions": Entity("postgres", "users", MEAN, "subscriptions per user"),
    "transactions": Entity("postgres", "users", MEAN, "transactions per user"),
    "payments": Entity("postgres", "transactions", SHARE, "share of succeeded or refunded transactions paid"),
    "operations": Entity("postgres", "users", MEAN, "operations per user, over the operations partitions"),
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
TOP_KEYS = frozenset({"description", "users", "seed", "password", "encryption_key", *STORE_TABLES})
MAX_USERS = 1_000_000_000


@dataclass(frozen=True)
class Profile:
    name: str
    path: Path
    users: int
    seed: int = 0
    password: str = "sovren"
    description: str = ""
    encryption_key: str | None = None
    amounts: dict[str, float] = field(default_factory=dict)
    fingerprint: str = ""
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
    unknown = sorted(set(table) - TOP_KEYS)
    if unknown:
        raise DeclarationError(path, unknown[0], f"unknown key (expected {', '.join(sorted(TOP_KEYS))})")
    users = _integer(path, table, "users", 1, MAX_USERS, required=True)
    seed = _integer(path, table, "seed", 0, 2**63 - 1, default=0)
    for key in ("description", "password", "encryption_key"):
        if key in table and not isinstance(table[key], str):
            raise DeclarationError(path, key, "must be a string")
    amounts = {}
    for store in STORE_TABLES:
        section = table.get(store, {})
        if not isinstance(section, dict):
            raise DeclarationError(path, store, f"must be a table ([{store}])")
        for entity, value in section.items():
            amounts[entity] = _amount(path, store, entity, value)
    return Profile(name=name, path=path, users=users, seed=seed, password=table.get("password", "sovren"),
                   description=table.get("description", ""), encryption_key=table.get("encryption_key"),
                   amounts=amounts, fingerprint=fingerprint)


def _integer(path: Path, table: dict, key: str, low: int, high: int, *, required: bool = False,
             default: int = 0) -> int:
    if key not in table:
        if required:
            raise DeclarationError(path, key, "is required (how many users to create at --scale 1)")
        return default
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise DeclarationError(path, key, f"must be a whole number from {low} to {high:,}")
    return value


def _amount(path: Path, store: str, name: str, value: object) -> float:
    where = f"{store}.{name}"
    entity = ENTITIES.get(name)
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
