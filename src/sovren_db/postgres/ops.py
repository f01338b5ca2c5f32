"""Operations on the Postgres objects Alembic does not manage.

Each is an Alembic ``MigrateOperation`` named VerbNounOp, holding one
declared object (``Policy``, ``Trigger``...). It describes itself in one
line, reverses, renders as ``op.<op_name>(...)`` in a revision file and
executes as SQL through ``operations.execute`` (so ``plan`` prints the SQL).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from alembic.autogenerate import renderers
from alembic.operations import MigrateOperation, Operations

from ..core.guard import refuse_destructive
from ..core.render import RevisionOp, register_op
from . import sql
from .state import Extension, Function, Grant, PartitionRule, Policy, Role, RowSecurity, Trigger


class ObjectOp(RevisionOp):
    """An operation on one declared object; subclasses name the kind and the op."""

    kind: ClassVar[type]

    def __init__(self, obj: Any):
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.obj == other.obj  # type: ignore[attr-defined]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.obj!r})"

    def arguments(self) -> dict[str, Any]:
        return asdict(self.obj)

    def statements(self) -> list[str]:
        raise NotImplementedError

    def drift(self) -> tuple[str, str]:
        raise NotImplementedError

    def to_diff_tuple(self) -> tuple:
        return (self.op_name, self.obj)

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> "ObjectOp":
        names = {f.name for f in fields(cls.kind)}
        return cls(cls.kind(**{k: tuple(v) if isinstance(v, list) else v
                               for k, v in arguments.items() if k in names}))


def _execute(operations: Operations, operation: ObjectOp) -> None:
    if operation.destructive:
        refuse_destructive(operations, operation.describe())
    for statement in operation.statements():
        operations.execute(statement)


def _register(cls: type[ObjectOp]) -> type[ObjectOp]:
    return register_op(cls, _execute)


def _object(kind: str, obj: Any) -> str:
    table = getattr(obj, "table", None)
    name = getattr(obj, "name", None) or getattr(obj, "role", "")
    return f"{kind} {name} on {table}" if table and kind not in ("row level security",) else f"{kind} {name or table}"


# -- extensions and roles -------------------------------------------------------

@_register
class CreateExtensionOp(ObjectOp):
    kind, op_name = Extension, "create_extension"

    def statements(self): return [f"CREATE EXTENSION IF NOT EXISTS {self.obj.name}"]
    def describe(self): return f"create extension {self.obj.name}"
    def drift(self): return (f"extension {self.obj.name}", "missing in database")
    def reverse(self): return DropExtensionOp(self.obj)


@_register
class DropExtensionOp(ObjectOp):
    kind, op_name, destructive = Extension, "drop_extension", True

    def statements(self): return [f"DROP EXTENSION IF EXISTS {self.obj.name}"]
    def describe(self): return f"drop extension {self.obj.name}"
    def drift(self): return (f"extension {self.obj.name}", "in database but not declared")
    def reverse(self): return CreateExtensionOp(self.obj)


@_register
class EnsureRoleOp(ObjectOp):
    kind, op_name = Role, "ensure_role"

    def statements(self): return [sql.ensure_role(self.obj)]
    def describe(self): return f"ensure role {self.obj.name}"
    def drift(self): return (f"role {self.obj.name}", "missing or different in database")
    def reverse(self): return DropRoleOp(self.obj)


@_register
class DropRoleOp(ObjectOp):
    """Roles belong to the cluster: one still used by another database is kept (NOTICE)."""

    kind, op_name, destructive = Role, "drop_role", True

    def statements(self): return [sql.drop_role(self.obj)]
    def describe(self): return f"drop role {self.obj.name} (kept if another database uses it)"
    def drift(self): return (f"role {self.obj.name}", "not declared")
    def reverse(self): return EnsureRoleOp(self.obj)


# -- functions -------------------------------------------------------------------

@_register
class CreateFunctionOp(ObjectOp):
    kind, op_name = Function, "create_function"

    def statements(self): return [self.obj.definition(), sql.mark_function(self.obj), *self.obj.privileges()]
    def describe(self): return f"create function {self.obj.key}"
    def drift(self): return (f"function {self.obj.key}", "missing in database")
    def reverse(self): return DropFunctionOp(self.obj)


@_register
class DropFunctionOp(ObjectOp):
    kind, op_name, destructive = Function, "drop_function", True

    def statements(self): return [f"DROP FUNCTION IF EXISTS {self.obj.key}"]
    def describe(self): return f"drop function {self.obj.key}"
    def drift(self): return (f"function {self.obj.key}", "managed by sovren-db but no longer declared")
    def reverse(self): return CreateFunctionOp(self.obj)


class ReplaceFunctionOp(ObjectOp):
    """CREATE OR REPLACE with the declared body; ``previous`` is what the database had."""

    kind, op_name = Function, "replace_function"

    def __init__(self, obj: Function, previous: Function | None = None):
        super().__init__(obj)
        self.previous = previous

    def arguments(self) -> dict[str, Any]:
        args = asdict(self.obj)
        args["previous_body"] = self.previous.body if self.previous else None
        return args

    def statements(self): return [self.obj.definition(), sql.mark_function(self.obj), *self.obj.privileges()]
    def describe(self): return f"replace function {self.obj.key}"
    def drift(self): return (f"function {self.obj.key}", "definition differs from the declaration")

    def reverse(self):
        if self.previous is None:
            return self
        return ReplaceFunctionOp(self.previous, self.obj)

    @classmethod
    def from_arguments(cls, arguments: dict[str, Any]) -> "ReplaceFunctionOp":
        arguments = dict(arguments)
        previous_body = arguments.pop("previous_body", None)
        obj = Function(**arguments)
        return cls(obj, Function(**{**arguments, "body": previous_body}) if previous_body is not None else None)


_register(ReplaceFunctionOp)


# -- triggers -------------------------------------------------------------------

@_register
class CreateTriggerOp(ObjectOp):
    kind, op_name = Trigger, "create_trigger"

    def statements(self):
        return [f"DROP TRIGGER IF EXISTS {self.obj.name} ON {self.obj.table}", self.obj.definition(),
                *sql.partition_truncate_trigger(self.obj, create=True)]

    def describe(self): return f"create trigger {self.obj.name} on {self.obj.table}"
    def drift(self): return (f"trigger {self.obj.name} on {self.obj.table}", "missing in database")
    def reverse(self): return DropTriggerOp(self.obj)


@_register
class DropTriggerOp(ObjectOp):
    kind, op_name, destructive = Trigger, "drop_trigger", True

    def statements(self):
        return [*sql.partition_truncate_trigger(self.obj, create=False),
                f"DROP TRIGGER IF EXISTS {self.obj.name} ON {self.obj.table}"]

    def describe(self): return f"drop trigger {self.obj.name} on {self.obj.table}"
    def drift(self): return (f"trigger {self.obj.name} on {self.obj.table}", "in database but not declared")
    def reverse(self): return CreateTriggerOp(self.obj)


@_register
class EnableTriggerOp(ObjectOp):
    kind, op_name = Trigger, "enable_trigger"

    def statements(self): return [f"ALTER TABLE {self.obj.table} ENABLE TRIGGER {self.obj.name}"]
    def describe(self): return f"enable trigger {self.obj.name} on {self.obj.table}"
    def drift(self): return (f"trigger {self.obj.name} on {self.obj.table}", "disabled in database")
    def reverse(self): return DisableTriggerOp(self.obj)


@_register
class DisableTriggerOp(ObjectOp):
    kind, op_name = Trigger, "disable_trigger"

    def statements(self): return [f"ALTER TABLE {self.obj.table} DISABLE TRIGGER {self.obj.name}"]
    def describe(self): return f"disable trigger {self.obj.name} on {self.obj.table}"
    def drift(self): return (f"trigger {self.obj.name} on {self.obj.table}", "enabled in database")
    def reverse(self): return EnableTriggerOp(self.obj)


# -- row-level security and policies ---------------------------------------------

@_register
class SetRowSecurityOp(ObjectOp):
    kind, op_name = RowSecurity, "set_row_security"

    def statements(self):
        t = self.obj.table
        return [f"ALTER TABLE {t} {'ENABLE' if self.obj.enabled else 'DISABLE'} ROW LEVEL SECURITY",
                f"ALTER TABLE {t} {'FORCE' if self.obj.forced else 'NO FORCE'} ROW LEVEL SECURITY"]

    def describe(self):
        return (f"{'enable' if self.obj.enabled else 'disable'} row level security on {self.obj.table}"
                f"{' (forced)' if self.obj.forced else ''}")

    def __init__(self, obj: RowSecurity, live: RowSecurity | None = None):
        super().__init__(obj)
        self.live = live

    def drift(self):
        subject = f"row level security on {self.obj.table}"
        if self.live is None:
            return (subject, "missing in database (table absent)")
        problems = []
        if self.live.enabled != self.obj.enabled:
            problems.append("enabled" if self.live.enabled else "disabled")
        if self.live.forced != self.obj.forced:
            problems.append("forced" if self.live.forced else "not forced")
        return (subject, f"{' and '.join(problems)} in database")

    def reverse(self):
        return SetRowSecurityOp(RowSecurity(self.obj.table, enabled=False, forced=False))


@_register
class CreatePolicyOp(ObjectOp):
    kind, op_name = Policy, "create_policy"

    def statements(self):
        p = self.obj
        return [f"DROP POLICY IF EXISTS {p.name} ON {p.table}", p.definition(), sql.mark_policy(p)]

    def describe(self): return f"create policy {self.obj.name} on {self.obj.table}"
    def drift(self): return (f"policy {self.obj.name} on {self.obj.table}", "missing in database")
    def reverse(self): return DropPolicyOp(self.obj)


class ReplacePolicyOp(CreatePolicyOp):
    op_name = "replace_policy"

    def __init__(self, obj: Policy, reason: str = "differs from the declaration"):
        super().__init__(obj)
        self.reason = reason

    def describe(self): return f"replace policy {self.obj.name} on {self.obj.table}"
    def drift(self): return (f"policy {self.obj.name} on {self.obj.table}", self.reason)
    def reverse(self): return self


_register(ReplacePolicyOp)


@_register
class DropPolicyOp(ObjectOp):
    kind, op_name, destructive = Policy, "drop_policy", True

    def statements(self): return [f"DROP POLICY IF EXISTS {self.obj.name} ON {self.obj.table}"]
    def describe(self): return f"drop policy {self.obj.name} on {self.obj.table}"
    def drift(self): return (f"policy {self.obj.name} on {self.obj.table}", "in database but not declared")
    def reverse(self): return CreatePolicyOp(self.obj)


# -- grants ----------------------------------------------------------------------

@_register
class GrantOp(ObjectOp):
    kind, op_name = Grant, "grant_privileges"

    def statements(self):
        g = self.obj
        return [f"GRANT {', '.join(g.privileges)} ON {g.table} TO {g.role}"]

    def describe(self): return f"grant {', '.join(self.obj.privileges)} on {self.obj.table} to {self.obj.role}"

    def drift(self):
        return (f"grant {', '.join(self.obj.privileges)} on {self.obj.table} to {self.obj.role}",
                "missing in database")

    def reverse(self): return RevokeOp(self.obj)


@_register
class RevokeOp(ObjectOp):
    kind, op_name = Grant, "revoke_privileges"

    def statements(self):
        g = self.obj
        return [f"REVOKE {', '.join(g.privileges)} ON {g.table} FROM {g.role}"]

    def describe(self): return f"revoke {', '.join(self.obj.privileges)} on {self.obj.table} from {self.obj.role}"

    def drift(self):
        return (f"grant {', '.join(self.obj.privileges)} on {self.obj.table} to {self.obj.role}",
                "in database but not declared")

    def reverse(self): return GrantOp(self.obj)


# -- partitions ------------------------------------------------------------------

@_register
class EnsurePartitionsOp(ObjectOp):
    """Create this month's and the next months' partitions, and the default one (convergent)."""

    kind, op_name = PartitionRule, "ensure_partitions"

    def __init__(self, obj: PartitionRule, missing: tuple[str, ...] = ()):
        super().__init__(obj)
        self.missing = missing

    def statements(self): return [sql.ensure_partitions(self.obj)]

    def describe(self):
        return f"ensure partitions of {self.obj.table} ({self.obj.months_ahead} months ahead and default)"

    def drift(self):
        names = ", ".join(self.missing) or "expected partitions"
        return (f"partitions of {self.obj.table}", f"missing in database: {names}")

    def reverse(self): return NoPartitionChangeOp(self.obj)


@_register
class NoPartitionChangeOp(ObjectOp):
    """The reverse of ensuring partitions: they stay (they may hold rows); the table's drop removes them."""

    kind, op_name = PartitionRule, "keep_partitions"

    def statements(self): return []
    def describe(self): return f"keep the partitions of {self.obj.table}"
    def drift(self): return (f"partitions of {self.obj.table}", "unchanged")
    def reverse(self): return EnsurePartitionsOp(self.obj)


@dataclass(frozen=True)
class PartitioningMismatch:
    table: str
    declared: str
    live: str | None


class TableNotPartitionedOp(MigrateOperation):
    """Drift only: a declared partitioned table exists unpartitioned (needs a hand-written migration)."""

    def __init__(self, info: PartitioningMismatch):
        self.info = info

    def describe(self) -> str:
        return f"table {self.info.table} must be partitioned by {self.info.declared}"

    def drift(self) -> tuple[str, str]:
        live = self.info.live or "not partitioned"
        return (f"table {self.info.table}", f"declared PARTITION BY {self.info.declared}, database has {live}")

    def to_diff_tuple(self) -> tuple:
        return ("partitioning", self.info)

    def reverse(self) -> "TableNotPartitionedOp":
        return self


@renderers.dispatch_for(TableNotPartitionedOp)
def _render_partitioning(autogen_context: Any, op: TableNotPartitionedOp) -> str:
    return (f"# sovren-db: {op.describe()}; converting a table to a partitioned one needs a "
            "hand-written migration (create, copy, swap)")
