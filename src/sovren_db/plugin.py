"""Registers sovren-db's Alembic plugins (Alembic 1.18+ ``Plugin``).

``migrations/env.py`` calls :func:`install` and passes
``autogenerate_plugins=AUTOGENERATE_PLUGINS`` to ``context.configure``.
Registration is explicit rather than through the ``alembic.plugins`` entry
point: that entry point is loaded while Alembic itself is still importing,
and our operation modules import ``alembic.operations``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from alembic.runtime.plugins import Plugin
from alembic.util import PriorityDispatchResult

PLUGINS = {
    "sovren_db.postgres": "sovren_db.postgres.plugin",
    "sovren_db.mongo": "sovren_db.mongo.plugin",
    "sovren_db.redis": "sovren_db.redis.plugin",
}
AUTOGENERATE_PLUGINS = ["alembic.autogenerate.*", "sovren_db.*"]
REGISTERED: dict[str, Plugin] = {}  # Alembic refuses a second Plugin of one name, and lists none publicly


def install(stores: tuple[str, ...] = ("postgres", "mongo", "redis")) -> None:
    """Register every store's operations, and the comparators of ``stores``.

    Operations are always registered so that any revision file can be read;
    comparators only for the stores this project declares.
    """
    from .core.guard import install_guards

    install_guards()
    for name, module_name in PLUGINS.items():
        module = importlib.import_module(module_name)
        if name in REGISTERED or name.rsplit(".", 1)[1] not in stores:
            continue
        REGISTERED[name] = Plugin(name)  # what Plugin.setup_plugin_from_module does, keeping the plugin
        module.setup(REGISTERED[name])


def add_kind_comparator(plugin: Plugin, store: str, kind: str, compare: Callable[[Any, Any], list]) -> None:
    """Register ``compare(declared, live) -> operations``, the pure comparator of one kind of
    ``store``'s objects, for the ``store`` comparison target, as Alembic registers its table and
    column comparators; the store's own comparator reads both states once and dispatches it
    (:func:`compare_kinds`), so that a plugin adds a kind without editing the store."""

    def compare_kind(autogen_context: Any, upgrade_ops: Any, declared: Any, live: Any) -> PriorityDispatchResult:
        upgrade_ops.ops.extend(compare(declared, live))
        return PriorityDispatchResult.CONTINUE

    compare_kind.__name__ = compare_kind.__qualname__ = f"compare_{store}_{kind}"
    plugin.add_autogenerate_comparator(compare_kind, store, kind)


def compare_kinds(autogen_context: Any, upgrade_ops: Any, store: str, declared: Any, live: Any) -> None:
    """Run every comparator registered for ``store`` on the two states."""
    autogen_context.comparators.dispatch(store)(autogen_context, upgrade_ops, declared, live)
