"""Findings from a comparison's operations: Alembic's described by a lookup on their type."""

from __future__ import annotations

import sqlalchemy as sa
from alembic.operations import ops as alembic_ops

from sovren_db.drift import findings_from_ops
from sovren_db.mongo.ops import DropCollectionOp


class ConcurrentIndexOp(alembic_ops.CreateIndexOp):
    """A subclass, as the safe forms of postgres/safe.py are: described as its Alembic base."""


def test_each_alembic_operation_names_its_object_and_subclasses_are_found_by_their_base():
    table_ops = alembic_ops.ModifyTableOps("users", [
        alembic_ops.AddColumnOp("users", sa.Column("nickname", sa.Text())),
        alembic_ops.DropConstraintOp("users_org_fk", "users", type_="foreignkey"),
        alembic_ops.AlterColumnOp("users", "email", modify_nullable=False),
    ])
    findings = findings_from_ops([table_ops, ConcurrentIndexOp("ix_users_email", "users", ["email"]),
                                  alembic_ops.DropTableOp("legacy"), DropCollectionOp("drafts")])
    assert [(f.store, f.object, f.message) for f in findings] == [
        ("postgres", "column users.nickname", "missing in database"),
        ("postgres", "foreign key users_org_fk on users", "in database but not declared"),
        ("postgres", "column users.email", "declared NOT NULL, nullable in database"),
        ("postgres", "index ix_users_email on users", "missing in database"),
        ("postgres", "table legacy", "in database but not declared"),
        ("mongo", "collection drafts", "in database but not declared"),
    ]


def test_an_operation_without_a_description_says_what_it_is():
    [finding] = findings_from_ops([alembic_ops.ModifyTableOps("t", [alembic_ops.ExecuteSQLOp("SELECT 1")])])
    assert (finding.object, finding.message) == ("ExecuteSQLOp on t", str(alembic_ops.ExecuteSQLOp("SELECT 1").to_diff_tuple()))
