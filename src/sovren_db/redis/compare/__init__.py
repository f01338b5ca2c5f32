"""Comparators of Redis objects, one module per kind, as Alembic's ``autogenerate/compare/``:
``families``, ``channels``, ``groups`` (consumer groups), ``config`` (server settings).

Each module has a pure ``compare(declared, live)`` giving operations and a ``setup(plugin)``
that registers it for the ``"redis"`` comparison target, with its kind as the element; the
store's comparator (:mod:`..plugin`) reads the registry, the configuration and the groups once
and dispatches that target. :func:`..diff.diff_redis` runs the kinds in :data:`KINDS` order
without Alembic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import channels, config, families, groups

if TYPE_CHECKING:
    from alembic.runtime.plugins import Plugin

KINDS = (families, channels, groups, config)


def setup(plugin: "Plugin") -> None:
    for kind in KINDS:
        kind.setup(plugin)
