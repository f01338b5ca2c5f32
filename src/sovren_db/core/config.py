"""Configuration: ``[tool.sovren-db]`` in pyproject.toml, environment, ``.env``.

Precedence for server URLs: the process environment, then ``.env`` at the
project root, then the servers written by ``sovren-db up`` in
``.sovren/servers.json``. A store with no URL at all is *unconfigured*:
skipped in development, an error under ``--strict`` (the default when ``CI``
is set).
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path

from dotenv import dotenv_values

from .config_check import DURATION_KEYS, check_table, postgres_duration
from .errors import ConfigError
from .urls import check_url, remember

STORES = ("postgres", "mongo", "redis")
URL_VARS = {"postgres": "POSTGRES_URL", "mongo": "MONGO_URL", "redis": "REDIS_URL"}
URL_SCHEMES = {
    "postgres": ("postgresql", "postgres"),
    "mongo": ("mongodb", "mongodb+srv"),
    "redis": ("redis", "rediss", "unix"),
}
STATE_DIR = ".sovren"
SERVERS_FILE = "servers.json"

# What a project gets for the keys its [tool.sovren-db] table leaves out.
DEFAULT_LOCK_TIMEOUT = "5s"
DEFAULT_STATEMENT_TIMEOUT = "15min"
DEFAULT_MONGO_DATABASE = "sovren_ai"
DEFAULT_ENVIRONMENT = "development"
DEFAULT_PROTECTED_ENVIRONMENTS = ("production", "staging")
DEFAULT_LATENCY_BUDGET = "4ms"  # how long the workload may wait behind one lock attempt of migrate
DEFAULT_LOCK_WAIT_DEADLINE = "5min"  # how long migrate waits for a lock in all before exit 1
# Names every project knows without declaring them; any other unprotected name is printed (a typo of
# a protected one, "prodution", would otherwise pass silently as unprotected).
KNOWN_UNPROTECTED_ENVIRONMENTS = (DEFAULT_ENVIRONMENT, "dev", "local", "test", "testing", "ci")


def environment_key(name: str) -> str:
    """How environment names compare: case and surrounding whitespace do not count ('Production ' is production)."""
    return name.strip().casefold()


@dataclass(frozen=True)
class Settings:
    root: Path
    urls: dict[str, str | None]
    postgres_dir: Path
    mongo_dir: Path
    redis_dir: Path
    seeds_dir: Path
    migrations_dir: Path
    lock_timeout: str = DEFAULT_LOCK_TIMEOUT
    statement_timeout: str = DEFAULT_STATEMENT_TIMEOUT
    mongo_database: str = DEFAULT_MONGO_DATABASE
    environment: str = DEFAULT_ENVIRONMENT
    protected_environments: tuple[str, ...] = DEFAULT_PROTECTED_ENVIRONMENTS
    strict: bool = False
    stores: tuple[str, ...] = STORES
    url_sources: dict[str, str] = field(default_factory=dict)
    latency_budget: str = DEFAULT_LATENCY_BUDGET
    lock_wait_deadline: str = DEFAULT_LOCK_WAIT_DEADLINE
    index_build_workers: int = 0  # parallel maintenance workers of a concurrent build: the cores stay the workload's
    index_build_memory: str | None = None  # maintenance_work_mem of a build; None: the server's
    region: str | None = None  # a target's data residency: seed draws its users there (seeds/residency.py)
    audit_capture: str = "auto"  # [audit] capture: native (C, pgext/sovren_audit), plpgsql, or auto (native if it loads)

    @property
    def postgres_url(self) -> str | None:
        return self.urls.get("postgres")

    @property
    def mongo_url(self) -> str | None:
        return self.urls.get("mongo")

    @property
    def redis_url(self) -> str | None:
        return self.urls.get("redis")

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    @property
    def protected(self) -> bool:
        return environment_key(self.environment) in {environment_key(e) for e in self.protected_environments}

    @property
    def environment_note(self) -> str | None:
        """A sentence when the environment is a name this project does not know (allowed, unprotected)."""
        known = {environment_key(e) for e in (*self.protected_environments, *KNOWN_UNPROTECTED_ENVIRONMENTS)}
        if environment_key(self.environment) in known:
            return None
        return (f"environment {self.environment!r} is not one this project knows: it is treated as unprotected "
                f"(protected: {', '.join(self.protected_environments) or 'none'}).")

    def configured(self, store: str) -> bool:
        return bool(self.urls.get(store))

    def require_url(self, store: str) -> str:
        url = self.urls.get(store)
        if not url:
            raise ConfigError(
                f"{URL_VARS[store]} is not set: export it, put it in {self.root / '.env'}, "
                f"or run 'sovren-db up' to start a local {store} server."
            )
        return url

    def with_urls(self, **urls: str | None) -> "Settings":
        merged = dict(self.urls)
        merged.update(urls)
        return replace(self, urls=merged)


def find_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` holding a pyproject.toml."""
    start = (start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    raise ConfigError(
        f"No pyproject.toml found in {start} or any folder above it; "
        "run sovren-db from the project root or pass --root."
    )


def _read_tool_table(root: Path) -> dict:
    path = root / "pyproject.toml"
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}.") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read: {exc.strerror}.") from None
    table = data.get("tool", {}).get("sovren-db", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.sovren-db] must be a table.")
    check_table(path, table)
    return table


def _servers_file_urls(root: Path) -> dict[str, str]:
    path = root / STATE_DIR / SERVERS_FILE
    if not path.is_file():
        return {}
    try:
        servers = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {s: info["url"] for s, info in servers.items() if isinstance(info, dict) and info.get("url")}


def _duration(env: dict[str, str], table: dict, key: str, default: str) -> str:
    """A timeout from its environment variable, else the project's key, else ``default``; checked as Postgres
    reads it (the table's keys were checked at load)."""
    var = DURATION_KEYS[key]
    if env.get(var):
        return postgres_duration(env[var], f"the environment variable {var}")
    return str(table.get(key, default)).strip()


def load_settings(root: Path | None = None, *, strict: bool | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Read the whole configuration once; every command starts here."""
    root = Path(root).resolve() if root else find_root()
    env = dict(os.environ if environ is None else environ)
    table = _read_tool_table(root)
    dotenv = {k: v for k, v in dotenv_values(root / ".env").items() if v is not None} if (root / ".env").is_file() else {}
    servers = _servers_file_urls(root)

    urls: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for store, var in URL_VARS.items():
        for source, values in (("environment", env), (".env", dotenv), ("sovren-db up", servers)):
            key = var if source != "sovren-db up" else store
            value = values.get(key)
            remember(value)
            if value:
                urls[store] = check_url(value, URL_SCHEMES[store], var)
                sources[store] = source
                break
        else:
            urls[store] = None

    def folder(key: str, default: str) -> Path:
        return root / str(table.get(key, default))

    if strict is None:
        strict = bool(env.get("CI"))
    environment = env.get("SOVREN_ENV") or str(table.get("environment", DEFAULT_ENVIRONMENT))
    return Settings(
        root=root,
        urls=urls,
        postgres_dir=folder("postgres_dir", "postgres"),
        mongo_dir=folder("mongo_dir", "mongo"),
        redis_dir=folder("redis_dir", "redis"),
        seeds_dir=folder("seeds_dir", "seeds"),
        migrations_dir=folder("migrations_dir", "migrations"),
        lock_timeout=_duration(env, table, "lock_timeout", DEFAULT_LOCK_TIMEOUT),
        statement_timeout=_duration(env, table, "statement_timeout", DEFAULT_STATEMENT_TIMEOUT),
        mongo_database=_mongo_database(urls.get("mongo"), table),
        environment=environment,
        protected_environments=tuple(table.get("protected_environments", DEFAULT_PROTECTED_ENVIRONMENTS)),
        strict=strict,
        stores=_stores(env, table, root),
        url_sources=sources,
        latency_budget=_duration_key(table, "latency_budget", DEFAULT_LATENCY_BUDGET, root),
        lock_wait_deadline=_duration_key(table, "lock_wait_deadline", DEFAULT_LOCK_WAIT_DEADLINE, root),
        **_index_build_keys(table, root),
        audit_capture=_audit_capture(env, table),
    )


AUDIT_CAPTURES = ("auto", "native", "plpgsql")


def _audit_capture(env: dict[str, str], table: dict) -> str:
    """SOVREN_DB_AUDIT_CAPTURE, else [tool.sovren-db.audit] capture (checked by config_check), else auto."""
    value = env.get("SOVREN_DB_AUDIT_CAPTURE") or table.get("audit", {}).get("capture", "auto")
    if value not in AUDIT_CAPTURES:
        raise ConfigError(f"the environment variable SOVREN_DB_AUDIT_CAPTURE must be one of "
                          f"{', '.join(AUDIT_CAPTURES)}, not {value!r}.")
    return value


def _index_build_keys(table: dict, root: Path) -> dict:
    from ..postgres.indexbuild import build_memory, build_workers

    try:
        return {"index_build_workers": build_workers(table.get("index_build_workers", 0)),
                "index_build_memory": build_memory(table.get("index_build_memory"))}
    except ConfigError as exc:
        raise ConfigError(f"{root / 'pyproject.toml'}: [tool.sovren-db] {exc}") from None


def _duration_key(table: dict, key: str, default: str, root: Path) -> str:
    from ..postgres.lockwait import duration_seconds

    value = table.get(key, default)
    try:
        duration_seconds(value, key)
    except ConfigError as exc:
        raise ConfigError(f"{root / 'pyproject.toml'}: [tool.sovren-db] {exc}") from None
    return str(value)


def _mongo_database(url: str | None, table: dict) -> str:
    """The database MONGO_URL names, as POSTGRES_URL names Postgres's; else the project's
    ``mongo_database``; else DEFAULT_MONGO_DATABASE. A URL is per environment, the project file is not."""
    if url:
        path = url.split("://", 1)[-1].split("/", 1)
        if len(path) == 2:
            name = path[1].split("?", 1)[0]
            if name:
                return name
    return str(table.get("mongo_database", DEFAULT_MONGO_DATABASE))


def _stores(env: dict[str, str], table: dict, root: Path) -> tuple[str, ...]:
    """The stores this project declares (``stores`` key or SOVREN_DB_STORES); Postgres always."""
    raw = env.get("SOVREN_DB_STORES")
    stores = [s.strip() for s in raw.split(",") if s.strip()] if raw else list(table.get("stores", STORES))
    unknown = [s for s in stores if s not in STORES]
    if unknown:
        raise ConfigError(f"{root / 'pyproject.toml'}: unknown store {unknown[0]!r} in stores "
                          f"(known: {', '.join(STORES)}).")
    if "postgres" not in stores:
        stores.insert(0, "postgres")
    return tuple(s for s in STORES if s in stores)
