"""The Alembic plugin: registration with Alembic 1.18+'s Plugin API and autogenerate.

Autogenerate runs for real (Alembic's produce_migrations over an in-memory
SQLite connection standing for the Postgres side). The Mongo backend is a
stand-in whose live state comes from reply fixtures: this checks the wiring
into Alembic, not MongoDB.
"""

from __future__ import annotations

import dataclasses
import itertools

import mongo_replies as R
import pytest
import sqlalchemy
from alembic.autogenerate import produce_migrations, render_python_code
from alembic.runtime.migration import MigrationContext
from alembic.runtime.plugins import Plugin
from alembic.util import DispatchPriority
from mongo_support import SOVREN_MONGO_DIR, make_settings

from sovren_db.core.runtime import Runtime
from sovren_db.mongo import plugin as mongo_plugin
from sovren_db.mongo.live import state_from_replies
from sovren_db.plugin import add_kind_comparator

_names = itertools.count()


class LiveStateBackend:
    """Stands in for MongoBackend: only ``introspect`` is used by the comparator."""

    store = "mongo"

    def __init__(self, state):
        self.state = state

    def introspect(self):
        return self.state


@pytest.fixture
def plugin():
    registered = Plugin(f"test.sovren_mongo_{next(_names)}")
    mongo_plugin.setup(registered)
    yield registered
    registered.remove()


def autogenerate(plugin, runtime):
    engine = sqlalchemy.create_engine("sqlite://")
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection,
            opts={"sovren_runtime": runtime, "autogenerate_plugins": ["alembic.autogenerate.*", plugin.name]},
        )
        return produce_migrations(context, sqlalchemy.MetaData())


def runtime_with(tmp_path, backend, mongo_dir=SOVREN_MONGO_DIR) -> Runtime:
    settings = dataclasses.replace(
        make_settings(tmp_path, "mongodb://127.0.0.1:27017/sovren_ai"), mongo_dir=mongo_dir
    )
    runtime = Runtime(settings)
    runtime._backends["mongo"] = backend
    return runtime


def test_setup_registers_the_store_comparator_last_and_one_comparator_per_kind(plugin):
    registry = plugin.autogenerate_comparators._registry
    assert registry[("autogenerate", "default", DispatchPriority.LAST)] == [
        (mongo_plugin.compare_mongo, None)
    ]
    kinds = registry[("mongo", "default", DispatchPriority.MEDIUM)]
    assert [(fn.__name__, kind) for fn, kind in kinds] == [
        ("compare_mongo_collections", "collections"), ("compare_mongo_indexes", "indexes"),
        ("compare_mongo_sharding", "sharding")]
    assert len(registry) == 2


def test_a_plugin_adds_a_kind_of_object_without_editing_the_store(tmp_path, plugin):
    seen = []
    add_kind_comparator(plugin, "mongo", "views", lambda declared, live: seen.append(sorted(live.collections)) or [])
    live = state_from_replies("sovren_ai", [R.LIST_COLLECTIONS["cursor"]["firstBatch"][0]],
                              {"communications": R.LIST_INDEXES_COMMUNICATIONS["cursor"]["firstBatch"]}, sharded=False)
    autogenerate(plugin, runtime_with(tmp_path, LiveStateBackend(live)))
    assert seen == [["communications"]]  # called once, with the states the store read once


def test_autogenerate_writes_mongo_operations_and_their_reverses(tmp_path, plugin):
    live = state_from_replies(
        "sovren_ai",
        [R.LIST_COLLECTIONS["cursor"]["firstBatch"][0]],
        {"communications": R.LIST_INDEXES_COMMUNICATIONS["cursor"]["firstBatch"]},
        sharded=False,
    )
    runtime = runtime_with(tmp_path, LiveStateBackend(live))
    script = autogenerate(plugin, runtime)
    upgrade = [(op.op_name, op.collection) for op in script.upgrade_ops.ops]
    assert upgrade == [
        ("mongo_create_collection", "analytics_payloads"),
        ("mongo_create_collection", "executives"),
        ("mongo_create_collection", "scenario_simulations"),
    ]
    assert [(op.op_name, op.collection) for op in script.downgrade_ops.ops] == [
        ("mongo_drop_collection", "scenario_simulations"),
        ("mongo_drop_collection", "executives"),
        ("mongo_drop_collection", "analytics_payloads"),
    ]
    assert script.upgrade_ops.as_diffs()[0][0] == "mongo_create_collection"
    assert "op.mongo_create_collection(" in render_python_code(script.upgrade_ops)
    assert any("shard keys and zones of" in note for note in runtime.notes)


def test_an_unconfigured_mongo_adds_nothing(tmp_path, plugin):
    runtime = runtime_with(tmp_path, None)
    assert autogenerate(plugin, runtime).upgrade_ops.ops == []


def test_without_declarations_mongo_is_not_compared(tmp_path, plugin):
    runtime = runtime_with(tmp_path, LiveStateBackend(None), mongo_dir=tmp_path / "mongo")
    assert autogenerate(plugin, runtime).upgrade_ops.ops == []
    assert runtime.notes == [f"mongo: no declarations in {tmp_path / 'mongo'}, collections not compared."]


def test_a_revision_calling_op_mongo_collects_the_step_for_the_runtime(tmp_path):
    from alembic.operations import Operations

    runtime = runtime_with(tmp_path, None)
    engine = sqlalchemy.create_engine("sqlite://")
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"sovren_runtime": runtime})
        op = Operations(context)
        op.mongo_create_index(collection="communications", index={"name": "a_1", "key": [["a", 1]]})
        op.mongo_set_validator(collection="communications", validator=None)
    assert [(o.op_name, o.collection) for o in runtime._pending] == [
        ("mongo_create_index", "communications"),
        ("mongo_set_validator", "communications"),
    ]
