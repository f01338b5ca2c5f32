"""How big a seed is before it starts, and whether this machine can hold it.

Generation streams block after block (:data:`.plan.BLOCK_USERS` users at a time), so the seed process
itself needs about one block of memory at any scale; what grows with ``--scale`` is the data the servers
keep. The estimate counts rows, documents and keys from the profile's amounts (``Plan.expected``) and
sizes them with per-store averages measured on Sovren's own seeds (table + indexes; BSON + indexes;
Redis key + value + overhead). A seed larger than this machine's available memory and free disk
together cannot be loaded by servers running here, and is refused before anything is generated.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import Refused
from .plan import Plan

# Average bytes one seeded item takes on its server (measured on the ci and dev profiles, rounded up).
BYTES_PER = {"postgres": 600, "mongo": 1200, "redis": 250}


@dataclass(frozen=True)
class Estimate:
    items: dict[str, int]            # rows, documents, keys per store

    @property
    def total(self) -> int:
        return sum(self.items.values())

    @property
    def bytes(self) -> int:
        return sum(BYTES_PER[store] * count for store, count in self.items.items())


def estimate(plan: Plan, stores: tuple[str, ...]) -> Estimate:
    """Rows, documents and keys ``plan`` makes in ``stores`` (users are Postgres rows)."""
    items = dict.fromkeys(stores, 0)
    tables = plan.graph.names() if plan.graph else ["users"]
    items["postgres"] = items.get("postgres", 0) + sum(round(plan.expected(name)) for name in tables)
    if "mongo" in items:
        items["mongo"] += sum(round(plan.expected(name)) for name in plan.profile.documents)
    if "redis" in items:
        items["redis"] += sum(round(plan.expected(name)) for name in plan.profile.families)
    return Estimate(items)


def machine_capacity(folder: Path) -> int:
    """Bytes of memory available plus free disk under ``folder`` on this machine."""
    available = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    return available + shutil.disk_usage(folder).free


def refuse_beyond_machine(plan: Plan, stores: tuple[str, ...], folder: Path) -> Estimate:
    """The estimate, or Refused (one sentence) when it exceeds what this machine has."""
    found = estimate(plan, stores)
    capacity = machine_capacity(folder)
    if found.bytes > capacity:
        raise Refused(
            f"Seeding refused: {plan.describe()} makes about {found.total:,} rows, documents and keys "
            f"(about {_size(found.bytes)} on the servers), more than this machine's {_size(capacity)} of "
            "available memory and free disk; use a smaller --scale (fractions such as 0.1 are allowed).")
    return found


def _size(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if count < 1024 or unit == "PB":
            return f"{count:,.1f} {unit}" if unit != "B" else f"{count:,.0f} B"
        count /= 1024
    return f"{count:,.1f} PB"
