"""A PgBouncer (Debian's ``pgbouncer``) in front of a local Postgres, on loopback, for tests and benches."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from .local import (PG_USER, Server, ServerUnavailable, _as_user, _pg_data_root, _pg_run_as,
                    _pid_written, _port_open, _run, _wait_for, free_port, write_private)


def start_pgbouncer(base: Path, postgres_url: str, *, pool_mode: str = "transaction", pool_size: int = 3) -> Server:
    """PgBouncer forwarding every database of ``postgres_url``'s server; returns it with a URL naming
    the same database through the pooler. A small pool makes clients share server connections."""
    binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if not binary:
        raise ServerUnavailable("No pgbouncer binary found: install it (apt-get install pgbouncer).")
    user = _pg_run_as()  # pgbouncer, like Postgres, refuses to run as root
    base.mkdir(parents=True, exist_ok=True)
    root = _pg_data_root(base, user)
    backend = urlsplit(postgres_url)
    port = free_port()
    ini, log, pidfile = root / "pgbouncer.ini", root / "pgbouncer.log", root / "pgbouncer.pid"
    write_private(root / "userlist.txt", f'"{PG_USER}" "{unquote(backend.password or "")}"\n')
    ini.write_text(f"""[databases]
* = host={backend.hostname} port={backend.port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = scram-sha-256
auth_file = {root / 'userlist.txt'}
pool_mode = {pool_mode}
default_pool_size = {pool_size}
max_client_conn = 200
server_reset_query =
ignore_startup_parameters = extra_float_digits
logfile = {log}
pidfile = {pidfile}
""")
    if user:
        for path in (root, ini, root / "userlist.txt"):
            shutil.chown(path, user)
    _run(_as_user(user, [binary, "-d", str(ini)]), "pgbouncer", log)
    _wait_for(lambda: _pid_written(pidfile) and _port_open(port), 20, f"pgbouncer on port {port}", str(log))
    pid = int(pidfile.read_text().strip())
    url = urlunsplit((backend.scheme, f"{backend.username}:{backend.password}@127.0.0.1:{port}",
                      backend.path, backend.query, ""))
    return Server("pgbouncer", url, port, pid, str(root), log=str(log))
