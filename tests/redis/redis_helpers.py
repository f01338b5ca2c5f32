"""Helpers for the Redis tests: throwaway projects, settings and connected backends.

(A module of its own, not conftest.py: test folders have no __init__.py, and one named
``redis`` must never become a package that shadows redis-py.)
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from sovren_db.core.config import load_settings
from sovren_db.redis.backend import RedisBackend

REPO = Path(__file__).resolve().parents[2]

SMALL = {
    "app.toml": """
        [families.session]
        pattern = "session:{user_id}"
        type = "string"
        ttl = { policy = "required", max = "1d", default = "1h" }
        pii = true
        subject = "user_id"
        max_bytes = 16

        [families.profile]
        pattern = "profile:{user_id}"
        type = "hash"
        ttl = "none"
        pii = true
        subject = "user_id"
        max_elements = 3

        [families.outbox]
        pattern = "{{q}}:outbox"
        type = "stream"
        ttl = "none"
        groups = ["workers"]

        [channels.live]
        pattern = "live:{user_id}"
    """,
}


def write_project(root: Path, files: dict[str, str], redis_dir: str = "redis") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "t"\n\n[tool.sovren-db]\nredis_dir = "{redis_dir}"\n')
    folder = root / redis_dir
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(textwrap.dedent(text))
    return root


def settings_for(root: Path, url: str | None, **environ: str):
    env = {"REDIS_URL": url, **environ} if url else dict(environ)
    return load_settings(root, environ=env)


def connect(root: Path, url: str, **environ: str) -> RedisBackend:
    backend = RedisBackend(settings_for(root, url, **environ))
    backend.connect()
    return backend


def after_each_batch(monkeypatch, hook) -> None:
    """Call ``hook(count)`` after each batch a family move moves, on the server or from the client."""
    from sovren_db.redis import moves

    real = moves.batch_mover

    def hooked(backend, client, move):
        step = real(backend, client, move)

        def stepped(cursor, batch, count):
            result = step(cursor, batch, count)
            hook(count)
            return result
        return stepped

    monkeypatch.setattr(moves, "batch_mover", hooked)
