"""The pure diff of declared Postgres objects against the catalog: a list of operations.

Tables and columns are Alembic's; this covers what Alembic misses. Objects on
tables that are not declared at all are left alone; on declared tables,
undeclared policies and triggers are drift.
"""

from __future__ import annotations

from .live import Catalog
from .ops import (
    CreateExtensionOp, CreateFunctionOp, CreatePolicyOp, CreateTriggerOp, DisableTriggerOp,
    DropFunctionOp, DropPolicyOp, DropTriggerOp, EnableTriggerOp, EnsurePartitionsOp, EnsureRoleOp,
    GrantOp, ObjectOp, PartitioningMismatch, ReplaceFunctionOp, ReplacePolicyOp, RevokeOp,
    SetRowSecurityOp, TableNotPartitionedOp,
)
from .state import (
    PRIVILEGE_ORDER, Extension, Function, Grant, PartitionRule, Policy, Role, RowSecurity, Schema, Trigger,
)


def diff_schema(schema: Schema, catalog: Catalog) -> list:
    tables = set(schema.metadata.tables)
    return [
        *_extensions(schema.of(Extension), catalog),
        *_roles(schema.of(Role), catalog),
        *_functions(schema.of(Function), catalog),
        *_row_security(schema.of(RowSecurity), catalog),
        *_policies(schema.of(Policy), catalog, tables),
        *_triggers(schema.of(Trigger), catalog, tables),
        *_grants(schema.of(Grant), catalog, tables, schema.declared_roles),
        *_partitions(schema.of(PartitionRule), catalog, schema),
        *_dropped_functions(schema.of(Function), catalog),
    ]


def _extensions(declared: list[Extension], catalog: Catalog) -> list[ObjectOp]:
    return [CreateExtensionOp(e) for e in declared if e.name not in catalog.extensions]


def _roles(declared: list[Role], catalog: Catalog) -> list[ObjectOp]:
    return [EnsureRoleOp(r) for r in declared if catalog.roles.get(r.name) != (r.login, r.bypass_rls)]


def _functions(declared: list[Function], catalog: Catalog) -> list[ObjectOp]:
    ops: list[ObjectOp] = []
    for fn in declared:
        live = catalog.functions.get(fn.key)
        if live is None:
            ops.append(CreateFunctionOp(fn))
        elif not fn.signature_matches(live[0]):
            ops.append(ReplaceFunctionOp(fn, live[0]))
    return ops


def _dropped_functions(declared: list[Function], catalog: Catalog) -> list[ObjectOp]:
    keys = {fn.key for fn in declared}
    return [DropFunctionOp(fn) for key, (fn, managed) in sorted(catalog.functions.items())
            if managed and key not in keys]


def _row_security(declared: list[RowSecurity], catalog: Catalog) -> list[ObjectOp]:
    ops = []
    for rls in declared:
        live = catalog.tables.get(rls.table)
        if live is None or (live.row_security.enabled, live.row_security.forced) != (rls.enabled, rls.forced):
            ops.append(SetRowSecurityOp(rls, live.row_security if live else None))
    return ops


def _policies(declared: list[Policy], catalog: Catalog, tables: set[str]) -> list[ObjectOp]:
    ops: list[ObjectOp] = []
    for policy in declared:
        live = catalog.policies.get(policy.key)
        if live is None:
            ops.append(CreatePolicyOp(policy))
            continue
        reason = _policy_difference(policy, live)
        if reason:
            ops.append(ReplacePolicyOp(policy, reason))
    keys = {p.key for p in declared}
    ops += [DropPolicyOp(live.policy) for key, live in sorted(catalog.policies.items())
            if key not in keys and live.policy.table in tables]
    return ops


def _policy_difference(policy: Policy, live) -> str | None:
    if policy.shape() != live.policy.shape():
        return "command, roles or permissiveness differ from the declaration"
    parts = (live.comment or "").split()
    if len(parts) != 3:
        return "not created by sovren-db (no fingerprint)"
    if parts[1] != policy.declared_fingerprint:
        return "expression differs from the declaration"
    if parts[2] != live.live_fingerprint:
        return "expression was changed in the database"
    return None


def _triggers(declared: list[Trigger], catalog: Catalog, tables: set[str]) -> list[ObjectOp]:
    ops: list[ObjectOp] = []
    for trigger in declared:
        live = catalog.triggers.get(trigger.key)
        if live is None or live[0].shape() != trigger.shape():
            ops.append(CreateTriggerOp(trigger))
        elif live[1] != trigger.enabled:
            ops.append(EnableTriggerOp(trigger) if trigger.enabled else DisableTriggerOp(trigger))
    keys = {t.key for t in declared}
    ops += [DropTriggerOp(trigger) for key, (trigger, _) in sorted(catalog.triggers.items())
            if key not in keys and trigger.table in tables]
    return ops


def _ordered(privileges: set[str]) -> tuple[str, ...]:
    return tuple(p for p in PRIVILEGE_ORDER if p in privileges)


def _grants(declared: list[Grant], catalog: Catalog, tables: set[str], roles: set[str]) -> list[ObjectOp]:
    wanted: dict[tuple[str, str], set[str]] = {}
    for grant in declared:
        wanted.setdefault((grant.table, grant.role), set()).update(grant.privileges)
    ops: list[ObjectOp] = []
    for (table, role), privileges in sorted(wanted.items()):
        missing = privileges - catalog.grants.get((table, role), set())
        if missing:
            ops.append(GrantOp(Grant(role, table, _ordered(missing))))
    for (table, role), privileges in sorted(catalog.grants.items()):
        extra = privileges - wanted.get((table, role), set())
        if extra and table in tables and role in roles:
            ops.append(RevokeOp(Grant(role, table, _ordered(extra))))
    return ops


def _partitions(rules: list[PartitionRule], catalog: Catalog, schema: Schema) -> list:
    ops: list = []
    for rule in rules:
        live = catalog.tables.get(rule.table)
        declared_key = _declared_partition_key(schema, rule.table)
        if live is not None and live.partition_key is None:
            ops.append(TableNotPartitionedOp(PartitioningMismatch(rule.table, declared_key, None)))
            continue
        present = set(live.partitions) if live else set()
        missing = tuple(name for name in rule.wanted_names(catalog.today) if name not in present)
        if missing:
            ops.append(EnsurePartitionsOp(rule, missing))
    return ops


def _declared_partition_key(schema: Schema, table: str) -> str:
    declared = schema.metadata.tables.get(table)
    return str(declared.dialect_options["postgresql"].get("partition_by")) if declared is not None else "?"
