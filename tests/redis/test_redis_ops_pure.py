"""Pure: every operation describes itself, reverses, renders into a revision and back."""

from __future__ import annotations

import dataclasses

import pytest

from sovren_db.core.storeops import STORE_OPS, IrreversibleOp, StoreOp, op_from_record
from sovren_db.redis import ops, toimpl
from sovren_db.redis.chain import with_past
from sovren_db.redis.declared import load_declarations

from redis_helpers import REPO

FAMILIES = load_declarations(REPO / "redis").families
SESSION = FAMILIES["session"].to_json()
PRIORITY = FAMILIES["celery_priority_queue"].to_json()   # control characters in the pattern
CHANNEL = load_declarations(REPO / "redis").channels["user_live"].to_json()

ALL = [
    ops.DeclareKeyFamilyOp(SESSION),
    ops.DeclareKeyFamilyOp(SESSION, dict(SESSION, description="before")),
    ops.DeclareKeyFamilyOp(PRIORITY),
    ops.RetireKeyFamilyOp("session", past=SESSION),
    ops.RenameKeyFamilyOp(dict(SESSION, name="sess", pattern="sess:{user_id}"), SESSION, "keep-new"),
    ops.RenameKeyFamilyOp(dict(SESSION, pattern="sess:{user_id}"), SESSION, overlap=True, batch=200, rate=5000),
    ops.ContractKeyFamilyOp(dict(SESSION, name="sess", pattern="sess:{user_id}"), SESSION, batch=100),
    ops.BackfillTtlOp(SESSION, 3600),
    ops.DeleteKeyFamilyOp(SESSION),
    ops.DeclareChannelOp(CHANNEL),
    ops.RetireChannelOp("user_live", past=CHANNEL),
    ops.SetConfigOp("maxmemory-policy", "volatile-lru", "noeviction"),
    ops.SetConfigOp("maxmemory-policy", "volatile-lru"),
    ops.CreateGroupOp("{comms}:outbox", "dispatchers"),
    ops.DropGroupOp("{comms}:outbox", "dispatchers"),
    ops.SkipReverseOp("something"),
]


def test_every_redis_operation_is_registered_with_its_name():
    names = {op.op_name for op in ALL}
    assert names == {name for name, cls in STORE_OPS.items() if cls.store == "redis"}
    assert all(name.startswith("redis_") for name in names)
    assert ops.DeleteKeyFamilyOp.destructive and ops.DropGroupOp.destructive
    assert not ops.RenameKeyFamilyOp.destructive


@pytest.mark.parametrize("op", ALL, ids=lambda op: op.op_name)
def test_describe_reverse_render(op):
    assert op.describe() and "\n" not in op.describe()
    reverse = op.reverse()
    assert isinstance(reverse, StoreOp) and reverse.store == "redis"
    calls = []

    class Recorder:
        def __getattr__(self, name):
            return lambda **kwargs: calls.append((name, kwargs))

    exec(op.render(), {"op": Recorder()})
    assert [name for name, _ in calls] == [op.op_name]  # a revision leaves defaults out; the op has them again
    assert op_from_record(op.op_name, calls[0][1]) == op_from_record(op.op_name, op.arguments()) == op


def test_reverses_undo():
    declare = ops.DeclareKeyFamilyOp(SESSION)
    assert declare.reverse() == ops.RetireKeyFamilyOp("session")
    assert declare.reverse().reverse() == declare
    update = ops.DeclareKeyFamilyOp(SESSION, dict(SESSION, description="before"))
    assert update.reverse() == ops.DeclareKeyFamilyOp(dict(SESSION, description="before"), SESSION)
    config = ops.SetConfigOp("maxmemory-policy", "volatile-lru", "noeviction")
    assert config.reverse() == ops.SetConfigOp("maxmemory-policy", "noeviction", "volatile-lru")
    assert isinstance(ops.SetConfigOp("x", "y").reverse(), ops.SkipReverseOp)
    assert "set a TTL of 1h" in ops.BackfillTtlOp(SESSION, 3600).reverse().describe()


def test_a_retirement_carries_the_name_and_takes_its_reverse_from_the_chain():
    retire = ops.RetireKeyFamilyOp("session")
    assert retire.render() == "op.redis_retire_family(family='session')"
    with pytest.raises(IrreversibleOp, match="known only to the revision chain"):
        retire.reverse()
    declare = ops.DeclareKeyFamilyOp(SESSION)
    assert with_past([declare, ops.SetConfigOp("x", "y"), retire])[2].reverse() == declare
    channel = ops.DeclareChannelOp(CHANNEL)
    assert with_past([channel, ops.RetireChannelOp("user_live")])[1].reverse() == channel


def test_a_retirement_written_in_the_full_form_keeps_its_reverse_and_stores_only_its_name():
    retire = op_from_record("redis_retire_family", {"family": SESSION})
    assert retire.arguments() == {"family": "session"} and retire.reverse() == ops.DeclareKeyFamilyOp(SESSION)
    assert "(session:{user_id})" in retire.describe()


def test_a_declaration_renders_what_differs_from_the_defaults_and_reads_back_whole():
    text = ops.DeclareKeyFamilyOp(PRIORITY).render()
    assert "'hash_tag'" not in text and "previous" not in text and "'foreign': True" in text
    assert eval(text, {"op": _Revision()}) == ops.DeclareKeyFamilyOp(PRIORITY)


class _Revision:
    """What ``op`` is to a revision file: op.<op_name>(**arguments) builds the operation."""

    def __getattr__(self, name):
        return lambda **arguments: STORE_OPS[name].from_arguments(arguments)


def test_import_redis_inside_the_package_is_redis_py():
    from sovren_db.redis import backend, scan

    assert backend.redis.__name__ == scan.redis.__name__ == "redis"
    assert hasattr(backend.redis, "Redis") and not backend.redis.__file__.endswith("sovren_db/redis/__init__.py")


def test_operations_are_frozen_data_each_run_by_one_function_of_toimpl():
    classes = {type(op) for op in ALL}
    assert all(dataclasses.fields(cls) and cls.__dataclass_params__.frozen for cls in classes)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ALL[0].family = {}
    assert classes <= set(toimpl.execute.registry)
    assert all(cls.__name__.endswith("Op") and "execute" not in vars(cls) for cls in classes)
