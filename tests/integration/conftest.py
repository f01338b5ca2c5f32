"""A throwaway copy of the project per test, pointed at the test's own servers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest

COPIED = ("pyproject.toml", "postgres", "mongo", "redis", "seeds", "migrations")


def copy_project(repo: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src = repo / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


def use_project(repo: Path, dest: Path, monkeypatch: pytest.MonkeyPatch, **environ: str | None) -> Path:
    """The project copied to ``dest`` and made the working directory; CI, MONGO_URL and SOVREN_ENV unset,
    then each of ``environ`` set (or unset where None)."""
    root = copy_project(repo, dest)
    for var in ("CI", "MONGO_URL", "SOVREN_ENV"):
        monkeypatch.delenv(var, raising=False)
    for var, value in environ.items():
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, value)
    monkeypatch.chdir(root)
    return root


@pytest.fixture
def project(tmp_path: Path, repo_root: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project copied to tmp_path with POSTGRES_URL set; MONGO_URL and REDIS_URL unset (their steps defer)."""
    return use_project(repo_root, tmp_path / "project", monkeypatch, POSTGRES_URL=pg_url, REDIS_URL=None,
                       SOVREN_DB_STORES=None)


def add_revision(project: Path, revision: str, upgrade: str, downgrade: str = "pass",
                 imports: str = "from alembic import op\nimport sqlalchemy as sa\n") -> Path:
    """Write a revision on top of the project's current head; bodies are indented statements."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(project / "migrations")).get_current_head()
    path = project / "migrations" / "versions" / f"{revision}_test.py"
    path.write_text(f"revision = {revision!r}\ndown_revision = {head!r}\nbranch_labels = None\n"
                    f"depends_on = None\n{imports}\n\ndef upgrade():\n{upgrade}\n\n"
                    f"def downgrade():\n    {downgrade}\n")
    return path


def append_declaration(project: Path, name: str, source: str) -> None:
    """Add ``source`` at the end of the copied project's ``postgres/<name>``."""
    path = project / "postgres" / name
    path.write_text(path.read_text() + source)


def migrate_killed_when(project: Path, reached: Callable[[], bool]) -> None:
    """``sovren-db migrate`` in a process of its own, killed with SIGKILL once ``reached()`` (60 s at most)."""
    exe = Path(sys.executable).with_name("sovren-db")
    proc = subprocess.Popen([str(exe), "migrate"], cwd=project, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 60
        while not reached() and time.monotonic() < end:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    time.sleep(0.5)  # the killed session's last statement ends with it
