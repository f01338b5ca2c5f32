"""audit_log_columns_match without parsing the payload (issue 13, part 7)

The CHECK that ties audit_log's columns to event_payload compared them as jsonb
(the payload parsed, an object built and sorted, per row): 20 % of a
100,000-row COPY's backend. For formats 2 and 3 it now compares text: the
payload starts with the columns' JSON up to "details" and ends with the rest
(compliance/audit_format.py says why that is as strict). Format 1 rows keep
the jsonb comparison.

The constraint is replaced without holding audit_log for the scan of its rows
(2 M on Sovren): the new one is added NOT VALID under another name (a brief
ACCESS EXCLUSIVE lock, no scan), validated in a transaction of its own (SHARE
UPDATE EXCLUSIVE: rows keep being appended while every existing row, in every
partition, is checked), then the old one is dropped and the new one takes its
name in one short transaction (the guard event trigger, which refuses dropping
audit_log_columns_match, off for that transaction only). Until then the old
one stands, validated, under its name, and `audit verify` trusts either text.
A stopped run can be run again from the start: the replacement is not added
twice. The downgrade puts the jsonb text back the same way.

Revision ID: 3f6b2d8e4a19
Revises: 7c3e9a41f0b2
Create Date: 2026-12-06 19:50:00.000000

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
from typing import Sequence, Union

from alembic import op

from sovren_db.compliance.audit_format import COLUMNS_MATCH_JSONB

# sovren-db: accept ban-drop-constraint because audit_log_columns_match is dropped only once its replacement, validated, stands beside it; the replacement takes its name in the same transaction
# sovren-db: accept renaming-object because the replacement constraint takes the name of the one it replaces, which only the audit functions, `check` and `audit verify` name; no client does

# revision identifiers, used by Alembic.
revision: str = '3f6b2d8e4a19'
down_revision: Union[str, Sequence[str], None] = '7c3e9a41f0b2'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The text this revision writes (audit_format.COLUMNS_MATCH when it was written), kept here as written.
COLUMNS_MATCH_TEXT = """CASE WHEN starts_with(event_payload, '{"v": 3, ')
    THEN position(convert_to('{"v": 3, "at": ' || COALESCE(to_json(created_at AT TIME ZONE 'UTC')::text, 'null') || ', "actor": ' || COALESCE(to_json(actor)::text, 'null')
        || ', "chain": ' || COALESCE((mod(event_id - 1, 8) + 1)::text, 'null')
        || ', "query": ' || COALESCE(to_json(query)::text, 'null') || ', "table": ' || COALESCE(to_json(table_name)::text, 'null')
        || ', "action": ' || COALESCE(to_json(action)::text, 'null') || ', "details": ', 'UTF8') IN convert_to(event_payload, 'UTF8')) = 1
        AND position(convert_to(', "user_id": ' || COALESCE(to_json(user_id)::text, 'null') || ', "prev_hash": ' || COALESCE(to_json(COALESCE(prev_hash, ''))::text, 'null')
        || ', "accessed_at": ' || COALESCE(to_json(accessed_at AT TIME ZONE 'UTC')::text, 'null') || '}', 'UTF8') || decode('00', 'hex') IN convert_to(event_payload, 'UTF8') || decode('00', 'hex')) > 0
    WHEN starts_with(event_payload, '{"v": 2, ')
    THEN position(convert_to('{"v": 2, "at": ' || COALESCE(to_json(created_at AT TIME ZONE 'UTC')::text, 'null') || ', "actor": ' || COALESCE(to_json(actor)::text, 'null')
        || ', "query": ' || COALESCE(to_json(query)::text, 'null') || ', "table": ' || COALESCE(to_json(table_name)::text, 'null')
        || ', "action": ' || COALESCE(to_json(action)::text, 'null') || ', "details": ', 'UTF8') IN convert_to(event_payload, 'UTF8')) = 1
        AND position(convert_to(', "user_id": ' || COALESCE(to_json(user_id)::text, 'null') || ', "prev_hash": ' || COALESCE(to_json(COALESCE(prev_hash, ''))::text, 'null')
        || ', "accessed_at": ' || COALESCE(to_json(accessed_at AT TIME ZONE 'UTC')::text, 'null') || '}', 'UTF8') || decode('00', 'hex') IN convert_to(event_payload, 'UTF8') || decode('00', 'hex')) > 0
    ELSE event_payload::jsonb @> jsonb_build_object(
        'table', table_name, 'action', action, 'user_id', user_id, 'prev_hash', COALESCE(prev_hash, ''))
        AND accessed_at = created_at AND (event_payload::jsonb ->> 'at')::timestamptz = created_at
END"""

REPLACEMENT = "audit_log_columns_match_next"

# The guard refuses dropping audit_log_columns_match: off for the swap's transaction only (where it exists).
GUARDS = """DO $sovren$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'sovren_audit_guard_drop') THEN
        ALTER EVENT TRIGGER sovren_audit_guard_drop {state};
    END IF;
END
$sovren$"""


def replace_columns_match(expression: str) -> None:
    """audit_log_columns_match becomes CHECK (expression): added NOT VALID beside it, validated in its own
    transaction, then swapped in (dropped and renamed in one short transaction)."""
    op.create_check_constraint_not_valid(REPLACEMENT, 'audit_log', expression)
    with op.get_context().autocommit_block():
        op.validate_constraint(REPLACEMENT, 'audit_log')
    op.execute(GUARDS.format(state="DISABLE"))
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT audit_log_columns_match")
    op.execute(f"ALTER TABLE audit_log RENAME CONSTRAINT {REPLACEMENT} TO audit_log_columns_match")
    op.execute(GUARDS.format(state="ENABLE"))


def upgrade() -> None:
    replace_columns_match(COLUMNS_MATCH_TEXT)


def downgrade() -> None:
    replace_columns_match(COLUMNS_MATCH_JSONB)
