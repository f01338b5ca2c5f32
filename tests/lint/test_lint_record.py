"""The offline run behind lint, check and migrate --resync: what it records, and how a revision fails in it."""

from __future__ import annotations

import pytest

from sovren_db.core.config import load_settings
from sovren_db.core.errors import RevisionError
from sovren_db.lint.engine import lint_revisions
from sovren_db.resync import chain_steps
from tests.lint.conftest import CHAIN, HEAD, INITIAL, line_of


def test_store_steps_are_recorded_as_steps_and_never_as_sql_statements(lint_project):
    path = lint_project.add_revision(
        "op.add_column('users', sa.Column('nickname', sa.Text()))\n"
        "op.mongo_create_collection(collection='briefings')")
    only_steps = lint_project.add_revision("op.mongo_create_collection(collection='notes')")
    result = lint_revisions(load_settings(lint_project.root), base=HEAD)
    mixed, store_only = result.revisions
    assert [s.line for s in mixed.statements] == [line_of(path, "add_column")]
    assert all(not s.sql.startswith("--") for s in mixed.statements)
    assert [(s.op.store, s.line) for s in mixed.steps] == [("mongo", line_of(path, "mongo_create_collection"))]
    assert store_only.statements == []
    assert [s.line for s in store_only.steps] == [line_of(only_steps, "mongo_create_collection")]


def test_chain_steps_keep_each_revisions_steps_in_chain_order(lint_project):
    lint_project.add_revision("op.mongo_create_collection(collection='briefings')", rev="a00000000001")
    lint_project.add_revision("op.add_column('users', sa.Column('nickname', sa.Text()))", rev="a00000000002")
    chain = chain_steps(load_settings(lint_project.root), "heads")
    assert [revision for revision, _ in chain] == [*CHAIN, "a00000000001", "a00000000002"]
    assert [type(op).__name__ for op in chain[-2][1]] == ["CreateCollectionOp"]
    assert chain[-1][1] == []


def test_a_revision_that_reads_the_database_fails_the_chain_read_as_one_revision_error(lint_project):
    path = lint_project.add_revision("rows = op.get_bind().execute(sa.text('SELECT 1')).all()")
    with pytest.raises(RevisionError) as err:
        chain_steps(load_settings(lint_project.root), "heads")
    message = str(err.value)
    assert f"migrations/versions/{path.name}:{line_of(path, 'get_bind')} failed while running offline" in message
    assert "must not read from the database" in message and "\n" not in message
