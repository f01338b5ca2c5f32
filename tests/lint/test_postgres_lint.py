"""Postgres: squawk on each revision's SQL, findings with file, line and squawk's rule names;
the safe forms of sovren_db.postgres.safe pass it; acceptances in the revision file."""

from __future__ import annotations

import json

from sovren_db.core.config import load_settings
from sovren_db.lint.facts import RevisionFacts, Statement
from sovren_db.lint.squawk import revision_sql
from tests.lint.conftest import line_of


def report(result) -> dict:
    return json.loads(result.output)


def test_squawk_findings_carry_rule_file_and_line(lint_project):
    path = lint_project.add_revision("""
        op.add_column('users', sa.Column('nickname', sa.Text()))
        op.create_index('ix_users_last_login', 'users', ['last_login'])
        op.create_foreign_key('payments_subscription_fkey', 'payments', 'subscriptions',
                              ['transaction_id'], ['subscription_id'])
    """)
    result = lint_project.lint("--format", "json")
    assert result.exit_code == 1
    found = {(f["code"], f["line"]) for f in report(result)["findings"]}
    assert ("require-concurrent-index-creation", line_of(path, "create_index")) in found
    assert ("constraint-missing-not-valid", line_of(path, "create_foreign_key")) in found
    assert all(f["file"] == f"migrations/versions/{path.name}" for f in report(result)["findings"])
    assert all(f["store"] == "postgres" for f in report(result)["findings"])


def test_lock_and_statement_timeouts_are_known_to_squawk(lint_project):
    lint_project.add_revision("op.create_index('ix_users_last_login', 'users', ['last_login'])")
    found = {f["code"] for f in report(lint_project.lint("--format", "json"))["findings"]}
    assert "require-concurrent-index-creation" in found
    assert not found & {"require-lock-timeout", "require-statement-timeout"}


def test_safe_forms_pass_squawk(lint_project):
    lint_project.add_revision("""
        with op.get_context().autocommit_block():
            op.create_index_concurrently('ix_users_last_login', 'users', ['last_login'])
        op.create_foreign_key_not_valid('payments_subscription_fkey', 'payments', 'subscriptions',
                                        ['transaction_id'], ['subscription_id'])
        with op.get_context().autocommit_block():
            op.validate_constraint('payments_subscription_fkey', 'payments')
        op.create_check_constraint_not_valid('users_tier_known', 'users', "subscription_tier <> ''")
        with op.get_context().autocommit_block():
            op.validate_constraint('users_tier_known', 'users')
        op.add_not_null_check('users', 'last_login')
        with op.get_context().autocommit_block():
            op.validate_constraint('users_last_login_not_null', 'users')
        op.alter_column('users', 'last_login', existing_type=sa.TIMESTAMP(), nullable=False)
        op.drop_not_null_check('users', 'last_login')
        with op.get_context().autocommit_block():
            op.drop_index_concurrently('ix_users_last_login', 'users')
    """)
    result = lint_project.lint("--format", "json")
    assert report(result)["findings"] == [], result.output
    assert result.exit_code == 0


def test_the_naive_forms_do_not(lint_project):
    lint_project.add_revision("""
        op.create_check_constraint('users_tier_known', 'users', "subscription_tier <> ''")
        op.alter_column('users', 'last_login', existing_type=sa.TIMESTAMP(), nullable=False)
        op.drop_index('ix_payments_user_id', table_name='payments')
    """)
    found = {f["code"] for f in report(lint_project.lint("--format", "json"))["findings"]}
    assert {"constraint-missing-not-valid", "adding-not-nullable-field"} <= found


def test_revision_sql_wraps_statements_as_migrate_runs_them(tmp_path, lint_project):
    settings = load_settings(lint_project.root)
    facts = RevisionFacts("r1", "", tmp_path / "r1.py", "r1.py",
                          statements=[Statement("CREATE TABLE t (id int);", 12),
                                      Statement("-- note\nALTER TABLE t ADD COLUMN a int;", 14)])
    sql, spans = revision_sql(facts, settings)
    lines = sql.splitlines()
    assert lines[:3] == ["SET lock_timeout = '5s';", "SET statement_timeout = '15min';", "BEGIN;"]
    assert lines[-1] == "COMMIT;"
    assert [(s.first, s.last, s.line) for s in spans if s.line] == [(4, 4, 12), (5, 6, 14)]


def test_accepted_finding_with_reason(lint_project):
    lint_project.add_revision(
        "op.create_index('ix_users_last_login', 'users', ['last_login'])",
        comment="# sovren-db: accept require-concurrent-index-creation because users has 40 rows in production")
    result = lint_project.lint("--format", "json")
    assert result.exit_code == 0, result.output
    data = report(result)
    assert data["findings"] == []
    assert [(a["code"], a["reason"]) for a in data["accepted"]] == [
        ("require-concurrent-index-creation", "users has 40 rows in production")]


def test_acceptance_covers_several_codes_and_only_its_revision(lint_project):
    first = lint_project.add_revision(
        "op.mongo_drop_collection(collection='executives')\nop.drop_column('users', 'last_login')",
        comment="# sovren-db: accept MG101, ban-drop-column because both were retired in release 12")
    lint_project.add_revision("op.mongo_drop_collection(collection='communications')")
    findings = report(lint_project.lint("--format", "json"))["findings"]
    assert [f["code"] for f in findings] == ["MG101"]
    assert first.name not in findings[0]["file"]


def test_acceptance_without_reason_is_itself_a_finding(lint_project):
    path = lint_project.add_revision("op.mongo_drop_collection(collection='executives')",
                                     comment="# sovren-db: accept MG101")
    result = lint_project.lint("--format", "json")
    assert result.exit_code == 1
    found = {(f["code"], f["line"]) for f in report(result)["findings"]}
    assert found == {("LN001", line_of(path, "accept MG101")), ("MG101", line_of(path, "mongo_drop"))}


def test_unused_acceptance_is_a_warning(lint_project):
    lint_project.add_revision("op.mongo_create_collection(collection='briefings')",
                              comment="# sovren-db: accept MG101 because it used to drop one")
    result = lint_project.lint("--format", "json")
    assert result.exit_code == 0
    [warning] = report(result)["findings"]
    assert (warning["code"], warning["severity"]) == ("LN002", "warning")


def test_acceptance_must_be_a_comment(lint_project):
    lint_project.add_revision("op.mongo_drop_collection(collection='executives')\n"
                              "note = '# sovren-db: accept MG101 because a string is not a comment'")
    result = lint_project.lint("--format", "json")
    assert result.exit_code == 1
    assert [f["code"] for f in report(result)["findings"]] == ["MG101"]


def test_a_type_change_or_rename_in_place_is_explained_with_expand_and_contract(lint_project):
    path = lint_project.add_revision("""
        op.alter_column('users', 'last_login', type_=sa.Text(), existing_type=sa.TIMESTAMP())
        op.alter_column('users', 'subscription_tier', new_column_name='tier')
    """)
    found = {f["code"]: f for f in report(lint_project.lint("--format", "json"))["findings"]}
    changed, renamed = found["changing-column-type"], found["renaming-column"]
    assert changed["line"] == line_of(path, "type_=") and "op.expand_column(table, column, type_=...)" in changed["message"]
    assert renamed["line"] == line_of(path, "new_column_name") and "new_name=..." in renamed["message"]


def test_expand_and_contract_pass_lint(lint_project):
    lint_project.add_revision("op.expand_column('users', 'last_login', type_=sa.Text(), version='v2')")
    lint_project.add_revision("op.contract_column('users', 'last_login', type_=sa.Text(), version='v2')")
    result = lint_project.lint("--format", "json")
    assert result.exit_code == 0, result.output
