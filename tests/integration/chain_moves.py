"""A three-revision chain with Redis steps in each, random moves along it, and a Redis snapshot.

Shared by the convergence tests and the failure tests: the project's initial revision,
then ``PROBE_2`` (a family, a configuration value) and ``PROBE_3`` (the family updated,
a consumer group).
"""

from __future__ import annotations

import random
from pathlib import Path

import redis as redis_py

from sovren_db import commands
from sovren_db.core.config import load_settings
from tests.integration.conftest import add_revision

PROBE_2, PROBE_3 = "c0ffee000002", "c0ffee000003"
FAMILY = {"name": "probe", "pattern": "probe:{probe_id}", "type": "string",
          "ttl": {"policy": "none", "min": None, "max": None, "default": None}, "pii": False, "subject": None,
          "owner": "tests", "description": "A probe.", "max_elements": None, "max_bytes": None,
          "hash_tag": None, "groups": [], "foreign": False}
FAMILY_V2 = {**FAMILY, "description": "A probe, described again."}
STREAM = "{probe}:events"
CONFIG_DEFAULTS = {"maxmemory-samples": "5", "maxmemory-policy": "noeviction", "notify-keyspace-events": ""}
REGISTRY, LEDGER, POSITION = "{sovren-db}:registry", "{sovren-db}:ledger", "{sovren-db}:position"


def add_probe_revisions(project: Path) -> list[str]:
    """Two revisions on top of the project's chain; returns the whole chain, oldest first."""
    add_revision(project, PROBE_2,
                 f"    op.redis_declare_family(family={FAMILY!r})\n"
                 "    op.redis_set_config(name='maxmemory-samples', value='7', previous='5')",
                 "op.redis_set_config(name='maxmemory-samples', value='5', previous='7')\n"
                 f"    op.redis_retire_family(family={FAMILY!r})")
    add_revision(project, PROBE_3,
                 f"    op.redis_declare_family(family={FAMILY_V2!r}, previous={FAMILY!r})\n"
                 f"    op.redis_create_group(key={STREAM!r}, group='readers')",
                 f"op.redis_drop_group(key={STREAM!r}, group='readers')\n"
                 f"    op.redis_declare_family(family={FAMILY!r}, previous={FAMILY_V2!r})")
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(project / "migrations"))
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def reset_config(url: str) -> None:
    client = redis_py.Redis.from_url(url)
    for name, value in CONFIG_DEFAULTS.items():
        client.config_set(name, value)


def snapshot(url: str) -> dict:
    """What the chain owns in Redis: registry, ledger keys, position, configuration, consumer groups."""
    client = redis_py.Redis.from_url(url, decode_responses=True)
    groups = {}
    for key in (STREAM, "{comms}:outbox"):
        groups[key] = sorted(g["name"] for g in client.xinfo_groups(key)) if client.exists(key) else []
    return {"registry": client.hgetall(REGISTRY), "ledger": sorted(client.hkeys(LEDGER)),
            "position": client.get(POSITION), "groups": groups,
            "config": {name: client.config_get(name)[name] for name in CONFIG_DEFAULTS}}


def random_moves(rng: random.Random, chain: list[str], count: int) -> list[str]:
    return [rng.choice(["migrate", "downgrade -1", "downgrade base", f"migrate {rng.choice(chain)}"])
            for _ in range(count)]


def apply_move(project: Path, move: str) -> None:
    """One move with the environment as it is (REDIS_URL set or not); a move from nowhere is skipped."""
    settings = load_settings(project)
    verb, _, target = move.partition(" ")
    if verb == "migrate":
        commands.migrate(settings, target or "head")
    elif commands.current_heads(settings):
        commands.downgrade(settings, target)
