"""Under Sentinel (runbook H.2): the master each sentinel names, its replicas, the quorum.

Asked of every sentinel listed in ``sentinels`` (``[tool.sovren-db.doctor]``),
even when the Redis master does not answer: that is when the sentinels'
view matters. Each sentinel gets three commands: ``SENTINEL
GET-MASTER-ADDR-BY-NAME``, ``SENTINEL REPLICAS`` and ``SENTINEL CKQUORUM``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import redis

from .model import Examination
from .thresholds import Thresholds

TIMEOUT = 5.0
DOWN_FLAGS = {"s_down", "o_down", "disconnected"}


def examine(limits: Thresholds, exam: Examination, redis_url: str | None) -> None:
    if not limits.sentinels:
        return
    name = limits.sentinel_master
    masters: dict[str, str] = {}
    down: set[str] = set()
    quorum = 1
    for address in limits.sentinels:
        host, _, port = address.rpartition(":")
        client = redis.Redis(host=host, port=int(port), socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
        with exam.probe(f"sentinel {address}"):
            try:
                master, replicas, ok = _ask(client, name)
            finally:
                client.close()
            if master is None:
                exam.finding(f"sentinel {address}", f"does not monitor a master named {name}: check "
                                                    "sentinel_master and the sentinel's configuration",
                             code="redis-sentinel")
                continue
            masters[address] = master
            down |= {r for r, flags in replicas.items() if flags & DOWN_FLAGS}
            if not ok:
                quorum = 0
                exam.finding(f"sentinel {address}", f"cannot reach the quorum to fail {name} over (SENTINEL "
                                                    "CKQUORUM): start the missing sentinels", code="redis-sentinel")
    _judge(name, masters, down, redis_url, exam)
    exam.sample("redis_sentinel_masters_seen", len(set(masters.values())))
    exam.sample("redis_sentinel_replicas_down", len(down))
    exam.sample("redis_sentinel_quorum", quorum)


def _ask(client: redis.Redis, name: str) -> tuple[str | None, dict[str, set[str]], bool]:
    """The master's address, each replica's flags, and whether the quorum is reachable."""
    address = client.sentinel_get_master_addr_by_name(name)
    if not address:
        return None, {}, True
    replicas = {f"{_text(r['ip'])}:{r['port']}": _flags(r.get("flags", "")) for r in client.sentinel_slaves(name)}
    try:  # the reply itself: redis-py's sentinel_ckquorum compares it with a bare "OK" and says False
        ok = _text(client.execute_command("SENTINEL", "CKQUORUM", name)).startswith("OK")
    except redis.ResponseError:  # NOQUORUM ...
        ok = False
    return f"{_text(address[0])}:{address[1]}", replicas, ok


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _flags(flags: object) -> set[str]:
    if isinstance(flags, (set, frozenset, list, tuple)):
        return {_text(f) for f in flags}
    return set(_text(flags).split(","))


def _judge(name: str, masters: dict[str, str], down: set[str], redis_url: str | None, exam: Examination) -> None:
    named = set(masters.values())
    if len(named) > 1:
        listed = ", ".join(f"{s} says {m}" for s, m in sorted(masters.items()))
        exam.finding(f"sentinels of {name}", f"disagree on the master ({listed}): a failover is under way or "
                                             "the sentinels are partitioned; wait, then check again (runbook H.2)",
                     code="redis-sentinel")
    for replica in sorted(down):
        exam.finding(f"replica {replica} of {name}", "is down or disconnected in the sentinels' view: a failover "
                                                     "would have one replica fewer; bring it back",
                     code="redis-sentinel-replica")
    configured = _address(redis_url)
    if len(named) == 1 and configured and configured not in named:
        exam.finding(f"master {name}", f"the sentinels name {next(iter(named))}, REDIS_URL names {configured}: "
                                       "a failover happened; update the application's address (runbook H.2)",
                     code="redis-sentinel-master")


def _address(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}" if parts.hostname else None
