"""A local sharded MongoDB cluster from ``mongod`` and ``mongos`` binaries.

The smallest cluster on which shard keys and residency zones behave as in
production: a one-member config server replica set, one one-member shard
replica set per zone (``shard_eu`` serves zone ``eu``...), and one ``mongos``
in front. ``shardCollection``, ``updateZoneKeyRange``, ``config.collections``
and ``config.tags`` are the server's own; nothing here imitates them.

The argument lists and admin commands are built by pure functions
(:func:`mongod_argv`, :func:`initiate_command`, :func:`cluster_commands`) so
that their shape is tested where no MongoDB binary exists.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

from .local import Server, ServerUnavailable, free_port, start_forked, stop

CONFIG_SET = "sovren_cfg"
DEFAULT_ZONES = ("eu", "us")
CACHE_GB = "0.25"  # WiredTiger cache per process: five processes share one small machine
READY_SECONDS = 90


def shard_name(zone: str) -> str:
    return f"shard_{zone}"


def mongod_argv(binary: str, base: Path, port: int, *, role: str, replset: str) -> list[str]:
    """``mongod`` as a member of replica set ``replset``; ``role`` is ``configsvr`` or ``shardsvr``."""
    return [binary, f"--{role}", "--replSet", replset, "--dbpath", str(base / "db"), "--port", str(port),
            "--bind_ip", "127.0.0.1", "--wiredTigerCacheSizeGB", CACHE_GB, "--fork",
            "--logpath", str(base / "mongod.log"), "--pidfilepath", str(base / "mongod.pid")]


def mongos_argv(binary: str, base: Path, port: int, config_port: int) -> list[str]:
    return [binary, "--configdb", f"{CONFIG_SET}/127.0.0.1:{config_port}", "--port", str(port),
            "--bind_ip", "127.0.0.1", "--fork", "--logpath", str(base / "mongos.log"),
            "--pidfilepath", str(base / "mongos.pid")]


def initiate_command(replset: str, port: int, *, configsvr: bool) -> dict:
    """``replSetInitiate`` of a one-member set; a config server's set says ``configsvr: true``."""
    config: dict = {"_id": replset, "members": [{"_id": 0, "host": f"127.0.0.1:{port}"}]}
    if configsvr:
        config["configsvr"] = True
    return {"replSetInitiate": config}


def cluster_commands(shard_ports: dict[str, int]) -> list[dict]:
    """The admin commands run on the mongos: add each zone's shard, then assign it to its zone."""
    commands: list[dict] = []
    for zone, port in shard_ports.items():
        commands.append({"addShard": f"{shard_name(zone)}/127.0.0.1:{port}", "name": shard_name(zone)})
    for zone in shard_ports:
        commands.append({"addShardToZone": shard_name(zone), "zone": zone})
    return commands


def start_mongo_cluster(base: Path, zones: tuple[str, ...] = DEFAULT_ZONES) -> Server:
    """Start the cluster: the mongos (``url`` ``mongodb://127.0.0.1:<port>/sovren_ai``), with the
    config server and shards behind it as its ``members``, so that ``stop`` ends them all."""
    mongod, mongos = shutil.which("mongod"), shutil.which("mongos")
    if not (mongod and mongos):
        raise ServerUnavailable(
            "A sharded MongoDB cluster needs the mongod and mongos binaries on PATH "
            "(or set MONGO_SHARDED_URL to a mongos whose shards serve the declared zones)."
        )
    started: list[Server] = []
    try:
        config = _start_member(base / "config", mongod, role="configsvr", replset=CONFIG_SET)
        started.append(config)
        shards = {}
        for zone in zones:
            shards[zone] = _start_member(base / shard_name(zone), mongod, role="shardsvr",
                                         replset=shard_name(zone))
            started.append(shards[zone])
        _initiate(config.port, CONFIG_SET, configsvr=True)
        for zone, shard in shards.items():
            _initiate(shard.port, shard_name(zone), configsvr=False)
        router = _start_mongos(base / "mongos", mongos, config.port)
        started.insert(0, router)
        with _client(router.port) as client:
            for command in cluster_commands({zone: shard.port for zone, shard in shards.items()}):
                _admin_command(client, command)
    except Exception:
        for server in started:
            stop(server)
        raise
    return replace(router, members=[member.to_json() for member in started[1:]])


def _start_member(base: Path, binary: str, *, role: str, replset: str) -> Server:
    (base / "db").mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = base / "mongod.log"
    pid = start_forked(mongod_argv(binary, base, port, role=role, replset=replset), f"mongod {replset}", port,
                       log, base / "mongod.pid", READY_SECONDS)
    return Server("mongo", f"mongodb://127.0.0.1:{port}/?directConnection=true", port, pid, str(base),
                  log=str(log))


def _start_mongos(base: Path, binary: str, config_port: int) -> Server:
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = base / "mongos.log"
    pid = start_forked(mongos_argv(binary, base, port, config_port), "mongos", port, log, base / "mongos.pid",
                       READY_SECONDS)
    return Server("mongo", f"mongodb://127.0.0.1:{port}/sovren_ai", port, pid, str(base), log=str(log))


def _client(port: int):
    import pymongo

    return pymongo.MongoClient(f"mongodb://127.0.0.1:{port}/?directConnection=true",
                               serverSelectionTimeoutMS=READY_SECONDS * 1000)


def _initiate(port: int, replset: str, *, configsvr: bool) -> None:
    """Initiate the one-member set and wait until it has elected itself primary."""
    with _client(port) as client:
        client.admin.command(initiate_command(replset, port, configsvr=configsvr))
        deadline = time.monotonic() + READY_SECONDS
        while not client.admin.command("hello").get("isWritablePrimary"):
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"Replica set {replset} on port {port} elected no primary "
                                        f"within {READY_SECONDS} s.")
            time.sleep(0.2)


def _admin_command(client, command: dict) -> None:
    """Run ``command`` on the mongos, retrying while it is still finding its config servers."""
    from pymongo.errors import AutoReconnect, OperationFailure

    deadline = time.monotonic() + READY_SECONDS
    while True:
        try:
            client.admin.command(command)
            return
        except (AutoReconnect, OperationFailure) as exc:
            if time.monotonic() > deadline:
                raise ServerUnavailable(f"mongos refused {next(iter(command))}: {exc}") from None
            time.sleep(0.5)
