"""Findings on the declarations themselves: tables holding a subject's rows without row security."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, MetaData, Table, Text
from sqlalchemy.dialects.postgresql import UUID

from sovren_db.postgres.checks import row_security_findings, subject_tables
from sovren_db.postgres.declared import load_schema
from sovren_db.postgres.state import Grant, PersonalData, Role, RowSecurity, Schema


def small_schema(*objects) -> Schema:
    metadata = MetaData()
    Table("users", metadata, Column("user_id", UUID, primary_key=True))
    Table("orders", metadata, Column("order_id", UUID, primary_key=True),
          Column("user_id", UUID, ForeignKey("users.user_id")))
    Table("order_lines", metadata, Column("line_id", UUID, primary_key=True),
          Column("order_id", UUID, ForeignKey("orders.order_id")), Column("label", Text))
    Table("countries", metadata, Column("code", Text, primary_key=True))
    schema = Schema(metadata)
    schema.add(PersonalData("users", "user_id"), Role("app"), Role("migrator", bypass_rls=True), *objects)
    return schema


def test_subject_tables_follow_columns_and_foreign_keys():
    assert subject_tables(small_schema()) == ["order_lines", "orders", "users"]


def test_a_table_reached_by_foreign_key_without_row_security_is_a_finding():
    schema = small_schema(RowSecurity("users"), RowSecurity("orders"))
    findings = row_security_findings(schema, "postgres")
    assert [(f.object, f.code, f.severity) for f in findings] == [("table order_lines", "rls-missing", "error")]
    assert findings[0].file == "postgres"


def test_row_security_not_forced_is_a_finding_only_where_an_application_role_writes():
    schema = small_schema(RowSecurity("users", forced=False), RowSecurity("orders", forced=False),
                          RowSecurity("order_lines"), Grant("app", "users", ("SELECT",)),
                          Grant("app", "orders", ("SELECT", "UPDATE")), Grant("migrator", "users", ("DELETE",)))
    findings = row_security_findings(schema, "postgres")
    assert [(f.object, f.code) for f in findings] == [("table orders", "rls-not-forced")]
    assert "app" in findings[0].message


def test_disabled_row_security_counts_as_missing():
    schema = small_schema(RowSecurity("users", enabled=False, forced=False), RowSecurity("orders"),
                          RowSecurity("order_lines"))
    assert [f.object for f in row_security_findings(schema, "p")] == ["table users"]


def test_sovren_declares_row_security_on_every_table_holding_a_subjects_rows(repo_root):
    schema = load_schema(repo_root / "postgres")
    assert set(subject_tables(schema)) >= {"users", "subscriptions", "transactions", "payments", "operations",
                                           "audit_log"}
    assert row_security_findings(schema, "postgres") == []
