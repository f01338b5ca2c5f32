"""Postgres objects Alembic does not manage, and the declaration API for ``postgres/``.

Declarations build a :class:`Schema`: a SQLAlchemy ``MetaData`` for tables
(Alembic compares those) plus the objects declared here (extensions, roles,
functions, triggers, row-level security, policies, grants, partition rules),
which sovren-db compares from the catalog in bulk.
"""

from .state import (
    Extension,
    Function,
    Grant,
    PartitionRule,
    PciScope,
    Policy,
    Role,
    RowSecurity,
    Schema,
    Trigger,
)

__all__ = [
    "Extension", "Function", "Grant", "PartitionRule", "PciScope", "Policy", "Role", "RowSecurity", "Schema", "Trigger",
]
