"""The sovren-db pytest plugin: a migrated, seeded triad per test session, isolated per test.

Installed with sovren-db (entry point ``sovren_db`` in ``pytest11``) or loaded
with ``-p sovren_db.testing.plugin``. Once per session it migrates a template
Postgres database to head and seeds it, together with Redis and MongoDB, with a
profile (``ci`` unless the ini option ``sovren_db_profile`` says otherwise).
Each test asking for ``sovren_triad`` then gets:

- its own Postgres database, cloned from the template (``CREATE DATABASE ...
  TEMPLATE``: COPY'd rows, triggers, the audit chain and the seed manifest
  come along) and dropped afterwards;
- Redis flushed and restored to the seeded keys (DUMP/RESTORE, TTLs kept);
- MongoDB put back as seeded: every collection dropped and recreated with its
  seeded options (validator, level, action...), indexes and documents, views
  from their definitions; collections a test created are gone.

Servers: ``POSTGRES_URL``, ``REDIS_URL`` and ``MONGO_URL`` when set (the Redis
database there is flushed between tests), otherwise throwaway servers started
for the session (fixtures ``sovren_db_postgres_url``, ``sovren_db_redis_url``,
``sovren_db_mongo_url``: every name the plugin registers starts with
``sovren``, so it never shadows a project's own ``pg_url`` or ``redis_url``).
A store the project declares but that cannot be had here (MongoDB without a
mongod) is left out, as ``sovren-db`` does in development.

Options (ini, or the command line): ``sovren_db_profile`` / ``--sovren-db-profile``,
``sovren_db_scale``, ``sovren_db_seed``, ``sovren_db_root`` / ``--sovren-db-root``
(where pyproject.toml is), and ``sovren_db_seeding = false`` /
``--sovren-db-no-seed``: the triad migrated to head, nothing seeded
(``Triad.seed`` is None). Nothing assumes a table of Sovren's.

This module is imported by every pytest run where sovren-db is installed: it
imports nothing heavy until a fixture runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..seeds.engine import SeedReport

INI_OPTIONS = {
    "sovren_db_profile": ("seed profile of the session's triad (a file in seeds/)", "ci"),
    "sovren_db_scale": ("--scale of that seed", "1"),
    "sovren_db_seed": ("--seed of that seed (default: the profile's)", ""),
    "sovren_db_root": ("project root holding pyproject.toml (default: found from the rootdir)", ""),
    "sovren_db_seeding": ("false: migrate the triad to head and seed nothing", "true"),
}
COMMAND_LINE = ("sovren_db_profile", "sovren_db_root")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sovren-db")
    for name, (help_text, default) in INI_OPTIONS.items():
        parser.addini(name, help_text, default=default)
        if name in COMMAND_LINE:
            group.addoption("--" + name.replace("_", "-"), dest=name, default=None, help=help_text)
    group.addoption("--sovren-db-no-seed", action="store_true", dest="sovren_db_no_seed",
                    help="migrate the triad to head and seed nothing (as sovren_db_seeding = false)")


def _option(config: pytest.Config, name: str) -> str:
    given = config.getoption(name, default=None) if name in COMMAND_LINE else None
    return given if given is not None else config.getini(name)


def _seeding(config: pytest.Config) -> bool:
    return not config.getoption("sovren_db_no_seed", default=False) and \
        str(config.getini("sovren_db_seeding")).strip().lower() not in ("false", "0", "no", "off")


@dataclass
class Triad:
    """The servers of one test, at head and seeded; ``settings`` point at them."""

    settings: "Settings"
    seed: "SeedReport | None"          # None without seeding (--sovren-db-no-seed)
    postgres_url: str
    redis_url: str | None = None
    mongo_url: str | None = None
    mongo_database: str | None = None
    _mongo_client: Any = field(default=None, repr=False, compare=False)
    _redis_client: Any = field(default=None, repr=False, compare=False)

    def postgres(self, **kwargs: Any):
        """A psycopg connection to this test's database (use it as a context manager)."""
        import psycopg

        return psycopg.connect(self.postgres_url, **kwargs)

    def redis(self):
        """A redis-py client of this test's Redis (restored before each test), one per test."""
        import redis

        if not self.redis_url:
            pytest.skip("Redis is not among this project's stores")
        if self._redis_client is None:
            self._redis_client = redis.Redis.from_url(self.redis_url)
        return self._redis_client

    def mongo(self):
        """The pymongo Database of this session (restored before each test), on one client per test
        that the fixture closes afterwards."""
        import pymongo

        if not self.mongo_url:
            pytest.skip("MongoDB is not available here (set MONGO_URL or put a mongod binary on PATH)")
        if self._mongo_client is None:
            self._mongo_client = pymongo.MongoClient(self.mongo_url)
        return self._mongo_client[self.mongo_database]

    def close(self) -> None:
        """Close the clients :meth:`mongo` and :meth:`redis` opened, if any."""
        for attribute in ("_mongo_client", "_redis_client"):
            client = getattr(self, attribute)
            setattr(self, attribute, None)
            if client is not None:
                client.close()


@dataclass
class Template:
    settings: "Settings"
    seed: "SeedReport | None"
    database: str
    admin_url: str
    redis_keys: list = field(default_factory=list)
    mongo_snapshot: dict = field(default_factory=dict)   # snapshots.dump_mongo


def _project_root(config: pytest.Config) -> Path:
    from ..core.config import find_root
    from ..core.errors import ConfigError

    given = _option(config, "sovren_db_root")
    root = (config.rootpath / given).resolve() if given else None
    if root is not None and not (root / "pyproject.toml").is_file():
        pytest.fail(f"sovren-db: sovren_db_root {given!r} holds no pyproject.toml ({root}).", pytrace=False)
    try:
        return root or find_root(config.rootpath)
    except ConfigError:
        pytest.fail(f"sovren-db: no pyproject.toml in {config.rootpath} or above it; set sovren_db_root in the "
                    "pytest configuration or pass --sovren-db-root PATH.", pytrace=False)


@pytest.fixture(scope="session")
def sovren_db_servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sovren-db-servers")


@pytest.fixture(scope="session")
def sovren_db_postgres_url(sovren_db_servers_dir: Path):
    from .fixtures import postgres_server

    yield from postgres_server(sovren_db_servers_dir)


@pytest.fixture(scope="session")
def sovren_db_redis_url(sovren_db_servers_dir: Path):
    from .fixtures import redis_server

    yield from redis_server(sovren_db_servers_dir)


@pytest.fixture(scope="session")
def sovren_db_mongo_url(sovren_db_servers_dir: Path):
    from .fixtures import mongo_server

    yield from mongo_server(sovren_db_servers_dir)


def _server_urls(request: pytest.FixtureRequest, stores: tuple[str, ...]) -> dict[str, str | None]:
    urls: dict[str, str | None] = {"postgres": request.getfixturevalue("sovren_db_postgres_url")}
    urls["redis"] = request.getfixturevalue("sovren_db_redis_url") if "redis" in stores else None
    urls["mongo"] = None
    if "mongo" in stores:
        try:
            urls["mongo"] = request.getfixturevalue("sovren_db_mongo_url")
        except pytest.skip.Exception:
            pass  # no mongod: MongoDB is left out, the seed report says so
    return urls


@pytest.fixture(scope="session")
def sovren_triad_template(request: pytest.FixtureRequest):
    """Migrate and seed a template database (and Redis, MongoDB) once for the session."""
    from dataclasses import replace

    from .. import commands
    from ..core.config import load_settings
    from ..core.urls import with_database
    from ..seeds.engine import seed
    from ..seeds import snapshots

    config = request.config
    root = _project_root(config)
    urls = _server_urls(request, load_settings(root, strict=False).stores)
    name = f"sovren_tpl_{uuid.uuid4().hex[:10]}"
    admin = with_database(urls["postgres"], "postgres")
    snapshots.create_database(admin, name)
    settings = replace(load_settings(root, strict=False).with_urls(
        postgres=with_database(urls["postgres"], name), redis=urls["redis"], mongo=urls["mongo"]),
        mongo_database=f"sovren_test_{name[-10:]}")
    try:
        commands.migrate(settings)
        report = seed(settings, _option(config, "sovren_db_profile"), scale=float(config.getini("sovren_db_scale")),
                      seed=int(config.getini("sovren_db_seed")) if config.getini("sovren_db_seed") else None
                      ) if _seeding(config) else None
        template = Template(settings, report, name, admin, snapshots.dump_redis(settings),
                            snapshots.dump_mongo(settings))
        yield template
    finally:
        snapshots.drop_database(admin, name)
        snapshots.forget_session(settings)


@pytest.fixture
def sovren_triad(sovren_triad_template: Template):
    """This test's triad: a clone of the seeded template database, Redis and MongoDB restored."""
    from ..core.urls import with_database
    from ..seeds import snapshots

    template = sovren_triad_template
    name = f"sovren_t_{uuid.uuid4().hex[:12]}"
    snapshots.create_database(template.admin_url, name, template=template.database)
    url = with_database(template.settings.postgres_url, name)
    settings = template.settings.with_urls(postgres=url)
    snapshots.restore_redis(settings, template.redis_keys)
    snapshots.restore_mongo(settings, template.mongo_snapshot)
    triad = Triad(settings, template.seed, url, settings.redis_url, settings.mongo_url,
                  settings.mongo_database if settings.mongo_url else None)
    try:
        yield triad
    finally:
        try:
            triad.close()
        finally:
            snapshots.drop_database(template.admin_url, name)
