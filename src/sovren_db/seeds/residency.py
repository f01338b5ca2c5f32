"""Data residency of a target's seed: every user it draws lives in the target's region.

A target naming a ``region`` (``[tool.sovren-db.targets.eu] region = "eu"``)
is seeded with the profile's population drawn in that region: each user's
region is the target's (so the documents' ``region``, the shard key's first
field, routes them to that zone, and transactions use that region's
currencies), and the draws come from streams of their own, so no user, nor
anything a user owns, is seeded in two regions' stores. The region is part of
the seed's identity (the manifest's fingerprint): the same profile seeded for
another region is another seed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from ..core.errors import ConfigError
from .vocab import CURRENCIES, REGIONS

if TYPE_CHECKING:
    from .declared import ColumnPlan
    from .profiles import Profile


def check_region(region: object, where: str) -> str:
    """``region`` when it is one the seed draws users in; ConfigError naming ``where`` otherwise."""
    known = sorted(set(REGIONS))
    if region not in known:
        raise ConfigError(f"{where} is {region!r}; it may be {' or '.join(known)}.")
    return str(region)


def for_region(profile: "Profile", region: str | None) -> "Profile":
    """``profile`` as a target of ``region`` seeds it (unchanged without a region)."""
    if region is None:
        return profile
    return replace(profile, region=region, fingerprint=f"{profile.fingerprint}/region={region}")


def in_region(plan: "ColumnPlan", region: str | None) -> "ColumnPlan":
    """A currency column as ``region`` keeps its money: the profile's values that are the region's currencies
    (their weights kept), or the region's own when the profile names none of them."""
    if region is None or region not in CURRENCIES:
        return plan
    local = CURRENCIES[region]
    kept = tuple(v for v in (plan.choices or ()) if v in local)
    return replace(plan, kind="choice", choices=kept or local)
