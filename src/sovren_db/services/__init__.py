"""Throwaway local servers for development and tests.

``start_postgres``, ``start_redis``, ``start_redis_cluster``, ``start_mongod``
and ``start_mongo_cluster`` (a sharded cluster, one shard per zone) run the
server binaries found on this machine on free loopback ports with their data
in a folder of the caller's; ``stop`` ends exactly what was started, by PID.
``sovren-db up``/``down`` and the pytest harness both use these functions.
"""

from .local import (
    ClusterServer,
    Server,
    ServerUnavailable,
    docker_engine_answers,
    free_port,
    start_mongod,
    start_postgres,
    start_redis,
    start_redis_cluster,
    stop,
)
from .mongo_cluster import start_mongo_cluster

__all__ = [
    "ClusterServer", "Server", "ServerUnavailable", "docker_engine_answers", "free_port",
    "start_mongo_cluster", "start_mongod", "start_postgres", "start_redis", "start_redis_cluster", "stop",
]
from .pgbouncer import start_pgbouncer  # noqa: E402  (topology: a pooler in front of a local Postgres)

__all__ += ["start_pgbouncer"]
from .replica import promote, start_replica  # noqa: E402

__all__ += ["promote", "start_replica"]
from .tls import Certificates, enable_postgres_tls, make_certificates, start_mongod_tls, start_redis_tls  # noqa: E402

__all__ += ["Certificates", "enable_postgres_tls", "make_certificates", "start_mongod_tls", "start_redis_tls"]
from .sentinel import SentinelGroup, start_sentinel_group  # noqa: E402

__all__ += ["SentinelGroup", "start_sentinel_group"]
