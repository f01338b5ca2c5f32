"""Redis behind Sentinel: the URL form and the client.

``redis+sentinel://[:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER_NAME[/DB][?role=replica]``

The sentinels are asked for the current master of MASTER_NAME (``role=replica``:
one of its replicas, for a read-only ``audit``); PASSWORD is the data servers'
(and, when they ask, the sentinels'). redis-py's ``Sentinel`` pool asks again
after a failover, so a rerun after promotion reaches the new master.
redis-py reads no URL for Sentinel, hence this parser.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from ..core.errors import ConfigError
from ..core.redaction import redact

SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelURL:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    password: str | None
    replica: bool


def is_sentinel(url: str | None) -> bool:
    return bool(url) and url.startswith(f"{SCHEME}://")


def parse(url: str, what: str = "REDIS_URL") -> SentinelURL:
    def bad(problem: str) -> ConfigError:
        return ConfigError(f"{what} {redact(url)!r} {problem} (form: {SCHEME}://[:PASSWORD@]HOST:PORT"
                           "[,HOST:PORT...]/MASTER_NAME[/DB]).")

    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    password = unquote(userinfo.partition(":")[2]) or None if userinfo else None
    sentinels = []
    for address in filter(None, hosts.split(",")):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise bad(f"names sentinel {address!r} without HOST:PORT")
        sentinels.append((host, int(port)))
    path = [p for p in parts.path.split("/") if p]
    if not sentinels:
        raise bad("names no sentinel")
    if not path or len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise bad("must name the master (and optionally a database number) in its path")
    role = parse_qs(parts.query).get("role", ["master"])[0]
    if role not in ("master", "replica"):
        raise bad(f"has role={role!r}; it may be master or replica")
    return SentinelURL(tuple(sentinels), path[0], int(path[1]) if len(path) == 2 else 0, password,
                       role == "replica")


def sentinel_client(url: str, **options):
    """A client of the master (or a replica) Sentinel names for ``url``'s master name."""
    from redis.sentinel import Sentinel

    spec = parse(url)
    sentinel = Sentinel(list(spec.sentinels), sentinel_kwargs={"password": spec.password,
                                                               "socket_connect_timeout": 5},
                        password=spec.password, db=spec.db, **options)
    return (sentinel.slave_for if spec.replica else sentinel.master_for)(spec.master)
