"""Fixtures of the Redis tests. Servers come from the harness (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster
from redis_helpers import SMALL, connect, write_project

@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_project(tmp_path / "project", SMALL)


@pytest.fixture
def backend(project: Path, redis_url: str):
    connected = connect(project, redis_url)
    yield connected
    connected.close()


@pytest.fixture
def client(redis_url: str):
    connected = redis.Redis.from_url(redis_url)
    yield connected
    connected.close()


@pytest.fixture
def cluster_url(redis_cluster) -> str:
    """The session's cluster with every master flushed."""
    for host, port in redis_cluster.nodes:
        node = redis.Redis(host=host, port=port)
        node.flushall()
        node.close()
    return redis_cluster.url


@pytest.fixture
def cluster_backend(project, cluster_url):
    backend = connect(project, cluster_url)
    yield backend
    backend.close()


@pytest.fixture
def cluster_client(cluster_url):
    client = RedisCluster.from_url(cluster_url.rsplit("/", 1)[0])
    yield client
    client.close()
