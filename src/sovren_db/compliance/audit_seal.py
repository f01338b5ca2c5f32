"""Signed checkpoints of the audit chain's head: ``sovren-db audit seal`` (issue 13.3).

The chain proves that no row inside it was altered, but whoever can write the
table (the application's Postgres superuser) can cut or rewrite its tail and
recompute the hashes after the cut. A checkpoint fixes the head outside
Postgres: the number of events, the last event id and its hash, signed with
HMAC-SHA256 under a key Postgres never sees (an environment variable). It is
appended to a file, pushed on a Redis list, or printed for log shipping;
``audit verify --checkpoint`` then requires the sealed event to be in the chain
with the sealed hash and position, so a truncated or rewritten tail shows.

Checkpoints are JSON lines: ``{"events", "head_hash", "last_event_id",
"sealed_at", "chains", "hmac"}``, the HMAC taken over the other fields as
sorted, compact JSON. ``chains`` (since the chain split, revision 7c3e9a41f0b2)
holds every chain's ``{"events", "last_event_id", "head_hash"}`` by chain
number ("0" the chain before the fork); verify checks each chain's tail. A
checkpoint written before it has no ``chains`` and is signed over the other
fields only, so it keeps verifying: its last event is on the chain before the
fork, whose events all precede every chain's.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.errors import ConfigError, StoreUnavailable
from ..core.urls import redact

if TYPE_CHECKING:
    from ..core.config import Settings

KEY_ENV = "SOVREN_AUDIT_SEAL_KEY"
REDIS_LIST = "sovren:audit:checkpoints"


@dataclass(frozen=True)
class Checkpoint:
    events: int
    last_event_id: int | None
    head_hash: str | None
    sealed_at: str
    chains: dict | None = None

    def fields(self) -> dict:
        fields = asdict(self)
        if self.chains is None:   # a checkpoint of before the split: signed without the key
            del fields["chains"]
        return fields

    def body(self) -> bytes:
        return json.dumps(self.fields(), sort_keys=True, separators=(",", ":")).encode()

    def signature(self, key: bytes) -> str:
        return hmac.new(key, self.body(), hashlib.sha256).hexdigest()

    def line(self, key: bytes) -> str:
        return json.dumps({**self.fields(), "hmac": self.signature(key)}, sort_keys=True)


def seal_now(events: int, last_event_id: int | None, head_hash: str | None, chains: dict | None = None) -> Checkpoint:
    return Checkpoint(events, last_event_id, head_hash, datetime.now(timezone.utc).isoformat(timespec="seconds"),
                      chains)


def read_key(env: str = KEY_ENV) -> bytes:
    key = os.environ.get(env, "")
    if len(key) < 16:
        raise ConfigError(f"{env} must hold the checkpoint signing key (16 characters or more); "
                          f"it is {'too short' if key else 'not set'}.")
    return key.encode()


def parse(line: str, key: bytes, where: str) -> tuple[Checkpoint, bool]:
    """The checkpoint in ``line`` and whether its signature holds under ``key``."""
    try:
        fields = json.loads(line)
        signature = fields.pop("hmac")
        checkpoint = Checkpoint(**fields)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise ConfigError(f"{where}: the latest checkpoint is not a sovren-db audit checkpoint.") from None
    return checkpoint, hmac.compare_digest(str(signature), checkpoint.signature(key))


class Target:
    """Where checkpoints go: ``-`` (stdout), ``redis`` or ``redis:LIST`` (REDIS_URL), or a file path."""

    def __init__(self, spec: str, settings: "Settings"):
        self.spec, self.settings = spec, settings
        self.redis_list = spec.partition(":")[2] or REDIS_LIST if spec.split(":", 1)[0] == "redis" else None

    def __str__(self) -> str:
        if self.redis_list:
            return f"Redis list {self.redis_list} at {redact(self.settings.require_url('redis'))}"
        return "stdout" if self.spec == "-" else str(Path(self.spec))

    def append(self, line: str) -> None:
        if self.redis_list:
            self._redis(lambda client: client.rpush(self.redis_list, line))
        elif self.spec != "-":
            try:
                with open(self.spec, "a", encoding="utf-8") as out:
                    out.write(line + "\n")
            except OSError as exc:
                raise ConfigError(f"{self.spec}: cannot append the checkpoint ({exc.strerror}).") from None

    def latest(self) -> str:
        if self.redis_list:
            found = self._redis(lambda client: client.lindex(self.redis_list, -1))
            text = found.decode() if found else ""
        else:
            try:
                lines = Path(self.spec).read_text(encoding="utf-8").splitlines()
            except OSError as exc:
                raise ConfigError(f"{self.spec}: cannot read checkpoints ({exc.strerror}).") from None
            text = next((ln for ln in reversed(lines) if ln.strip()), "")
        if not text:
            raise ConfigError(f"{self}: holds no checkpoint (run 'sovren-db audit seal --to {self.spec}').")
        return text

    def _redis(self, action):
        import redis

        url = self.settings.require_url("redis")
        try:
            with redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10) as client:
                return action(client)
        except redis.RedisError as exc:
            raise StoreUnavailable("redis", url, str(exc)) from None
