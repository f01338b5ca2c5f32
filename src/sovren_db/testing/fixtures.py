"""Pytest fixtures giving tests real servers.

A server named by ``POSTGRES_URL``, ``REDIS_URL`` or ``MONGO_URL`` is used as
is; otherwise the session starts its own from local binaries
(:mod:`sovren_db.services`) on free loopback ports and stops it at the end.
MongoDB is only ever a real ``mongod``: without ``MONGO_URL`` or a ``mongod``
binary the tests that need it are skipped, saying so.

Each test gets its own Postgres database (``pg_url``), a flushed Redis
database (``redis_url``) and its own Mongo database (``mongo_url``). These
short names are sovren-db's own test harness (``tests/conftest.py`` loads
this module); the pytest plugin users get registers only ``sovren_db_*``
fixtures and ``sovren_triad``, built on :func:`postgres_server` and its kin.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

import pytest

from .. import services
from ..core.urls import with_database

NO_MONGO = "no MongoDB here: set MONGO_URL or put a mongod binary on PATH"
NO_MONGO_CLUSTER = (
    "no sharded MongoDB here: set MONGO_SHARDED_URL (a mongos whose shards serve zones eu and us) "
    "or put mongod and mongos binaries on PATH"
)


@pytest.fixture(scope="session", autouse=True)
def _no_server_data_left_behind(tmp_path_factory: pytest.TempPathFactory):
    """Run as root, a server keeps its data outside a base the server's account cannot enter (every
    test's tmp_path), behind ``base/data-root``; pytest keeps those bases, so at the session's end the
    data of every server that has stopped is removed here (one that still runs is left alone)."""
    yield
    for pointer in tmp_path_factory.getbasetemp().rglob(services.local.POINTER):
        root = pointer.resolve()
        if pointer.is_symlink() and root.name.startswith("sovren-db-pg-") and not (
                root / "pgdata" / "postmaster.pid").exists():
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def sovren_servers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


def _started(server):
    yield server.url
    services.stop(server)
    data = Path(server.data_dir)
    if data.name == "pgdata":
        shutil.rmtree(data.parent, ignore_errors=True)


def postgres_server(folder: Path):
    """``POSTGRES_URL``, else a throwaway server under ``folder`` for as long as the generator runs."""
    if os.environ.get("POSTGRES_URL"):
        yield os.environ["POSTGRES_URL"]
        return
    yield from _started(services.start_postgres(folder / "postgres"))


def redis_server(folder: Path):
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"]
        return
    yield from _started(services.start_redis(folder / "redis"))


def mongo_server(folder: Path):
    """``MONGO_URL``, else a mongod under ``folder``; a skip saying why where neither exists."""
    if os.environ.get("MONGO_URL"):
        yield os.environ["MONGO_URL"]
        return
    if not shutil.which("mongod"):
        pytest.skip(NO_MONGO)
    yield from _started(services.start_mongod(folder / "mongo"))


@pytest.fixture(scope="session")
def postgres_server_url(sovren_servers_dir: Path):
    yield from postgres_server(sovren_servers_dir)


@pytest.fixture
def pg_url(postgres_server_url: str):
    """A fresh, empty database on the session's server, dropped afterwards."""
    yield from fresh_database(postgres_server_url)


def fresh_database(server_url: str):
    """Yield the URL of a new empty database on ``server_url``; drop it afterwards."""
    from ..seeds.snapshots import create_database, drop_database

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = with_database(server_url, "postgres")
    create_database(admin, name)
    yield with_database(server_url, name)
    drop_database(admin, name)


@pytest.fixture(scope="session")
def redis_server_url(sovren_servers_dir: Path):
    yield from redis_server(sovren_servers_dir)


@pytest.fixture
def redis_url(redis_server_url: str):
    """The session's Redis, database flushed before the test."""
    import redis

    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    client.close()
    yield redis_server_url


@pytest.fixture(scope="session")
def redis_cluster(sovren_servers_dir: Path):
    """A three-master Redis Cluster on loopback ports, for the whole session."""
    cluster = services.start_redis_cluster(sovren_servers_dir / "cluster", masters=3)
    yield cluster
    services.stop(cluster)


@pytest.fixture(scope="session")
def mongo_server_url(sovren_servers_dir: Path):
    yield from mongo_server(sovren_servers_dir)


@pytest.fixture
def mongo_url(mongo_server_url: str):
    """A database of its own on the session's mongod, dropped afterwards."""
    yield from _own_database(mongo_server_url)


@pytest.fixture(scope="session")
def mongo_cluster_server_url(sovren_servers_dir: Path):
    """A mongos whose shards serve zones eu and us: ``MONGO_SHARDED_URL``, or a local cluster
    started from mongod and mongos binaries (``services.start_mongo_cluster``)."""
    if os.environ.get("MONGO_SHARDED_URL"):
        yield os.environ["MONGO_SHARDED_URL"]
        return
    if not (shutil.which("mongod") and shutil.which("mongos")):
        pytest.skip(NO_MONGO_CLUSTER)
    yield from _started(services.start_mongo_cluster(sovren_servers_dir / "mongo-cluster"))


@pytest.fixture
def mongo_cluster_url(mongo_cluster_server_url: str):
    """A database of its own on the session's sharded cluster, dropped afterwards."""
    yield from _own_database(mongo_cluster_server_url)


def _own_database(server_url: str):
    import pymongo

    name = f"t_{uuid.uuid4().hex[:12]}"
    yield with_database(server_url, name)
    client = pymongo.MongoClient(server_url, serverSelectionTimeoutMS=5000)
    client.drop_database(name)
    client.close()
