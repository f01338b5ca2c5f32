"""Start and stop PostgreSQL, Redis (standalone or cluster) and mongod from local binaries."""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..core.errors import SovrenError
from .identify import serving

PG_USER = "sovren"
PG_DATABASE = "sovren_ai"
PASSWORD_FILE = "password"


class ServerUnavailable(SovrenError):
    """A server could not be had on this machine; the message says how to provide one."""


@dataclass
class Server:
    store: str
    url: str
    port: int
    pid: int | None
    data_dir: str
    how: str = "binary"            # binary | docker | external
    run_as: str | None = None      # the OS user that owns the process, when not us
    log: str | None = None
    members: list[dict] | None = None  # a sharded cluster behind this mongos: its other processes

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Server":
        return cls(**{k: data.get(k) for k in cls.__dataclass_fields__})


@dataclass
class ClusterServer:
    servers: list[Server] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.servers[0].url

    @property
    def nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every master."""
        return [("127.0.0.1", s.port) for s in self.servers]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is free too; Redis needs port <= 55535."""
    import random

    for _ in range(200):
        port = random.randint(20000, 55000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise ServerUnavailable("No free pair of loopback ports for a Redis Cluster node was found.")


def _wait_for(predicate, timeout: float, what: str, log: str | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    tail = ""
    if log and os.path.exists(log):
        lines = Path(log).read_text(errors="replace").strip().splitlines()
        tail = f" (last log line: {lines[-1]})" if lines else ""
    raise ServerUnavailable(f"{what} did not become ready within {timeout:.0f} s{tail}.")


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# -- PostgreSQL ---------------------------------------------------------------

def find_pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return candidates[-1] if candidates else None


def _pg_run_as() -> str | None:
    """initdb refuses to run as root: run the server as an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return user
        except KeyError:
            continue
    raise ServerUnavailable("PostgreSQL cannot run as root and no 'postgres' or 'nobody' account exists.")


def _as_user(user: str | None, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if user else argv


POINTER = "data-root"   # a symlink in ``base`` to the folder the server's account can reach


def _pg_data_root(base: Path, user: str | None) -> Path:
    """Where the cluster lives: under ``base``, unless the server's account cannot reach it; then in a
    folder of its own that ``base/data-root`` points to, so a restart finds the same data, and that is
    removed when this process ends if ``base`` has been removed by then (a temporary base)."""
    if user is None:
        return base
    probe = subprocess.run(_as_user(user, ["test", "-x", str(base.parent)]), capture_output=True)
    if probe.returncode == 0:
        return base
    pointer = base / POINTER
    if pointer.is_symlink() and pointer.resolve().is_dir():
        return pointer.resolve()
    root = Path(tempfile.mkdtemp(prefix="sovren-db-pg-"))
    pointer.unlink(missing_ok=True)
    pointer.symlink_to(root)
    atexit.register(_remove_orphan, base, root)
    return root


def _remove_orphan(base: Path, root: Path) -> None:
    if not base.exists():
        shutil.rmtree(root, ignore_errors=True)


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (0600), whatever the umask."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def local_password(folder: Path) -> str:
    """The password of the local server whose data is in ``folder``: drawn at random once, kept there (0600),
    so no two checkouts share one and a restart finds the one its data was created with."""
    path = folder / PASSWORD_FILE
    if path.is_file():
        return path.read_text().strip()
    folder.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)  # URL-safe: no escaping in the URLs it goes into
    write_private(path, password + "\n")
    return password


def start_postgres(base: Path, port: int | None = None, *, preload: str = "pg_stat_statements") -> Server:
    """A PostgreSQL server on loopback; ``preload`` is its shared_preload_libraries (doctor reads
    statement times from pg_stat_statements)."""
    initdb, pg_ctl = find_pg_bin("initdb"), find_pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise ServerUnavailable(
            "No PostgreSQL server binaries (initdb, pg_ctl) found on PATH or in /usr/lib/postgresql/*/bin: "
            "install them (apt-get install postgresql), set POSTGRES_URL, or start Docker."
        )
    user = _pg_run_as()
    base.mkdir(parents=True, exist_ok=True)
    root = _pg_data_root(base, user)
    data, log = root / "pgdata", root / "postgres.log"
    port = port or free_port()
    if user:
        shutil.chown(root, user)
    password = local_password(root)
    if not (data / "PG_VERSION").exists():
        pwfile = root / "pwfile"
        write_private(pwfile, password + "\n")
        if user:
            shutil.chown(pwfile, user)
        _run(_as_user(user, [initdb, "-D", str(data), "-U", PG_USER, f"--pwfile={pwfile}", "-E", "UTF8",
                             "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync"]), "initdb")
        pwfile.unlink()
    options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
               f"-c shared_preload_libraries={preload or ''}{_library_path()}")
    _run(_as_user(user, [pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"]),
         "pg_ctl start", log)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    _create_database(root, port, user, preload)
    return Server("postgres", local_url("postgres", port, password), port, pid, str(data), run_as=user, log=str(log))


# The audit trail's native capture library (pgext/sovren_audit, built by `make pgext`) is loaded from
# the checkout's build folder through dynamic_library_path, not installed into the system's $libdir:
# each worktree's servers load their own build, and nothing outside the checkout is written.
AUDIT_LIBRARY_DIR = Path(__file__).resolve().parents[3] / "pgext" / "sovren_audit"


def _library_path() -> str:
    initdb = find_pg_bin("initdb")  # the pg_config of the server that runs, where it says
    beside = Path(os.path.realpath(initdb)).parent / "pg_config" if initdb else None
    pg_config = str(beside) if beside and beside.exists() else find_pg_bin("pg_config")
    if not pg_config or not (AUDIT_LIBRARY_DIR / "sovren_audit.so").exists():
        return ""
    libdir = subprocess.run([pg_config, "--pkglibdir"], capture_output=True, text=True, check=True).stdout.strip()
    return f" -c dynamic_library_path={libdir}:{AUDIT_LIBRARY_DIR}"


def local_url(store: str, port: int, password: str | None = None) -> str:
    """The URL of a server this module starts on ``port`` (``password``: its checkout's, ``local_password``)."""
    auth = f":{password}@" if password else ""
    if store == "postgres":
        return f"postgresql://{PG_USER}{auth}127.0.0.1:{port}/{PG_DATABASE}"
    return f"redis://{auth}127.0.0.1:{port}/0"


def _create_database(socket_dir: Path, port: int, user: str | None, preload: str) -> None:
    import psycopg

    with psycopg.connect(host=str(socket_dir), port=port, user=PG_USER, dbname="postgres",
                         autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    if "pg_stat_statements" not in preload:
        return
    with psycopg.connect(host=str(socket_dir), port=port, user=PG_USER, dbname=PG_DATABASE,
                         autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")


def _run(argv: list[str], what: str, log: str | Path | None = None) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        if not detail and log and os.path.exists(log):
            detail = Path(log).read_text(errors="replace").strip().splitlines()
        raise ServerUnavailable(f"{what} failed: {detail[-1] if detail else 'exit ' + str(result.returncode)}.")


# -- Redis --------------------------------------------------------------------

def _redis_bin() -> str:
    found = shutil.which("redis-server")
    if not found:
        raise ServerUnavailable(
            "No redis-server on PATH: install it (apt-get install redis-server), set REDIS_URL, or start Docker."
        )
    return found


def start_redis(base: Path, port: int | None = None, *, password: str | None = None,
                cluster: bool = False, persist: bool = False) -> Server:
    """A redis-server on loopback; ``persist`` keeps its data (append-only file) across restarts."""
    binary = _redis_bin()
    base.mkdir(parents=True, exist_ok=True)
    if (running := serving("redis", base)) is not None:
        raise ServerUnavailable(f"A redis-server (pid {running[0]}, port {running[1]}) already serves {base}; "
                                "two servers on one data directory would overwrite each other's files.")
    port = port or (free_cluster_port() if cluster else free_port())
    pidfile, log = base / "redis.pid", base / "redis.log"
    pidfile.unlink(missing_ok=True)   # left by a server killed with -9: it would pass for the new one's
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(base), "--save", "",
            "--appendonly", "yes" if persist else "no", "--daemonize", "yes", "--pidfile", str(pidfile),
            "--logfile", str(log), "--enable-debug-command", "local"]  # DEBUG SLEEP: doctor's latency tests
    if password:
        argv += ["--requirepass", password]
    if cluster:
        argv += ["--cluster-enabled", "yes", "--cluster-config-file", str(base / "nodes.conf"),
                 "--cluster-node-timeout", "2000"]
    _run(argv, "redis-server", log)
    try:
        _wait_for(lambda: _pid_written(pidfile) and _port_open(port), 20, f"redis-server on port {port}", str(log))
    except ServerUnavailable:
        _shutdown_by_port(port)
        raise
    pid = int(pidfile.read_text().strip())
    return Server("redis", local_url("redis", port, password), port, pid, str(base), log=str(log))


def _pid_written(pidfile: Path) -> bool:
    try:
        return pidfile.read_text().strip().isdigit()
    except OSError:
        return False


def _shutdown_by_port(port: int) -> None:
    """A daemonised redis-server that never became ready is still ours: stop it."""
    subprocess.run(["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True, timeout=10)


def start_redis_cluster(base: Path, masters: int = 3) -> ClusterServer:
    nodes = [start_redis(base / f"node{i}", cluster=True) for i in range(masters)]
    cluster = ClusterServer(nodes)
    try:
        _run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{n.port}" for n in nodes],
              "--cluster-replicas", "0", "--cluster-yes"], "redis-cli --cluster create")
        _wait_for(lambda: all(_cluster_ok(n.port) for n in nodes), 30, "Redis Cluster")
    except Exception:
        for node in nodes:
            stop(node)
        raise
    return cluster


def _cluster_ok(port: int) -> bool:
    result = subprocess.run(["redis-cli", "-p", str(port), "cluster", "info"], capture_output=True, text=True)
    return "cluster_state:ok" in result.stdout


# -- MongoDB ------------------------------------------------------------------

def start_mongod(base: Path, port: int | None = None) -> Server:
    binary = shutil.which("mongod")
    if not binary:
        raise ServerUnavailable(
            "No mongod on PATH: set MONGO_URL=mongodb://host:27017/sovren_ai, install MongoDB, or start Docker."
        )
    data = base / "db"
    data.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log, pidfile = base / "mongod.log", base / "mongod.pid"
    pid = start_forked([binary, "--dbpath", str(data), "--port", str(port), "--bind_ip", "127.0.0.1", "--fork",
                        "--logpath", str(log), "--pidfilepath", str(pidfile)], "mongod", port, log, pidfile)
    return Server("mongo", f"mongodb://127.0.0.1:{port}/sovren_ai", port, pid, str(base), log=str(log))


def start_forked(argv: list[str], what: str, port: int, log: Path, pidfile: Path, timeout: float = 60) -> int:
    """Run a server that forks itself into the background (mongod, mongos ``--fork``); wait until
    ``port`` answers; return the PID it wrote."""
    _run(argv, what, log)
    _wait_for(lambda: _port_open(port), timeout, f"{what} on port {port}", str(log))
    return int(pidfile.read_text().strip())


# -- Docker -------------------------------------------------------------------

def docker_engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    try:
        result = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"],
                                capture_output=True, text=True, timeout=5)
    except (subprocess.TimeoutExpired, OSError):
        return False
    return result.returncode == 0 and bool(result.stdout.strip())


# -- stopping -----------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(server: Server | ClusterServer, timeout: float = 20) -> bool:
    """Stop what was started, by PID; True when it was running."""
    if isinstance(server, ClusterServer):
        return all([stop(node, timeout) for node in server.servers])
    if server.members:  # the router first, then the config server and the shards behind it
        stopped = _stop_process(server, timeout)
        return all([stopped] + [_stop_process(Server.from_json(m), timeout) for m in server.members])
    return _stop_process(server, timeout)


def _stop_process(server: Server, timeout: float) -> bool:
    if server.how != "binary" or not server.pid or not _alive(server.pid):
        return False
    # SIGINT is PostgreSQL's "fast" shutdown; Redis and mongod stop cleanly on SIGTERM.
    os.kill(server.pid, signal.SIGINT if server.store == "postgres" else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(server.pid):
        time.sleep(0.05)
    if _alive(server.pid):
        os.kill(server.pid, signal.SIGKILL)
    return True
