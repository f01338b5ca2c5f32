"""Which process serves a data directory, and on which port.

A pid written down earlier (``.sovren/servers.json``, a pidfile) outlives a
``kill -9``: Redis leaves its pidfile behind, and the pid may be reused. So a
local server is known by its data directory: a PostgreSQL postmaster by the
``postmaster.pid`` it keeps in its data directory (pid, then port on the fourth
line), checked against the running process; a redis-server by being the
redis-server process whose working directory is that directory (``--dir``
makes it ``chdir`` there), with its port from the process title Redis sets
(``redis-server 127.0.0.1:PORT``). Read from Linux's ``/proc``; elsewhere
nothing is found and the recorded pid is all there is.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

PROC = Path("/proc")
_TITLE_PORT = re.compile(rb":(\d+)")


def serving(store: str, data_dir: str | Path) -> tuple[int, int] | None:
    """(pid, port) of the live server of ``store`` using ``data_dir``; None when none does."""
    directory = Path(data_dir).resolve()
    if store == "postgres":
        return _postmaster(directory)
    if store == "redis":
        return _redis_in(directory)
    return None


def _postmaster(data: Path) -> tuple[int, int] | None:
    try:
        lines = (data / "postmaster.pid").read_text().splitlines()
        pid, port = int(lines[0]), int(lines[3])
    except (OSError, ValueError, IndexError):
        return None
    return (pid, port) if _runs_in(pid, "postgres", data) else None


def _redis_in(base: Path) -> tuple[int, int] | None:
    if not PROC.is_dir():
        return None
    for entry in PROC.iterdir():
        if entry.name.isdigit() and _runs_in(int(entry.name), "redis-server", base):
            try:
                port = _TITLE_PORT.search((entry / "cmdline").read_bytes())
            except OSError:
                continue
            if port:
                return int(entry.name), int(port[1])
    return None


def _runs_in(pid: int, name: str, directory: Path) -> bool:
    """Whether process ``pid`` is a ``name`` whose working directory is ``directory``."""
    try:
        comm = (PROC / str(pid) / "comm").read_text().strip()
        cwd = os.readlink(PROC / str(pid) / "cwd")
    except OSError:
        return False
    return comm == name and Path(cwd) == directory
