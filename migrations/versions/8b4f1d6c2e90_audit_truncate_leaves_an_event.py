"""a TRUNCATE of an audited table leaves an event (issue 13, "complete")

TRUNCATE users CASCADE (by the owner or a superuser: the application roles
have no TRUNCATE grant) removed every row of users, operations and payments
and left nothing in audit_log. Now statement-level AFTER TRUNCATE triggers
({table}_audit_truncate on users, operations and payments; on operations'
partitions too, as Postgres truncates each of them and one may be truncated
alone) call sovren_audit_stage, which records one event per table truncated:
action TRUNCATE, user_id NULL, the statement's shape, details
{"key": null, "changed": [every column, sorted]}, no row data. It is staged
and chained at commit like every other event, so a TRUNCATE rolled back (or
in a savepoint rolled back) leaves nothing; payload format 3 and audit_log's
CHECK are unchanged.

The stage function is replaced only where it is the plpgsql one (checked by
the server in a DO block, so offline SQL does the same): the C function of
pgext/sovren_audit (revision 5e1c0a7b9d21) handles a TRUNCATE call itself,
with the same payload bytes, and is left as it is. A server still loading
the library built before this revision fails closed: its function refuses
a trigger call without transition tables, so a TRUNCATE of an audited table
is refused (rebuild and install pgext/sovren_audit), never left unaudited.
The downgrade drops the triggers (from the partitions first) and gives the
plpgsql function of 5e1c0a7b9d21 back where it is the plpgsql one.

Revision ID: 8b4f1d6c2e90
Revises: c4e8f1a2b3d5
Create Date: 2026-12-06 23:05:00.000000

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = '8b4f1d6c2e90'
down_revision: Union[str, Sequence[str], None] = 'c4e8f1a2b3d5'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

AUDITED = ('users', 'operations', 'payments')

# CREATE OR REPLACE keeps the function's owner, privileges (EXECUTE revoked from PUBLIC) and comment.
REPLACE_IF_PLPGSQL = """DO $do$
BEGIN
    IF (SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
         WHERE p.proname = 'sovren_audit_stage' AND p.pronamespace = current_schema()::regnamespace) = 'plpgsql' THEN
        EXECUTE $stage$CREATE OR REPLACE FUNCTION sovren_audit_stage() RETURNS trigger LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $sovren${body}$sovren$$stage$;
    END IF;
END
$do$"""

# The function bodies, as written when this revision was: the one before (revision 5e1c0a7b9d21's
# PLPGSQL_STAGE), and postgres/audit.py's stage_statement, which is it with one branch more.
PREVIOUS_STAGE = r"""
DECLARE
    v_query text := sovren_audit_shape(current_query());
    v_at timestamp := clock_timestamp() AT TIME ZONE 'UTC';
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO audit_pending (xact, events) SELECT txid_current(), jsonb_agg(jsonb_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'accessed_at', v_at, 'query', v_query,
                   'user_id', j -> 'user_id',
                   'details', jsonb_build_object('key', j - c.other, 'changed', c.cols)))
          FROM (SELECT to_jsonb(r) AS j, (row_number() OVER () - 1) / 10000 AS chunk FROM new_rows r) AS s, (SELECT COALESCE(array_agg(a.attname::text) FILTER (WHERE NOT a.attnum = ANY (i.indkey)), '{}')
                   AS other, jsonb_agg(a.attname::text ORDER BY a.attname::text) AS cols
              FROM pg_attribute a JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
             WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped) AS c
        GROUP BY s.chunk ORDER BY s.chunk;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO audit_pending (xact, events) SELECT txid_current(), jsonb_agg(jsonb_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'accessed_at', v_at, 'query', v_query,
                   'user_id', j -> 'user_id',
                   'details', jsonb_build_object('key', j - c.other, 'changed', c.cols)))
          FROM (SELECT to_jsonb(r) AS j, (row_number() OVER () - 1) / 10000 AS chunk FROM old_rows r) AS s, (SELECT COALESCE(array_agg(a.attname::text) FILTER (WHERE NOT a.attnum = ANY (i.indkey)), '{}')
                   AS other, jsonb_agg(a.attname::text ORDER BY a.attname::text) AS cols
              FROM pg_attribute a JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
             WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped) AS c
        GROUP BY s.chunk ORDER BY s.chunk;
    ELSE
        INSERT INTO audit_pending (xact, events) SELECT txid_current(), jsonb_agg(jsonb_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'accessed_at', v_at, 'query', v_query,
                   'user_id', COALESCE(s.nj, s.oj) -> 'user_id',
                   'details', jsonb_build_object('key', COALESCE(s.nj, s.oj) - c.other, 'changed', CASE WHEN s.nj IS NULL OR s.oj IS NULL THEN c.cols ELSE
                       (SELECT COALESCE(jsonb_agg(k ORDER BY k), '[]') FROM jsonb_object_keys(s.nj) AS k
                         WHERE s.nj -> k IS DISTINCT FROM s.oj -> k) END)))
          FROM (SELECT COALESCE(array_agg(a.attname::text) FILTER (WHERE NOT a.attnum = ANY (i.indkey)), '{}')
                   AS other, jsonb_agg(a.attname::text ORDER BY a.attname::text) AS cols
              FROM pg_attribute a JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
             WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped) AS c CROSS JOIN LATERAL (
               SELECT n.j AS nj, o.j AS oj, (row_number() OVER () - 1) / 10000 AS chunk FROM (SELECT to_jsonb(r) AS j FROM new_rows r) AS n
                 FULL JOIN (SELECT to_jsonb(r) AS j FROM old_rows r) AS o ON n.j - c.other = o.j - c.other) AS s
        GROUP BY s.chunk ORDER BY s.chunk;
    END IF;
    RETURN NULL;
END
"""

TRUNCATE_BRANCH = r"""    ELSIF TG_OP = 'TRUNCATE' THEN
        INSERT INTO audit_pending (xact, events) VALUES (txid_current(), jsonb_build_array(jsonb_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'accessed_at', v_at,
                   'query', v_query, 'user_id', NULL,
                   'details', jsonb_build_object('key', NULL, 'changed', (
                       SELECT jsonb_agg(attname::text ORDER BY attname::text) FROM pg_attribute
                        WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped)))));
"""

STAGE = PREVIOUS_STAGE.replace("    ELSE\n", TRUNCATE_BRANCH + "    ELSE\n", 1)

# The trigger of each audited table (op.create_trigger and op.drop_trigger give and take it on partitions too).
TRIGGER = dict(function='sovren_audit_stage', timing='AFTER', events=('TRUNCATE',), level='STATEMENT', enabled=True,
               referencing='', deferred=False)


def upgrade() -> None:
    op.execute(REPLACE_IF_PLPGSQL.replace('{body}', STAGE))
    for table in AUDITED:
        op.create_trigger(name=f'{table}_audit_truncate', table=table, **TRIGGER)


def downgrade() -> None:
    for table in AUDITED:
        op.drop_trigger(name=f'{table}_audit_truncate', table=table, **TRIGGER)
    op.execute(REPLACE_IF_PLPGSQL.replace('{body}', PREVIOUS_STAGE))
