"""Comparators of Mongo objects, one module per kind, as Alembic's ``autogenerate/compare/``:
``collections`` (created, dropped, options, validation), ``indexes``, ``sharding`` (shard keys
and zones).

Each module has a pure ``compare(declared, live)`` giving operations and a ``setup(plugin)``
that registers it for the ``"mongo"`` comparison target, with its kind as the element; the
store's comparator (:mod:`..plugin`) reads both states once and dispatches that target.
:func:`..diff.diff_states` runs the kinds in :data:`KINDS` order without Alembic.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import collections, indexes, sharding

if TYPE_CHECKING:
    from alembic.runtime.plugins import Plugin

# the order their operations run in: a collection made capped loses its indexes before they are
# compared; a renamed index goes before its replacement is built; shard keys need their indexes
KINDS = (collections, indexes, sharding)


def setup(plugin: "Plugin") -> None:
    for kind in KINDS:
        kind.setup(plugin)
