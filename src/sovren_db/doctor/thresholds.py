"""``[tool.sovren-db.doctor]``: the thresholds doctor and the exporter measure against.

The defaults are the architecture's runbook (Appendix H.4: Postgres statements
averaging over 200 ms, Redis latency over 2 ms, Mongo page faults over
1000/s); the others are the usual on-call limits, each one key to override.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from ..core.errors import ConfigError


@dataclass(frozen=True)
class Thresholds:
    statement_mean_ms: float = 200.0          # H.4: avg query > 200ms -> investigate
    long_running_seconds: float = 300.0       # an active statement or transaction older than this
    idle_in_transaction_seconds: float = 60.0
    lock_wait_seconds: float = 10.0           # a session blocked by another for longer than this
    connections_ratio: float = 0.8            # connections / max_connections
    replication_lag_seconds: float = 30.0
    sequence_ratio: float = 0.8               # last_value / max_value
    redis_latency_ms: float = 2.0             # H.4: latency > 2ms -> scale cluster
    redis_ping_samples: int = 50              # round trips timed per master (bounded)
    redis_memory_ratio: float = 0.9           # used_memory / maxmemory
    latency_window_seconds: float = 600.0     # LATENCY LATEST and SLOWLOG entries younger than this count
    key_sample: int = 2000                    # keys sampled for the conventions (bounded)
    mongo_page_faults_per_second: float = 1000.0  # H.4: pageFaults > 1000/s -> add memory/shard
    mongo_operation_seconds: float = 60.0
    mongo_sample_seconds: float = 1.0         # between the two serverStatus samples
    mongo_chunk_imbalance: int = 8            # chunks between the fullest and the emptiest shard of a zone
    statement_fingerprints: int = 20          # slowest statements exported as metrics (bounded label set)
    # Sentinel (runbook H.2): the sentinels to ask ("host:port") and the master name they monitor
    sentinels: tuple[str, ...] = ()
    sentinel_master: str = "mymaster"
    # the audit chain's signed checkpoints (audit seal --to): where they are kept ("redis", "redis:LIST" or a
    # file; "" none) and the age of the latest beyond which doctor says to seal again
    audit_checkpoints: str = ""
    audit_checkpoint_hours: float = 24.0

    @property
    def statement_mean_seconds(self) -> float:
        return self.statement_mean_ms / 1000

    @property
    def redis_latency_seconds(self) -> float:
        return self.redis_latency_ms / 1000


_INTEGERS = {"redis_ping_samples", "key_sample", "statement_fingerprints", "mongo_chunk_imbalance"}
_RATIOS = {"connections_ratio", "sequence_ratio", "redis_memory_ratio"}


def load_thresholds(root: Path) -> Thresholds:
    """The thresholds of ``root/pyproject.toml``; a bad one is one ConfigError naming the key."""
    path = root / "pyproject.toml"
    try:
        table = tomllib.loads(path.read_text()).get("tool", {}).get("sovren-db", {}).get("doctor", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read as TOML: {exc}.") from None
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [tool.sovren-db.doctor] must be a table of thresholds.")
    return thresholds_from(table, f"{path} [tool.sovren-db.doctor]")


def thresholds_from(table: dict, where: str) -> Thresholds:
    known = {f.name for f in fields(Thresholds)}
    values = {}
    for key, value in table.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown threshold {key!r} (known: {', '.join(sorted(known))}).")
        values[key] = (_sentinel_value(key, value, where) if key.startswith("sentinel") else
                       _checkpoints(value, where) if key == "audit_checkpoints" else _checked(key, value, where))
    return Thresholds(**values)


def _sentinel_value(key: str, value: object, where: str) -> str | tuple[str, ...]:
    if key == "sentinel_master":
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{where}: sentinel_master must be the monitored master's name, not {json.dumps(value)}.")
        return value
    addresses = value if isinstance(value, list) else None
    if not addresses or not all(isinstance(a, str) and a.rpartition(":")[2].isdigit() for a in addresses):
        raise ConfigError(f"{where}: sentinels must be a list of \"host:port\" addresses, not {json.dumps(value)}.")
    return tuple(addresses)


def _checkpoints(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: audit_checkpoints must name where 'audit seal --to' keeps them (\"redis\", "
                          f"\"redis:LIST\" or a file), not {json.dumps(value)}.")
    return value


def _checked(key: str, value: object, where: str) -> float | int:
    integer = key in _INTEGERS
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{where}: {key} must be {kind}, not {json.dumps(value)}.")
    if value <= 0 or (key in _RATIOS and value > 1):
        bounds = "between 0 and 1 (a fraction)" if key in _RATIOS else "greater than 0"
        raise ConfigError(f"{where}: {key} must be {bounds}, not {json.dumps(value)}.")
    return value
