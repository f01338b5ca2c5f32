"""Alembic plugin: autogenerate and check see extensions, roles, functions, triggers,
row-level security, policies, grants and partitions, read from the catalog in bulk."""

from __future__ import annotations

from alembic.util import DispatchPriority, PriorityDispatchResult

from . import ops as _ops  # noqa: F401  (registers op.create_policy & co. for revision files)
from .diff import diff_schema
from .live import read_catalog


def compare_postgres_objects(autogen_context, upgrade_ops) -> PriorityDispatchResult:
    from ..core.runtime import Runtime

    runtime = Runtime.of(autogen_context.migration_context)
    schema = runtime.postgres_schema
    catalog = read_catalog(autogen_context.connection, schema.declared_roles)
    upgrade_ops.ops.extend(diff_schema(schema, catalog))
    return PriorityDispatchResult.CONTINUE


def setup(plugin) -> None:
    from . import tables

    plugin.add_autogenerate_comparator(compare_postgres_objects, "autogenerate", priority=DispatchPriority.LAST)
    tables.setup(plugin)
