"""Data residency of a target's seed: every user it draws lives in the target's region.

A target naming a ``region`` (``[tool.sovren-db.targets.eu] region = "eu"``)
is seeded with the profile's population drawn in that region: each user's
region is the target's (so the documents' ``region``, the shard key's first
field, routes them to that zone), and the draws come from streams of their
own, so no user, nor anything a user owns, is seeded in two regions' stores.
The region is part of the seed's identity (the manifest's fingerprint): the
same profile seeded for another region is another seed.

What a region changes is the profile's to say, never the engine's: the
profile lists its regions (``regions = { eu = 11, us = 9 }``, the weights of
the users' regions when no target pins one) and a column or field may name
its values per region::

    columns.currency = { values = ["EUR", "USD"], by_region = { eu = ["EUR", "GBP"], us = ["USD"] } }

Seeded for a target in ``eu``, that column takes ``by_region.eu``; with no
region, or in a region the column does not name, its ``values``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING

from ..core.errors import ConfigError
from .vocab import REGIONS

if TYPE_CHECKING:
    from .profiles import ColumnSpec, Profile, TableProfile

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")


def check_region(region: object, where: str) -> str:
    """``region`` when it can name a region (a profile says which regions it draws in); ConfigError otherwise."""
    if not isinstance(region, str) or not NAME.fullmatch(region):
        raise ConfigError(f"{where} is {region!r}; it must be a region's name (letters, digits, _ . -).")
    return region


def regions_of(profile: "Profile") -> tuple[str, ...]:
    """The regions users are drawn in, each repeated by its weight (picked uniformly)."""
    if profile.regions is None:
        return REGIONS
    return tuple(name for name, weight in profile.regions.items() for _ in range(weight))


def for_region(profile: "Profile", region: str | None) -> "Profile":
    """``profile`` as a target of ``region`` seeds it: its users there, its columns' ``by_region`` values
    for it (unchanged without a region); ConfigError when the profile does not draw users in ``region``."""
    if region is None:
        return profile
    if region not in set(regions_of(profile)):
        known = ", ".join(sorted(set(regions_of(profile))))
        raise ConfigError(f"{profile.path}: the target's region {region!r} is not one of the profile's regions "
                          f"({known}); list it in regions = {{...}}.")
    return replace(profile, region=region, fingerprint=f"{profile.fingerprint}/region={region}",
                   tables=_localised(profile.tables, region), documents=_localised(profile.documents, region),
                   families=_localised(profile.families, region))


def _localised(specs: dict[str, "TableProfile"], region: str) -> dict[str, "TableProfile"]:
    return {name: replace(spec, columns={c: _in(given, region) for c, given in spec.columns.items()},
                          value=spec.value and _in(spec.value, region)) for name, spec in specs.items()}


def _in(given: "ColumnSpec", region: str) -> "ColumnSpec":
    if not given.by_region or region not in given.by_region:
        return given
    return replace(given, values=given.by_region[region])
