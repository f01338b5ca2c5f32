"""``sovren-db up | down | env``: local servers recorded in ``.sovren/servers.json``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, replace
from pathlib import Path

from ..core.config import SERVERS_FILE, STORES, URL_VARS, Settings
from ..core.urls import redact
from .identify import serving
from .local import (
    Server, ServerUnavailable, _alive, docker_engine_answers, local_password, local_url, start_mongod, start_postgres,
    start_redis, stop, write_private,
)
from .mongo_cluster import DEFAULT_ZONES, start_mongo_cluster

# Where each store's data directory is under .sovren/, for the stores whose server is found by it.
LOCATED = {"postgres": "postgres/pgdata", "redis": "redis"}


def _start_local_redis(base: Path) -> Server:
    return start_redis(base, persist=True, password=local_password(base))


# Development servers keep their data across down/up, as the Postgres cluster does.
STARTERS = {"postgres": start_postgres, "redis": _start_local_redis, "mongo": start_mongod}
# Fixed ports of docker-compose.yml (Appendix A).
COMPOSE_URLS = {
    "postgres": "postgresql://sovren:securepass@127.0.0.1:5432/sovren_ai",
    "redis": "redis://127.0.0.1:6379/0",
    "mongo": "mongodb://127.0.0.1:27017/sovren_ai",
}


@dataclass
class StoreReport:
    store: str
    state: str          # started | running | external | docker | unavailable
    url: str | None
    message: str


def _servers_path(settings: Settings) -> Path:
    return settings.state_dir / SERVERS_FILE


def read_servers(settings: Settings) -> dict[str, Server]:
    path = _servers_path(settings)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    return {store: Server.from_json(info) for store, info in data.items()}


def write_servers(settings: Settings, servers: dict[str, Server]) -> None:
    path = _servers_path(settings)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, json.dumps({s: srv.to_json() for s, srv in servers.items()}, indent=2) + "\n")  # URLs hold passwords


def up(settings: Settings, stores: tuple[str, ...] = STORES, *, mongo_sharded: bool = False) -> list[StoreReport]:
    """Start what is missing; ``mongo_sharded`` makes MongoDB a local sharded cluster with one
    shard per zone the declarations name (``eu`` and ``us`` when they name none)."""
    servers = read_servers(settings)
    reports = []
    for store in stores:
        if store == "mongo" and mongo_sharded:
            report, server = _bring_up_cluster(settings, servers.get(store))
        else:
            report, server = _bring_up(settings, store, servers.get(store))
        if server is not None:
            servers[store] = server
        reports.append(report)
    write_servers(settings, servers)
    return reports


def _already_up(settings: Settings, store: str, known: Server | None) -> tuple[StoreReport, Server | None] | None:
    """The store's server when there is nothing to start: an external URL, or ours still running."""
    source = settings.url_sources.get(store)
    if source in ("environment", ".env"):
        url = settings.urls[store]
        return StoreReport(store, "external", url, f"using {URL_VARS[store]} from {source}"), None
    if (server := located(settings, store, known)) is not None:
        return StoreReport(store, "running", server.url, f"already running (pid {server.pid})"), server
    if store not in LOCATED and known is not None and known.pid and _alive(known.pid):
        what = "sharded cluster already running" if known.members else "already running"
        return StoreReport(store, "running", known.url, f"{what} (pid {known.pid})"), known
    return None


def located(settings: Settings, store: str, known: Server | None) -> Server | None:
    """The server serving the store's data directory now (``identify``), whatever pid was recorded."""
    if store not in LOCATED or (known is not None and (known.how != "binary" or known.members)):
        return None
    data_dir = known.data_dir if known is not None else settings.state_dir / LOCATED[store]
    found = serving(store, data_dir)
    if found is None:
        return None
    pid, port = found
    if known is None:
        folder = Path(data_dir).parent if store == "postgres" else Path(data_dir)  # where its password is kept
        return Server(store, local_url(store, port, local_password(folder)), port, pid, str(data_dir))
    return replace(known, pid=pid, port=port, url=re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{port}", known.url))


def _bring_up(settings: Settings, store: str, known: Server | None) -> tuple[StoreReport, Server | None]:
    if (up := _already_up(settings, store, known)) is not None:
        return up
    try:
        server = STARTERS[store](settings.state_dir / store)
        return StoreReport(store, "started", server.url, f"started (pid {server.pid})"), server
    except ServerUnavailable as exc:
        if docker_engine_answers():
            return _compose_up(settings, store)
        return StoreReport(store, "unavailable", None, str(exc)), None


def _bring_up_cluster(settings: Settings, known: Server | None) -> tuple[StoreReport, Server | None]:
    if (up := _already_up(settings, "mongo", known)) is not None:
        report, server = up
        if server is not None and not server.members:
            report.message += "; a mongod, not a cluster: run 'sovren-db down' first"
        return up
    zones = declared_zones(settings)
    base = settings.state_dir / "mongo-cluster"
    shutil.rmtree(base, ignore_errors=True)  # replica set configs name ports: a cluster starts fresh
    try:
        server = start_mongo_cluster(base, zones)
    except ServerUnavailable as exc:
        return StoreReport("mongo", "unavailable", None, str(exc)), None
    shards = ", ".join(f"shard_{z} in zone {z}" for z in zones)
    return StoreReport("mongo", "started", server.url,
                       f"sharded cluster started ({shards}; mongos pid {server.pid}; data not kept across down/up)"
                       ), server


def declared_zones(settings: Settings) -> tuple[str, ...]:
    """The zone names the Mongo declarations use, in order; ``eu`` and ``us`` when none."""
    from ..mongo.declared import load_declared

    declared = load_declared(settings.mongo_dir) if settings.mongo_dir.is_dir() else None
    zones = sorted({z.zone for c in declared.collections.values() for z in c.zones}) if declared else []
    return tuple(zones) or DEFAULT_ZONES


def _compose_up(settings: Settings, store: str) -> tuple[StoreReport, Server | None]:
    compose = settings.root / "docker-compose.yml"
    result = subprocess.run(["docker", "compose", "-f", str(compose), "up", "-d", "--wait", store],
                            capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        return StoreReport(store, "unavailable", None,
                           f"docker compose could not start {store}: {detail[-1] if detail else 'failed'}"), None
    url = COMPOSE_URLS[store]
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    server = Server(store, url, port, None, str(compose), how="docker")
    return StoreReport(store, "docker", url, "started with docker compose"), server


def down(settings: Settings) -> list[StoreReport]:
    """Stop every local server: those recorded, and whatever serves their data directories now."""
    servers = read_servers(settings)
    servers.update({store: found for store in LOCATED if store not in servers
                    and (found := located(settings, store, None)) is not None})
    reports = []
    for store, server in servers.items():
        server = located(settings, store, server) or server
        if server.how == "docker":
            subprocess.run(["docker", "compose", "-f", server.data_dir, "stop", store], capture_output=True)
            reports.append(StoreReport(store, "stopped", server.url, "stopped (docker compose)"))
        elif stop(server):
            reports.append(StoreReport(store, "stopped", server.url, f"stopped (pid {server.pid})"))
        else:
            reports.append(StoreReport(store, "gone", server.url, "was not running"))
    path = _servers_path(settings)
    if path.exists():
        path.unlink()
    return reports


def env_lines(settings: Settings) -> list[str]:
    lines = []
    for store in STORES:
        url = settings.urls.get(store)
        if url:
            lines.append(f"export {URL_VARS[store]}={_shell_quote(url)}")
        else:
            lines.append(f"# {URL_VARS[store]} is not set: no {store} server configured")
    return lines


def _shell_quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"


def describe(report: StoreReport) -> str:
    where = f" at {redact(report.url)}" if report.url else ""
    return f"{report.store}: {report.message}{where}"


__all__ = ["up", "down", "env_lines", "read_servers", "describe", "StoreReport"]
