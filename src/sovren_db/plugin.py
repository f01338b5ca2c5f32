"""Registers sovren-db's Alembic plugins (Alembic 1.18+ ``Plugin``).

``migrations/env.py`` calls :func:`install` and passes
``autogenerate_plugins=AUTOGENERATE_PLUGINS`` to ``context.configure``.
Registration is explicit rather than through the ``alembic.plugins`` entry
point: that entry point is loaded while Alembic itself is still importing,
and our operation modules import ``alembic.operations``.
"""

from __future__ import annotations

import importlib

from alembic.runtime.plugins import Plugin

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
