"""The Alembic plugin: autogenerate appends Redis operations, downgrade gets their reverses."""

from __future__ import annotations

import itertools
import re
from types import SimpleNamespace

import pytest
from alembic.autogenerate import render_python_code
from alembic.operations.ops import DowngradeOps, UpgradeOps
from alembic.runtime.plugins import Plugin
from alembic.util import DispatchPriority, PriorityDispatchResult

from sovren_db.core.runtime import Runtime
from sovren_db.redis import compare, ops
from sovren_db.redis.declared import load_declarations
from sovren_db.redis.plugin import compare_redis, setup

from redis_helpers import settings_for

pytestmark = pytest.mark.redis
_names = itertools.count()


def autogen_context(runtime: Runtime):
    """What the comparator reads of Alembic's AutogenContext: the runtime, and the comparators
    registered by the store's setup (the kinds it dispatches to)."""
    kinds = Plugin(f"test.sovren_redis_kinds_{next(_names)}")
    compare.setup(kinds)
    kinds.remove()  # out of Alembic's global list; its comparators stay
    return SimpleNamespace(migration_context=SimpleNamespace(opts={Runtime.OPTS_KEY: runtime}),
                           comparators=kinds.autogenerate_comparators)


def test_autogenerate_writes_redis_ops_and_their_reverses(project, redis_url, client):
    client.config_set("notify-keyspace-events", "")
    (project / "redis" / "server.toml").write_text('[server]\nnotify-keyspace-events = "Ex"\n')
    runtime = Runtime(settings_for(project, redis_url))
    upgrade = UpgradeOps(ops=[])
    try:
        assert compare_redis(autogen_context(runtime), upgrade) is PriorityDispatchResult.CONTINUE
    finally:
        runtime.close()
    kinds = [type(op) for op in upgrade.ops]
    assert kinds.count(ops.DeclareKeyFamilyOp) == 3 and ops.DeclareChannelOp in kinds
    assert ops.CreateGroupOp in kinds and ops.SetConfigOp in kinds
    config = next(op for op in upgrade.ops if isinstance(op, ops.SetConfigOp))
    assert (config.value, config.previous) == ("Ex", "")

    downgrade = DowngradeOps(ops=[])
    upgrade.reverse_into(downgrade)
    assert [type(op) for op in downgrade.ops].count(ops.RetireKeyFamilyOp) == 3
    code = render_python_code(upgrade)
    assert "op.redis_declare_family(" in code and "op.redis_set_config(" in code
    assert "op.redis_create_group(key='{q}:outbox', group='workers')" in code  # fits: one line, no defaults
    retired = [line.strip() for line in render_python_code(downgrade).splitlines() if "redis_retire_family" in line]
    assert len(retired) == 3 and all(re.fullmatch(r"op\.redis_retire_family\(family='\w+'\)", r) for r in retired)


def test_without_redis_the_comparator_adds_nothing(project):
    runtime = Runtime(settings_for(project, None))
    upgrade = UpgradeOps(ops=[])
    assert compare_redis(autogen_context(runtime), upgrade) is PriorityDispatchResult.CONTINUE
    assert upgrade.ops == [] and any("redis: not configured" in note for note in runtime.notes)


def test_without_redis_the_chain_stands_in_for_the_server(project):
    """No REDIS_URL, but the chain's steps were read: compared with their replay, and said so."""
    declared = load_declarations(project / "redis")
    runtime = Runtime(settings_for(project, None))
    runtime.chain_steps = [ops.DeclareKeyFamilyOp(f.to_json()) for f in declared.families.values()]
    upgrade = UpgradeOps(ops=[])
    assert compare_redis(autogen_context(runtime), upgrade) is PriorityDispatchResult.CONTINUE
    assert upgrade.ops == [ops.DeclareChannelOp(declared.channels["live"].to_json()),
                           ops.CreateGroupOp("{q}:outbox", "workers")]
    assert runtime.notes[-1] == "redis: no server; compared the declarations with the revision chain's redis steps."

    runtime.chain_steps += upgrade.ops
    again = UpgradeOps(ops=[])
    compare_redis(autogen_context(runtime), again)
    assert again.ops == []


def test_setup_registers_the_comparator_last_and_one_comparator_per_kind():
    plugin = Plugin("sovren_db.redis_test_only")
    try:
        setup(plugin)
        registry = plugin.autogenerate_comparators._registry
        assert registry[("autogenerate", "default", DispatchPriority.LAST)] == [(compare_redis, None)]
        kinds = registry[("redis", "default", DispatchPriority.MEDIUM)]
        assert [(fn.__name__, kind) for fn, kind in kinds] == [
            ("compare_redis_families", "families"), ("compare_redis_channels", "channels"),
            ("compare_redis_groups", "groups"), ("compare_redis_config", "config")]
    finally:
        plugin.remove()
