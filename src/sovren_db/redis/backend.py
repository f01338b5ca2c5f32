"""The Redis backend: one client (standalone or Cluster), the step ledger, the position.

Reserved keys share the hash tag ``{sovren-db}`` so that they live on one
slot of a cluster; they form the framework's own key families
(:data:`.state.FRAMEWORK_FAMILIES`), so the audit never calls them unknown.
"""

from __future__ import annotations

import json
import re
import time
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from ..core.errors import StoreUnavailable
from ..core.storeops import op_record, undo_from_record
from . import toimpl
from .replication import await_replicas, confirm_master, connection_facts
from .state import RESERVED_KEYS, as_text  # as_text: read from here by adopt

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..core.storeops import StoreOp
    from .patterns import KeyPattern

CONNECT_TIMEOUT = 5.0
SOCKET_TIMEOUT = 30.0


def _reason(exc: BaseException) -> str:
    from redis.sentinel import MasterNotFoundError

    text = str(exc).strip().rstrip(".")
    if isinstance(exc, MasterNotFoundError):
        return (f"{text.replace('No master found', 'no sentinel names a master')} that it sees up "
                "(a wrong master name, or a failover under way: run the command again once it is done)")
    if "NOAUTH" in text or "HELLO must be called with the client already authenticated" in text:
        return "authentication failed (the server requires a password and the URL gives none)"
    if isinstance(exc, redis.AuthenticationError) or "WRONGPASS" in text:
        return f"authentication failed ({text})"
    return text or type(exc).__name__


def open_client(url: str) -> tuple[redis.Redis | RedisCluster, bool]:
    """A pinged client for ``url`` and whether it is a cluster; StoreUnavailable otherwise."""
    client = None
    try:
        client = _standalone(url)
        client.ping()
        if not client.info("cluster").get("cluster_enabled"):
            return client, False
        client.close()
        client = None
        return open_cluster(url), True
    except (redis.RedisError, RedisClusterException, ValueError) as exc:  # ValueError: a URL redis-py cannot use
        if client is not None:
            client.close()
        raise StoreUnavailable("redis", url, _reason(exc)) from None


def _standalone(url: str) -> redis.Redis:
    from .sentinel import is_sentinel, sentinel_client

    if is_sentinel(url):
        return sentinel_client(url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT)
    return redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT)


def open_cluster(url: str) -> RedisCluster:
    cluster = RedisCluster.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=SOCKET_TIMEOUT)
    try:
        for node in cluster.get_primaries():
            try:
                cluster.get_redis_connection(node).ping()
            except redis.RedisError as exc:
                raise StoreUnavailable("redis", url, f"cluster node {node.host}:{node.port} does not answer "
                                                     f"({_reason(exc)})") from None
        info = cluster.cluster_info(target_nodes=RedisCluster.RANDOM)
        state = info.get("cluster_state", "ok") if isinstance(info, dict) else "ok"
        if state != "ok":
            raise StoreUnavailable("redis", url, f"the cluster state is {state}")
    except Exception:
        cluster.close()
        raise
    return cluster


class RedisBackend:
    """The connected Redis store, as the runtime and the operations see it."""

    store = "redis"

    def __init__(self, settings: "Settings"):
        self.settings = settings
        self.url: str | None = None
        self.client: redis.Redis | RedisCluster | None = None
        self.cluster = False
        self.pace: dict[str, float] = {}  # batch/rate given to the command (migrate --redis-batch/--redis-rate): they win
        self.identity: tuple[str, ...] | None = None   # the masters' run_id once connected (see .replication)
        self.replicas = 0                                # replicas connected then

    # -- connection ------------------------------------------------------
    def connect(self) -> None:
        self.url = self.settings.require_url("redis")
        self.client, self.cluster = open_client(self.url)
        with self.reporting_errors():
            self.identity, self.replicas = connection_facts(self)

    def confirm_master(self) -> None:
        """Refuse to write on a master other than the one connected to (:mod:`.replication`)."""
        confirm_master(self)

    def await_replicas(self, what: str) -> None:
        await_replicas(self, what)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    @contextmanager
    def reporting_errors(self) -> Iterator[None]:
        """Turn a driver error while talking to the server into StoreUnavailable (one sentence)."""
        try:
            yield
        except redis.RedisError as exc:
            raise StoreUnavailable("redis", self.url, _reason(exc)) from None

    def masters(self) -> list[tuple[str, redis.Redis]]:
        """(name, client) of every master: the one server, or each cluster primary."""
        if not self.cluster:
            kwargs = self.client.connection_pool.connection_kwargs
            return [(f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}", self.client)]
        return [(f"{n.host}:{n.port}", self.client.get_redis_connection(n)) for n in self.client.get_primaries()]

    def family_batches(self, pattern: "KeyPattern", count: int = 1000, values: dict[str, str] | None = None
                       ) -> Iterator[tuple[redis.Redis, list[bytes]]]:
        """Batches of keys matching ``pattern`` exactly (with ``values`` for some placeholders),
        each with the client of the node holding them.

        When ``values`` fix every placeholder there is at most one such key: it is asked
        for with ``EXISTS`` (routed to its slot's node on a cluster), not looked for with SCAN."""
        regex = pattern.regex()
        wanted = {name: value.encode() for name, value in (values or {}).items()}
        if all(name in wanted for name in pattern.placeholders):
            key = pattern.render(wanted)
            if _matches(regex.fullmatch(key), wanted) and self.client.exists(key):
                yield self.node_of(key), [key]
            return
        glob = pattern.glob(values)
        for _, client in self.masters():
            cursor = 0
            while True:
                cursor, keys = client.scan(cursor, match=glob, count=count)
                keys = [k for k in keys if _matches(regex.fullmatch(k), wanted)]
                if keys:
                    yield client, keys
                if cursor == 0:
                    break

    def node_of(self, key: bytes) -> redis.Redis:
        """The client of the master holding ``key``: the one server, or its slot's primary."""
        if not self.cluster:
            return self.client
        return self.client.get_redis_connection(self.client.get_node_from_key(key))

    # -- operations ------------------------------------------------------
    def execute(self, op: "StoreOp") -> None:
        # Destructive steps in protected environments are refused by the runtime (core.guard).
        self.confirm_master()
        toimpl.execute(op, self)

    def chain_drift(self, steps: list["StoreOp"]) -> list["StoreOp"]:
        """What the server lost of the state ``steps`` leave (see :func:`.chain.chain_drift`)."""
        from .chain import chain_drift

        with self.reporting_errors():
            return chain_drift(self, steps)

    # -- registry --------------------------------------------------------
    def registry(self) -> dict[str, dict]:
        raw = self.client.hgetall(RESERVED_KEYS["registry"])
        return {k.decode(): json.loads(v) for k, v in raw.items()}

    def publish(self, entry: str, document: dict) -> None:
        self.client.hset(RESERVED_KEYS["registry"], entry, json.dumps(document, sort_keys=True))

    def published(self, entry: str) -> dict | None:
        raw = self.client.hget(RESERVED_KEYS["registry"], entry)
        return json.loads(raw) if raw else None

    def unpublish(self, entry: str) -> None:
        self.client.hdel(RESERVED_KEYS["registry"], entry)

    def update_registry(self, publish: dict[str, dict], unpublish: list[str] = ()) -> None:
        """Publish and retire entries in one MULTI: readers never see one change without the other."""
        pipe = self.client.pipeline(transaction=True)
        if publish:
            pipe.hset(RESERVED_KEYS["registry"],
                      mapping={entry: json.dumps(doc, sort_keys=True) for entry, doc in publish.items()})
        if unpublish:
            pipe.hdel(RESERVED_KEYS["registry"], *unpublish)
        pipe.execute()

    # -- server configuration -------------------------------------------
    def config_values(self, names: list[str]) -> dict[str, list[str]]:
        """Per parameter, its value on every master (one entry per master)."""
        values: dict[str, list[str]] = {name: [] for name in names}
        for _, client in self.masters():
            for name in names:
                got = client.config_get(name)
                values[name].append(as_text(next(iter(got.values()), "")) if got else "")
        return values

    def config_set(self, name: str, value: str) -> None:
        if self.cluster:
            self.client.config_set(name, value, target_nodes=RedisCluster.ALL_NODES)
        else:
            self.client.config_set(name, value)

    # -- ledger and position ---------------------------------------------
    def ledger_keys(self, prefix: str) -> set[str]:
        return {as_text(k) for k in self.client.hkeys(RESERVED_KEYS["ledger"]) if as_text(k).startswith(prefix)}

    def undo_of(self, op: "StoreOp") -> "StoreOp | None":
        return toimpl.undo(op, self)

    def ledger_record(self, key: str, op: "StoreOp", undo: "StoreOp | None" = None) -> None:
        self.confirm_master()
        at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        record = {"op": op.op_name, "description": op.describe(), "at": at, "undo": op_record(undo)}
        self.client.hset(RESERVED_KEYS["ledger"], key, json.dumps(record))

    def ledger_undo_steps(self, prefix: str) -> "dict[str, StoreOp | None]":
        entries = self.client.hgetall(RESERVED_KEYS["ledger"])
        return {as_text(key): undo_from_record(json.loads(value).get("undo"))
                for key, value in entries.items() if as_text(key).startswith(prefix)}

    def ledger_forget(self, prefix: str) -> None:
        keys = self.ledger_keys(prefix)
        if keys:
            self.client.hdel(RESERVED_KEYS["ledger"], *keys)

    def position(self) -> str | None:
        value = self.client.get(RESERVED_KEYS["position"])
        return as_text(value) if value else None

    def set_position(self, revision: str | None) -> None:
        self.confirm_master()
        if revision is None:
            self.client.delete(RESERVED_KEYS["position"])
        else:
            self.client.set(RESERVED_KEYS["position"], revision)


def _matches(match: "re.Match[bytes] | None", wanted: dict[str, bytes]) -> bool:
    return match is not None and all(match[name] == value for name, value in wanted.items())
