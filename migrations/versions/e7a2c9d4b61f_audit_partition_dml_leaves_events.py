"""DML naming a partition of an audited table leaves its events (issue 13, "complete")

A statement-level trigger fires only for statements naming its table, and
Postgres does not clone statement triggers onto partitions: INSERT, UPDATE or
DELETE naming a partition of operations (operations_p2026_12, its default),
by the owner or a superuser (the application roles hold no grant on
partitions), left no event. Each partition of an audited partitioned table
(operations) now carries the parent's three statement triggers,
{table}_audit_insert, _update and _delete, REFERENCING the same transition
tables (Postgres 15 allows transition tables on a partition's statement
triggers; only row triggers may not have them). A statement on the parent
fires its own statement triggers only, never a partition's: still exactly one
event per row.

The events name the parent (table "operations"), byte for byte those a
statement on the parent writes for the same rows but for the statement's
shape: sovren_audit_stage names the root of the partition tree for a row event
(pg_partition_root), as postgres/audit.py says why; a TRUNCATE still names the
table it emptied. The stage function is replaced only where it is the plpgsql
one (the C function of pgext/sovren_audit names the root itself; a server
loading a library built before this revision writes the partition's name,
its events otherwise complete). Partitions made later get the triggers from
ensure_partitions (it copies the parent's statement-level triggers).

The downgrade drops the three triggers from every partition and gives the
plpgsql function of 8b4f1d6c2e90 back where it is the plpgsql one.

Revision ID: e7a2c9d4b61f
Revises: 8b4f1d6c2e90
Create Date: 2026-12-06 23:20:00.000000

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'e7a2c9d4b61f'
down_revision: Union[str, Sequence[str], None] = '8b4f1d6c2e90'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

AUDITED = ('users', 'operations', 'payments')
EVENTS = ('insert', 'update', 'delete')
TRANSITIONS = {'insert': 'NEW TABLE AS new_rows', 'update': 'OLD TABLE AS old_rows NEW TABLE AS new_rows',
               'delete': 'OLD TABLE AS old_rows'}

# CREATE OR REPLACE keeps the function's owner, privileges (EXECUTE revoked from PUBLIC) and comment.
REPLACE_IF_PLPGSQL = """DO $do$
BEGIN
    IF (SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
         WHERE p.proname = 'sovren_audit_stage' AND p.pronamespace = current_schema()::regnamespace) = 'plpgsql' THEN
        EXECUTE $stage$CREATE OR REPLACE FUNCTION sovren_audit_stage() RETURNS trigger LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $sovren${body}$sovren$$stage$;
    END IF;
END
$do$"""

# The function bodies, as written when this revision was: the one before (revision 8b4f1d6c2e90's
# STAGE), and postgres/audit.py's stage_statement, which is it with the row events naming v_table.
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
    ELSIF TG_OP = 'TRUNCATE' THEN
        INSERT INTO audit_pending (xact, events) VALUES (txid_current(), jsonb_build_array(jsonb_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'accessed_at', v_at,
                   'query', v_query, 'user_id', NULL,
                   'details', jsonb_build_object('key', NULL, 'changed', (
                       SELECT jsonb_agg(attname::text ORDER BY attname::text) FROM pg_attribute
                        WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped)))));
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

ROW_TABLE = "jsonb_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'accessed_at', v_at, 'query', v_query,\n                   'user_id'"
DECLARE_TABLE = """    v_at timestamp := clock_timestamp() AT TIME ZONE 'UTC';
    v_table name := TG_TABLE_NAME;
"""
# pg_partition_root: NULL outside a partition tree, the table itself for the root; only a partition reads pg_class.
FIND_ROOT = """BEGIN
    IF pg_partition_root(TG_RELID) <> TG_RELID THEN
        SELECT c.relname INTO v_table FROM pg_class c WHERE c.oid = pg_partition_root(TG_RELID);
    END IF;
"""
STAGE = (PREVIOUS_STAGE.replace(ROW_TABLE, ROW_TABLE.replace('TG_TABLE_NAME', 'v_table'))
         .replace("    v_at timestamp := clock_timestamp() AT TIME ZONE 'UTC';\n", DECLARE_TABLE, 1)
         .replace("BEGIN\n", FIND_ROOT, 1))

# The three triggers of an audited table, on each partition of it that lacks them (upgrade) or has them
# (downgrade). Statement triggers: Postgres neither clones them onto partitions nor drops them with the parent's.
ON_PARTITIONS = """DO $do$
DECLARE
    v_partition text;
BEGIN
    FOR v_partition IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                        WHERE i.inhparent = to_regclass('{table}')
                          AND {present} (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid
                                         AND t.tgname = '{name}') LOOP
        EXECUTE format('{action}', v_partition);
    END LOOP;
END
$do$"""


def on_partitions(table: str, event: str, create: bool) -> str:
    name = f'{table}_audit_{event}'
    action = (f'CREATE TRIGGER {name} AFTER {event.upper()} ON %I REFERENCING {TRANSITIONS[event]} '
              f'FOR EACH STATEMENT EXECUTE FUNCTION sovren_audit_stage()' if create else f'DROP TRIGGER {name} ON %I')
    return ON_PARTITIONS.format(table=table, name=name, present='NOT EXISTS' if create else 'EXISTS', action=action)


def upgrade() -> None:
    op.execute(REPLACE_IF_PLPGSQL.replace('{body}', STAGE))
    for table in AUDITED:   # users and payments have no partitions: the loops find none
        for event in EVENTS:
            op.execute(on_partitions(table, event, create=True))


def downgrade() -> None:
    for table in AUDITED:
        for event in EVENTS:
            op.execute(on_partitions(table, event, create=False))
    op.execute(REPLACE_IF_PLPGSQL.replace('{body}', PREVIOUS_STAGE))
