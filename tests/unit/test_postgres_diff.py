"""The Postgres object diff, from hand-built catalogs: no server."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Table

from sovren_db.core.errors import DeclarationError
from sovren_db.postgres import Extension, Function, Grant, PartitionRule, Policy, Role, RowSecurity, Schema, Trigger
from sovren_db.postgres.declared import load_schema
from sovren_db.postgres.diff import diff_schema
from sovren_db.postgres.live import Catalog, LivePolicy, LiveTable, _trigger_from_type
from sovren_db.postgres.ops import (
    CreatePolicyOp, DropPolicyOp, DropTriggerOp, EnableTriggerOp, EnsurePartitionsOp, GrantOp, ReplaceFunctionOp,
    ReplacePolicyOp, RevokeOp, SetRowSecurityOp, TableNotPartitionedOp,
)
from sovren_db.postgres.state import fingerprint, normalise_sql

TODAY = date(2026, 11, 26)
POLICY = Policy("t_tenant", "t", using="user_id = 1", roles=("app",))
FUNCTION = Function("f", "", "trigger", "BEGIN RETURN NULL; END")
TRIGGER = Trigger("t_audit", "t", "f")


def schema(*objects) -> Schema:
    metadata = MetaData()
    Table("t", metadata, Column("id", Integer, primary_key=True), postgresql_partition_by="RANGE (id)")
    s = Schema(metadata)
    s.add(*objects)
    return s


def live_policy(policy: Policy, using: str, comment_fp: str | None = None, declared_fp: str | None = None):
    # The server computes the live fingerprint (sql.LIVE_POLICY_FINGERPRINT); for ASCII this is the same.
    live = LivePolicy(policy, None, fingerprint(normalise_sql(using), normalise_sql(None)))
    comment_fp = comment_fp or live.live_fingerprint
    live.comment = f"sovren-db {declared_fp or policy.declared_fingerprint} {comment_fp}"
    return live


def catalog(**overrides) -> Catalog:
    base = dict(today=TODAY, extensions=set(), roles={}, functions={}, triggers={}, policies={},
                tables={}, grants={})
    base.update(overrides)
    return Catalog(**base)


def table(name="t", *, enabled=True, forced=True, partitions=None, key="RANGE (id)"):
    return LiveTable(name, RowSecurity(name, enabled, forced), key, partitions or {})


def test_nothing_to_do_when_catalog_matches():
    rule = PartitionRule("t", "id", months_ahead=1)
    parts = {n: "" for n, _, _ in rule.expected(TODAY)} | {"t_default": "DEFAULT"}
    declared = schema(Extension("pgcrypto"), Role("app"), FUNCTION, TRIGGER, POLICY, RowSecurity("t"),
                      Grant("app", "t", ("SELECT",)), rule)
    live = catalog(extensions={"pgcrypto"}, roles={"app": (False, False)}, functions={FUNCTION.key: (FUNCTION, True)},
                   triggers={TRIGGER.key: (TRIGGER, True)},
                   policies={POLICY.key: live_policy(POLICY, "(user_id = 1)")},
                   tables={"t": table(partitions=parts)}, grants={("t", "app"): {"SELECT"}})
    assert diff_schema(declared, live) == []


def test_function_body_change_is_a_replace_that_reverses_to_the_old_body():
    old = Function("f", "", "trigger", "BEGIN RETURN OLD; END")
    ops = diff_schema(schema(FUNCTION), catalog(functions={"f()": (old, True)}))
    assert len(ops) == 1 and isinstance(ops[0], ReplaceFunctionOp)
    assert ops[0].reverse().obj.body == old.body


def test_whitespace_in_a_body_is_not_drift():
    spaced = Function("f", "", "trigger", "BEGIN\n   RETURN   NULL;\nEND")
    assert diff_schema(schema(FUNCTION), catalog(functions={"f()": (spaced, True)})) == []


def test_unmanaged_functions_are_left_alone():
    other = Function("users_own", "", "integer", "SELECT 1", "sql")
    assert diff_schema(schema(), catalog(functions={"users_own()": (other, False)})) == []


@pytest.mark.parametrize("comment_fp, declared_fp, reason", [
    ("0000000000000000", None, "changed in the database"),
    (None, "ffffffffffffffff", "differs from the declaration"),
])
def test_policy_fingerprints(comment_fp, declared_fp, reason):
    live = live_policy(POLICY, "(user_id = 1)", comment_fp, declared_fp)
    ops = diff_schema(schema(POLICY), catalog(policies={POLICY.key: live}, tables={"t": table()}))
    assert [type(o) for o in ops] == [ReplacePolicyOp]
    assert reason in ops[0].drift()[1]


def test_policy_roles_differ():
    live = live_policy(Policy("t_tenant", "t", using="user_id = 1", roles=("public",)), "(user_id = 1)")
    live.comment = f"sovren-db {POLICY.declared_fingerprint} {live.live_fingerprint}"
    ops = diff_schema(schema(POLICY), catalog(policies={POLICY.key: live}))
    assert isinstance(ops[0], ReplacePolicyOp)


def test_missing_and_extra_policies():
    extra = Policy("t_extra", "t", using="true")
    ops = diff_schema(schema(POLICY), catalog(policies={extra.key: live_policy(extra, "true")}))
    assert [type(o) for o in ops] == [CreatePolicyOp, DropPolicyOp]
    assert ops[0].drift() == ("policy t_tenant on t", "missing in database")


def test_disabled_and_extra_triggers():
    stray = Trigger("stray", "t", "f")
    ops = diff_schema(schema(TRIGGER), catalog(triggers={TRIGGER.key: (TRIGGER, False), stray.key: (stray, True)}))
    assert [type(o) for o in ops] == [EnableTriggerOp, DropTriggerOp]


def test_triggers_on_undeclared_tables_are_not_ours():
    theirs = Trigger("x", "other_table", "f")
    assert diff_schema(schema(), catalog(triggers={theirs.key: (theirs, True)})) == []


@pytest.mark.parametrize("enabled, forced", [(False, True), (True, False), (False, False)])
def test_row_security(enabled, forced):
    ops = diff_schema(schema(RowSecurity("t")), catalog(tables={"t": table(enabled=enabled, forced=forced)}))
    assert [type(o) for o in ops] == [SetRowSecurityOp]


def test_grants_missing_and_extra_for_declared_roles_only():
    declared = schema(Role("app"), Grant("app", "t", ("SELECT", "INSERT")))
    live = catalog(roles={"app": (False, False)},
                   grants={("t", "app"): {"SELECT", "DELETE"}, ("t", "someone"): {"SELECT"}})
    ops = diff_schema(declared, live)
    assert [(type(o), o.obj.privileges) for o in ops] == [(GrantOp, ("INSERT",)), (RevokeOp, ("DELETE",))]


def test_partition_window_and_default():
    rule = PartitionRule("t", "id", months_ahead=2)
    assert [n for n, _, _ in rule.expected(date(2026, 12, 3))] == ["t_p2026_12", "t_p2027_01", "t_p2027_02"]
    ops = diff_schema(schema(rule), catalog(tables={"t": table(partitions={"t_p2026_11": ""})}))
    assert isinstance(ops[0], EnsurePartitionsOp)
    assert ops[0].missing == ("t_p2026_12", "t_p2027_01", "t_default")


def test_declared_partitioned_table_that_is_plain_in_database():
    ops = diff_schema(schema(PartitionRule("t", "id")), catalog(tables={"t": table(key=None)}))
    assert isinstance(ops[0], TableNotPartitionedOp)
    assert ops[0].drift() == ("table t", "declared PARTITION BY RANGE (id), database has not partitioned")


@pytest.mark.parametrize("tgtype, expected", [
    (1 | 4 | 8 | 16, ("AFTER", ("INSERT", "UPDATE", "DELETE"), "ROW")),
    (2 | 1 | 16 | 8, ("BEFORE", ("UPDATE", "DELETE"), "ROW")),
    (2 | 32, ("BEFORE", ("TRUNCATE",), "STATEMENT")),
])
def test_trigger_type_bits(tgtype, expected):
    trigger = _trigger_from_type("x", "t", "f", tgtype)
    assert (trigger.timing, trigger.events, trigger.level) == expected


def test_fingerprint_matches_the_sql_side_definition():
    # sql.LIVE_POLICY_FINGERPRINT computes the same: sha256 of the normalised texts joined by chr(31).
    import hashlib

    expected = hashlib.sha256("a = b\x1f".encode()).hexdigest()[:16]
    assert fingerprint(normalise_sql(" a  =\n b "), normalise_sql(None)) == expected


def test_schema_refuses_a_conflicting_duplicate():
    s = schema(POLICY)
    with pytest.raises(ValueError, match="declared twice"):
        s.add(Policy("t_tenant", "t", using="false"))


def test_loading_the_sovren_schema():
    repo = Path(__file__).resolve().parents[2]
    loaded = load_schema(repo / "postgres")
    assert {"users", "operations", "audit_log", "payments"} <= set(loaded.metadata.tables)
    assert {p.table for p in loaded.of(Policy) if p.name.endswith("tenant_isolation")} == \
        {"users", "operations", "subscriptions", "transactions", "payments"}


def test_loading_errors_name_the_file(tmp_path):
    (tmp_path / "schema.py").write_text("from .tables import nothing\n")
    (tmp_path / "tables.py").write_text("x = 1\n")
    with pytest.raises(DeclarationError, match=r"schema.py at line 1: ImportError"):
        load_schema(tmp_path)
    with pytest.raises(DeclarationError, match="no schema.py"):
        load_schema(tmp_path / "missing")


def test_a_policy_on_an_undeclared_table_is_a_declaration_error_naming_its_file(tmp_path):
    (tmp_path / "schema.py").write_text(
        "from sqlalchemy import Column, Integer, Table\n"
        "from sovren_db.postgres import Policy, Schema\n"
        "schema = Schema()\n"
        "Table('users', schema.metadata, Column('id', Integer, primary_key=True))\n"
        "from .security import add_policies\n"
        "add_policies(schema)\n")
    (tmp_path / "security.py").write_text(
        "from sovren_db.postgres import Policy\n"
        "def add_policies(schema):\n"
        "    schema.add(Policy('users_own', 'users', using='true'))\n"
        "    schema.add(Policy('ghost_own', 'ghosts', using='true'))\n")
    with pytest.raises(DeclarationError) as err:
        load_schema(tmp_path)
    assert str(err.value) == (f"{tmp_path / 'security.py'} at line 4: policy ghosts.ghost_own is on table "
                              "'ghosts', which no declared table is.")
