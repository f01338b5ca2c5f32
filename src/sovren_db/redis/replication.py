"""What asynchronous replication may take away, and the two guards against it.

A Redis master acknowledges a write before its replicas have it; killed then,
it takes the write along, and Sentinel promotes a replica without it (a prefix
of what the master had: replication keeps the order). Two guards:

- the master's identity (its ``run_id``, new at every start): a run reads it
  once connected and again before each step and each bookkeeping write.
  redis-py's Sentinel pool reconnects to whichever server is master now
  without telling, so a run would otherwise go on writing on a promoted
  replica that misses its earlier writes. It stops instead, in one sentence,
  and the next run finds the new master's own position and ledger (a prefix)
  and brings it to where Postgres stands (:func:`sovren_db.resync.reconcile`);
- :func:`await_replicas` before a run records in Postgres that Redis holds its
  writes (the seed manifest, an erasure step): every connected replica must
  acknowledge them (``WAIT``; those connected when the run began, and behind
  Sentinel those its sentinels see up, count even when cut off: Sentinel may
  promote one of them), bounded by ``SOVREN_REDIS_REPLICA_WAIT`` seconds
  (default 10), or nothing is recorded and a rerun writes them again.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..core.errors import ConfigError, StoreUnavailable

if TYPE_CHECKING:
    from .backend import RedisBackend

WAIT_VAR = "SOVREN_REDIS_REPLICA_WAIT"
DEFAULT_WAIT = 10.0
# WAIT counts replicas that hold everything up to this connection's last propagated
# command; a PUBLISH is one on a standalone master (no subscriber, no key touched),
# so WAIT after it covers the writes of every connection before it.
SYNC_CHANNEL = "{sovren-db}:replicated"


def master_identity(backend: "RedisBackend") -> tuple[str, ...]:
    """The ``run_id`` of every master the backend writes to (one read each)."""
    return tuple(str(client.info("server").get("run_id", "")) for _, client in backend.masters())


def connection_facts(backend: "RedisBackend") -> tuple[tuple[str, ...], int]:
    """(the masters' ``run_id``, the replicas a standalone master streams to now), one INFO a master
    (its default sections hold both, and Redis before 7 takes one section only)."""
    infos = [client.info() for _, client in backend.masters()]
    replicas = 0 if backend.cluster else int(infos[0].get("connected_slaves", 0))
    return tuple(str(info.get("run_id", "")) for info in infos), replicas


def confirm_master(backend: "RedisBackend") -> None:
    """StoreUnavailable when the master is no longer the server the run connected to."""
    if backend.identity is None:
        return
    with backend.reporting_errors():
        now = master_identity(backend)
    if now != backend.identity:
        raise StoreUnavailable("redis", backend.url,
                               "the master changed during the run (a Sentinel failover or a restart), and "
                               "writes the old one acknowledged may be lost; nothing more was written: run the "
                               "command again, it starts from what the new master holds")


def wait_seconds() -> float:
    raw = os.environ.get(WAIT_VAR, "")
    try:
        value = float(raw) if raw else DEFAULT_WAIT
    except ValueError:
        value = -1.0
    if value < 0:
        raise ConfigError(f"{WAIT_VAR} {raw!r} must be a number of seconds, 0 or more.")
    return value


def await_replicas(backend: "RedisBackend", what: str) -> None:
    """Return once every replica connected to the master holds ``what`` the run wrote; StoreUnavailable
    past the bound, naming the replicas behind. A cluster's replicas are not waited for (a PUBLISH
    there travels by the cluster bus, not the replication stream WAIT counts)."""
    if backend.cluster:
        return
    seconds = wait_seconds()
    with backend.reporting_errors():
        info = backend.client.info("replication")
        # a replica connected when the run began and gone since, or one Sentinel sees up though its
        # link to the master is down, may be the one Sentinel promotes
        wanted = max(int(info.get("connected_slaves", 0)), backend.replicas, _promotable(backend))
        if wanted:
            pipe = backend.client.pipeline(transaction=False)   # one connection for both commands
            pipe.publish(SYNC_CHANNEL, b"")
            pipe.execute_command("WAIT", wanted, int(seconds * 1000))
            acknowledged = pipe.execute()[1]
        confirm_master(backend)
    if wanted and acknowledged < wanted:
        behind = [_replica_name(v) for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        named = f" ({', '.join(behind)})" if behind else ""
        raise StoreUnavailable("redis", backend.url,
                               f"{acknowledged} of {wanted} replica(s){named} acknowledged {what} "
                               f"within {seconds:g} s ({WAIT_VAR}); a failover now would lose them, so they "
                               "were not recorded: run the command again once the replicas catch up")


def _replica_name(entry: dict) -> str:
    return f"{entry.get('ip', '?')}:{entry.get('port', '?')}"


def _promotable(backend: "RedisBackend") -> int:
    """Behind Sentinel: the replicas its sentinels see up (redis-py's ``discover_replicas``); else 0."""
    pool = backend.client.connection_pool
    manager = getattr(pool, "sentinel_manager", None)
    return len(manager.discover_replicas(pool.service_name)) if manager is not None else 0
