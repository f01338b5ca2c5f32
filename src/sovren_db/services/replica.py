"""A streaming hot standby of a local Postgres, made with ``pg_basebackup -R``, on loopback."""

from __future__ import annotations

import shutil
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .local import (PG_USER, Server, ServerUnavailable, _as_user, _pg_data_root, _pg_run_as, _run,
                    find_pg_bin, free_port)


def start_replica(base: Path, primary: Server) -> Server:
    """A hot standby streaming from ``primary`` (a server started by ``start_postgres``)."""
    basebackup, pg_ctl = find_pg_bin("pg_basebackup"), find_pg_bin("pg_ctl")
    if not basebackup or not pg_ctl:
        raise ServerUnavailable("No pg_basebackup or pg_ctl found: install the PostgreSQL server binaries.")
    user = _pg_run_as()
    base.mkdir(parents=True, exist_ok=True)
    root = _pg_data_root(base, user)
    if user:
        shutil.chown(root, user)
    data, log, port = root / "pgdata", root / "postgres.log", free_port()
    password = unquote(urlsplit(primary.url).password or "")
    source = f"host=127.0.0.1 port={primary.port} user={PG_USER} password={password} application_name=replica{port}"
    _run(_as_user(user, [basebackup, "-d", source, "-D", str(data), "-R", "-X", "stream", "--no-sync",
                         "--checkpoint=fast"]),
         "pg_basebackup")
    options = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c hot_standby=on -c fsync=off "
               "-c max_connections=200")
    _run(_as_user(user, [pg_ctl, "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"]),
         "pg_ctl start (replica)", log)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    url = primary.url.replace(f":{urlsplit(primary.url).port}/", f":{port}/", 1)
    return Server("postgres", url, port, pid, str(data), run_as=user, log=str(log))


def promote(replica: Server) -> None:
    """``pg_ctl promote``: the standby becomes a primary (waits until it accepts writes)."""
    _run(_as_user(replica.run_as, [find_pg_bin("pg_ctl"), "-D", replica.data_dir, "-w", "-t", "60", "promote"]),
         "pg_ctl promote", replica.log)
