"""Each Postgres, Mongo, Redis and cross-store rule fires on a revision made to break it and stays quiet on the safe form.

No server: ``lint --base`` runs the revisions offline.
"""

from __future__ import annotations

import json

import pytest

from tests.lint.conftest import line_of

SESSION = {"name": "session", "pattern": "session:{user_id}", "type": "string",
           "ttl": {"policy": "required", "max": 2592000, "default": 86400}, "pii": True, "subject": "user_id"}
SESSION_1H = {**SESSION, "ttl": {"policy": "required", "max": 3600, "default": 1800}}
SESSION_60D = {**SESSION, "ttl": {"policy": "required", "max": 5184000, "default": 86400}}
FAILED_INDEX = {"name": "failed_by_timestamp", "key": [["timestamp", 1]],
                "partialFilterExpression": {"status": "failed"}}
TTL_1D = {"name": "createdAt_ttl", "key": [["createdAt", 1]], "expireAfterSeconds": 86400}
TTL_30D = {**TTL_1D, "expireAfterSeconds": 2592000}
STRICT = {"$jsonSchema": {"bsonType": "object", "required": ["userId"],
                          "properties": {"userId": {"bsonType": "string"}}}}
REFUND_OF = "op.add_column('payments', sa.Column('refund_of', sa.UUID()))"
UNTYPED_NAME = {"name": "x", "pattern": "scratch:{id}", "type": "string"}

# code -> (upgrade() that breaks the rule, the needle on the offending line, the safe upgrade())
CASES = {
    "MG101": ('op.mongo_drop_collection(collection="executives")', "mongo_drop_collection",
              'op.mongo_create_collection(collection="briefings")'),
    "MG102": (f"op.mongo_drop_index(collection='communications', index={FAILED_INDEX!r})", "mongo_drop_index",
              f"op.mongo_create_index(collection='communications', index={FAILED_INDEX!r})"),
    "MG103": (f"op.mongo_drop_index(collection='executives', index={TTL_30D!r})\n"
              f"op.mongo_create_index(collection='executives', index={TTL_1D!r})", "mongo_create_index",
              f"op.mongo_drop_index(collection='executives', index={TTL_1D!r})\n"
              f"op.mongo_create_index(collection='executives', index={TTL_30D!r})"),
    "MG201": ("op.mongo_shard_collection(collection='communications', key=[['userId', 1]], "
              "prior_key=[['userId', 'hashed']])", "mongo_shard_collection",
              "op.mongo_shard_collection(collection='briefings', key=[['userId', 'hashed']])"),
    "MG301": (f"op.mongo_set_validator(collection='executives', validator={STRICT!r})", "mongo_set_validator",
              f"op.mongo_set_validator(collection='executives', validator={STRICT!r}, validation_level='moderate')"),
    "MG302": ("op.mongo_create_index(collection='executives', index={'name': 'ttl', 'key': [['role', 1]], "
              "'expireAfterSeconds': 60})", "mongo_create_index",
              "op.mongo_create_index(collection='executives', index={'name': 'ttl', 'key': [['updatedAt', 1]], "
              "'expireAfterSeconds': 60})"),
    "RD101": (f"op.redis_delete_family(family={SESSION!r})", "redis_delete_family",
              f"op.redis_retire_family(family={SESSION!r})"),
    "RD102": (f"op.redis_declare_family(family={SESSION_1H!r}, previous={SESSION!r})", "redis_declare_family",
              f"op.redis_declare_family(family={SESSION_60D!r}, previous={SESSION!r})"),
    "RD201": (f"op.redis_rename_family(old={SESSION!r}, new={{**{SESSION!r}, 'pattern': 'sess:{{user_id}}'}})",
              "redis_rename_family", f"op.redis_declare_family(family={SESSION!r})"),
    "RD301": (f"op.redis_declare_family(family={UNTYPED_NAME!r})", "redis_declare_family",
              f"op.redis_declare_family(family={{**{UNTYPED_NAME!r}, 'ttl': {{'policy': 'required', 'max': 60}}}})"),
    "XS101": ("op.drop_column('users', 'user_id')", "drop_column", "op.drop_column('users', 'last_login')"),
    "PG401": (f"{REFUND_OF}\nop.create_foreign_key('payments_refund_of_fkey', 'payments', 'payments', ['refund_of'], "
              "['payment_id'])", "create_foreign_key",
              f"{REFUND_OF}\nop.create_index('ix_payments_refund_of', 'payments', ['refund_of', 'created_at'])\n"
              "op.create_foreign_key('payments_refund_of_fkey', 'payments', 'payments', ['refund_of'], "
              "['payment_id'])"),
}


def codes(result) -> list[str]:
    return [f["code"] for f in json.loads(result.output)["findings"]]


@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_fires_on_the_breaking_revision_with_file_and_line(lint_project, code):
    broken, needle, _ = CASES[code]
    path = lint_project.add_revision(broken)
    result = lint_project.lint("--format", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    hits = [f for f in report["findings"] if f["code"] == code]
    assert len(hits) == 1, report["findings"]
    assert hits[0]["file"] == f"migrations/versions/{path.name}"
    assert hits[0]["line"] == line_of(path, needle)


@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_stays_quiet_on_the_safe_form(lint_project, code):
    _, _, safe = CASES[code]
    lint_project.add_revision(safe)
    result = lint_project.lint("--format", "json")
    assert code not in codes(result), result.output


def test_a_new_collection_may_have_a_ttl_index_at_once(lint_project):
    lint_project.add_revision("op.mongo_create_collection(collection='briefings', validator="
                              "{'$jsonSchema': {'properties': {'at': {'bsonType': 'date'}}}}, "
                              "indexes=[{'name': 'at_ttl', 'key': [['at', 1]], 'expireAfterSeconds': 60}])")
    result = lint_project.lint("--format", "json")
    assert result.exit_code == 0, result.output
    assert codes(result) == []


def test_ttl_rule_reads_the_validator_the_revision_sets(lint_project):
    schema = {"$jsonSchema": {"properties": {"sentAt": {"bsonType": ["date", "null"]}}}}
    lint_project.add_revision(f"op.mongo_set_validator(collection='communications', validator={schema!r}, "
                              "validation_action='warn')\n"
                              "op.mongo_create_index(collection='communications', "
                              "index={'name': 'sent_ttl', 'key': [['sentAt', 1]], 'expireAfterSeconds': 60})")
    assert "MG302" not in codes(lint_project.lint("--format", "json"))


def test_unshard_is_a_shard_key_change(lint_project):
    lint_project.add_revision("op.mongo_unshard_collection(collection='communications', key=[['userId', 'hashed']])")
    assert codes(lint_project.lint("--format", "json")) == ["MG201"]


def test_making_keys_expire_that_never_did_is_a_shorter_ttl(lint_project):
    forever = {**SESSION, "ttl": {"policy": "none"}}
    lint_project.add_revision(f"op.redis_declare_family(family={SESSION!r}, previous={forever!r})")
    assert codes(lint_project.lint("--format", "json")) == ["RD102"]


def test_foreign_families_need_no_ttl_rule(lint_project):
    lint_project.add_revision(f"op.redis_declare_family(family={{**{UNTYPED_NAME!r}, 'foreign': True}})")
    assert "RD301" not in codes(lint_project.lint("--format", "json"))


@pytest.mark.parametrize("statement", [
    "op.alter_column('users', 'user_id', new_column_name='account_id')",
    "op.execute('ALTER TABLE operations RENAME COLUMN operation_id TO op_id')",
    "op.drop_table('users')",
])
def test_cross_store_rule_sees_renames_and_table_drops(lint_project, statement):
    lint_project.add_revision(statement)
    assert "XS101" in codes(lint_project.lint("--format", "json"))


def test_cross_store_rule_needs_a_declared_link(lint_project):
    (lint_project.root / "lint.toml").write_text('[squawk]\npg_version = "14"\n')
    lint_project.add_revision("op.drop_column('users', 'user_id')")
    assert "XS101" not in codes(lint_project.lint("--format", "json"))


def test_cross_store_rule_is_quiet_once_the_other_stores_stop_naming_the_column(lint_project):
    (lint_project.root / "lint.toml").write_text(
        '[[links]]\npostgres = "users.user_id"\nredis = ["session.user_id"]\n')
    sessions = lint_project.root / "redis" / "sessions.toml"
    sessions.write_text(sessions.read_text().replace("{user_id}", "{account_id}")
                        .replace('subject = "user_id"', 'subject = "account_id"'))
    lint_project.add_revision("op.drop_column('users', 'user_id')")
    assert "XS101" not in codes(lint_project.lint("--format", "json"))


def test_a_link_to_nothing_is_a_warning(lint_project):
    (lint_project.root / "lint.toml").write_text(
        '[[links]]\npostgres = "users.user_id"\nmongo = ["executives.userID"]\n')
    lint_project.add_revision("op.mongo_create_collection(collection='briefings')")
    result = lint_project.lint("--format", "json")
    assert result.exit_code == 0, result.output
    [warning] = json.loads(result.output)["findings"]
    assert warning["code"] == "XS102" and warning["severity"] == "warning"
    assert "executives.userID" in warning["message"]


def test_foreign_keys_of_a_new_table_count_its_keys_and_the_declared_indexes(lint_project):
    """Inline and table-level foreign keys; a primary key, a unique key or a declared index leading them serves."""
    path = lint_project.add_revision("""
        op.create_table('notes', sa.Column('user_id', sa.UUID(), sa.ForeignKey('users.user_id')),
                        sa.Column('payment_id', sa.UUID(), sa.ForeignKey('payments.payment_id')),
                        sa.Column('author_id', sa.UUID()), sa.Column('n', sa.Integer()),
                        sa.ForeignKeyConstraint(['author_id'], ['users.user_id']),
                        sa.PrimaryKeyConstraint('user_id', 'n'), sa.UniqueConstraint('author_id', 'n'))
        op.create_foreign_key('transactions_user_fk2', 'transactions', 'users', ['user_id'], ['user_id'])
    """)
    report = json.loads(lint_project.lint("--format", "json").output)
    hits = [f for f in report["findings"] if f["code"] == "PG401"]
    assert [h["message"].split(":")[0] for h in hits] == ["foreign key notes (payment_id)"]
    assert hits[0]["line"] == line_of(path, "create_table")
