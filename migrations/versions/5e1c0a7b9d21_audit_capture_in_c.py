"""audit capture in C where the server loads it (issue 13, part 7)

sovren_audit_stage, the statement trigger that turns a statement's rows into
audit events, becomes the C function of pgext/sovren_audit when the server
loads that library and the migrating role may create C functions (tried in a
savepoint; [tool.sovren-db.audit] capture = "auto" | "native" | "plpgsql",
postgres/audit_capture.py): the events stay in the backend's memory and are
chained at commit by the library's pre-commit callback, the same payloads and
hashes as the plpgsql path's. Otherwise the plpgsql function stays as it is.
The downgrade puts the plpgsql function of db870bd000c4 back.

Revision ID: 5e1c0a7b9d21
Revises: db870bd000c4
Create Date: 2026-12-06 03:10:00.000000

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
from typing import Sequence, Union

from alembic import op

from sovren_db.postgres import audit_capture

# revision identifiers, used by Alembic.
revision: str = '5e1c0a7b9d21'
down_revision: Union[str, Sequence[str], None] = 'db870bd000c4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

PLPGSQL_STAGE = """
CREATE OR REPLACE FUNCTION sovren_audit_stage() RETURNS trigger LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $sovren$
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
$sovren$
"""


def upgrade() -> None:
    audit_capture.choose(op, audit_capture.ROWS_AS)  # one event per row: the link revision a4d8c1e6f2b3 changed


def downgrade() -> None:
    op.execute(PLPGSQL_STAGE)
    op.execute(audit_capture.OWNER_ONLY)
