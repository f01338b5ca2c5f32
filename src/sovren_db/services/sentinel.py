"""A Redis master, one replica and one Sentinel watching them (quorum 1), on loopback."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from .local import Server, ServerUnavailable, _pid_written, _port_open, _run, _wait_for, free_port, start_redis


@dataclass
class SentinelGroup:
    master: Server
    replica: Server
    sentinel: Server
    name: str
    password: str

    @property
    def url(self) -> str:
        return f"redis+sentinel://:{self.password}@127.0.0.1:{self.sentinel.port}/{self.name}/0"

    def master_port(self) -> int:
        out = _cli(self.sentinel.port, None, "sentinel", "get-master-addr-by-name", self.name)
        return int(out.split()[1])


def _cli(port: int, password: str | None, *args: str) -> str:
    auth = ["-a", password, "--no-auth-warning"] if password else []
    return subprocess.run(["redis-cli", "-p", str(port), *auth, *args], capture_output=True, text=True,
                          timeout=10).stdout


def start_sentinel_group(base: Path, name: str = "sovren", password: str = "sentinelpass") -> SentinelGroup:
    master = start_redis(base / "master", password=password)
    replica = start_redis(base / "replica", password=password)
    _cli(replica.port, password, "config", "set", "masterauth", password)
    _cli(replica.port, password, "replicaof", "127.0.0.1", str(master.port))
    _wait_for(lambda: "master_link_status:up" in _cli(replica.port, password, "info", "replication"), 20,
              "the Redis replica's link to its master")
    folder, port = base / "sentinel", free_port()
    folder.mkdir(parents=True, exist_ok=True)
    conf, pidfile, log = folder / "sentinel.conf", folder / "sentinel.pid", folder / "sentinel.log"
    conf.write_text(f"port {port}\nbind 127.0.0.1\ndaemonize yes\npidfile {pidfile}\nlogfile {log}\n"
                    f"dir {folder}\nsentinel monitor {name} 127.0.0.1 {master.port} 1\n"
                    f"sentinel auth-pass {name} {password}\nsentinel down-after-milliseconds {name} 1000\n"
                    f"sentinel failover-timeout {name} 5000\n")
    _run(["redis-sentinel", str(conf)], "redis-sentinel", log)
    _wait_for(lambda: _pid_written(pidfile) and _port_open(port), 20, f"redis-sentinel on port {port}", str(log))
    sentinel = Server("redis", f"redis://127.0.0.1:{port}", port, int(pidfile.read_text().strip()), str(folder),
                      log=str(log))
    group = SentinelGroup(master, replica, sentinel, name, password)
    try:
        _wait_for(lambda: "slaves=1" in _cli(port, None, "info", "sentinel"), 20, "Sentinel seeing the replica")
    except ServerUnavailable:
        pass  # the replica is found a little later; the master is enough to start
    return group
