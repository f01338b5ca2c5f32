"""a bulk statement is recorded in bulk events: one chained event per 1,000 rows (issue 13, part 7)

An INSERT, COPY or DELETE of 1,000 rows or more (BULK_ROWS) is recorded as one
event per 1,000 rows of the statement, in order, instead of one event per row.
A bulk event has the columns of the statement's row events (table, action,
accessed_at, query, actor) and details {"changed": [every column], "rows":
[{"key": .., "user_id": ..}, ..]}: for each row, what its own event would
have said. Its user_id is the rows' subject when they all share one, else NULL.
The payload is format 3 as before (details is free JSON to the CHECK and to
`audit verify`): the hash covers every row's key and subject, the CHECK covers
the columns, G.2's query keeps meaning "no tampered row". UPDATE is unchanged
(one event per row; its changed columns differ from row to row).

Why (postgres/audit.py, "Bulk events"): a 100,000-row COPY into users ran at
0.37-0.40 of the unaudited COPY with one checked row per event; 0.5 needs
the audit to cost no more than the COPY itself, and one audit_log row per
copied row (its CHECK, heap row, two index entries, payload and hash) costs
more than the copied row. With 100 bulk events the same COPY runs at 0.75.
What it gives up: a bulk event holding several subjects has user_id NULL, so
row security shows it to the auditor and not to an application role (part
6's "at most its own tenant's events" holds), and `WHERE user_id = ..` does
not find a subject's rows inside it (postgres/audit.py gives the query that does).

sovren_audit_stage() is replaced where it is the plpgsql one; where it is the C
function of pgext/sovren_audit, it is linked to the library's
sovren_audit_stage_bulk (a library built before this revision lacks it: the
function stays as it was with capture "auto", an error naming the library
with "native"). The downgrade gives the row events back on either path.

Revision ID: a4d8c1e6f2b3
Revises: b9e5d3f7a2c4
Create Date: 2026-12-07 05:10:00.000000

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
from typing import Sequence, Union

from alembic import op
from sqlalchemy import text

from sovren_db.postgres import audit_capture

# revision identifiers, used by Alembic.
revision: str = 'a4d8c1e6f2b3'
down_revision: Union[str, Sequence[str], None] = 'b9e5d3f7a2c4'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LANGUAGE = """(SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
         WHERE p.proname = 'sovren_audit_stage' AND p.pronamespace = current_schema()::regnamespace)"""

# CREATE OR REPLACE keeps the function's owner, privileges (EXECUTE revoked from PUBLIC) and comment.
REPLACE_IF_PLPGSQL = """DO $do$
BEGIN
    IF """ + LANGUAGE + """ = 'plpgsql' THEN
        EXECUTE $stage$CREATE OR REPLACE FUNCTION sovren_audit_stage() RETURNS trigger LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = public, pg_temp AS $sovren${body}$sovren$$stage$;
    END IF;
END
$do$"""

# The C function's link before this revision (one event per row) and since (bulk events).
ROWS_AS = "'sovren_audit', 'sovren_audit_stage'"
BULK_AS = "'sovren_audit', 'sovren_audit_stage_bulk'"
RELINK_IF_C = """DO $do$
BEGIN
    IF """ + LANGUAGE + """ = 'c' THEN
        EXECUTE $stage$CREATE OR REPLACE FUNCTION sovren_audit_stage() RETURNS trigger LANGUAGE c VOLATILE AS {link}$stage$;
    END IF;
END
$do$"""

# The function body before this revision (revision e7a2c9d4b61f's STAGE, written out once here: a revision
# stands alone); the new one, postgres/audit.py's stage_statement, is built from it below.
PREVIOUS_STAGE = r"""
DECLARE
    v_query text := sovren_audit_shape(current_query());
    v_at timestamp := clock_timestamp() AT TIME ZONE 'UTC';
    v_table name := TG_TABLE_NAME;
BEGIN
    IF pg_partition_root(TG_RELID) <> TG_RELID THEN
        SELECT c.relname INTO v_table FROM pg_class c WHERE c.oid = pg_partition_root(TG_RELID);
    END IF;
    IF TG_OP = 'INSERT' THEN
        INSERT INTO audit_pending (xact, events) SELECT txid_current(), jsonb_agg(jsonb_build_object('table', v_table, 'action', TG_OP, 'accessed_at', v_at, 'query', v_query,
                   'user_id', j -> 'user_id',
                   'details', jsonb_build_object('key', j - c.other, 'changed', c.cols)))
          FROM (SELECT to_jsonb(r) AS j, (row_number() OVER () - 1) / 10000 AS chunk FROM new_rows r) AS s, (SELECT COALESCE(array_agg(a.attname::text) FILTER (WHERE NOT a.attnum = ANY (i.indkey)), '{}')
                   AS other, jsonb_agg(a.attname::text ORDER BY a.attname::text) AS cols
              FROM pg_attribute a JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
             WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped) AS c
        GROUP BY s.chunk ORDER BY s.chunk;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO audit_pending (xact, events) SELECT txid_current(), jsonb_agg(jsonb_build_object('table', v_table, 'action', TG_OP, 'accessed_at', v_at, 'query', v_query,
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
        INSERT INTO audit_pending (xact, events) SELECT txid_current(), jsonb_agg(jsonb_build_object('table', v_table, 'action', TG_OP, 'accessed_at', v_at, 'query', v_query,
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

# A statement's rows, one event each (the branch of INSERT and of DELETE in PREVIOUS_STAGE) ...
def row_branch(rows: str) -> str:
    start = PREVIOUS_STAGE.index(f"FROM {rows} r) AS s, ")
    start = PREVIOUS_STAGE.rindex("        INSERT INTO audit_pending", 0, start)
    return PREVIOUS_STAGE[start:PREVIOUS_STAGE.index("ORDER BY s.chunk;\n", start) + len("ORDER BY s.chunk;\n")]


# ... becomes one event per 1,000 rows where the statement has 1,000 rows or more, else stays as it was
BULK = r"""        IF (SELECT count(*) FROM {rows}) >= 1000 THEN
            INSERT INTO audit_pending (xact, events) SELECT txid_current(), jsonb_agg(b.event ORDER BY b.bulk)
              FROM (SELECT s.n / 1000 AS bulk, jsonb_build_object('table', v_table, 'action', TG_OP,
                           'accessed_at', v_at, 'query', v_query,
                           'user_id', CASE WHEN count(DISTINCT s.j -> 'user_id') = 1 AND count(s.j -> 'user_id') = count(*)
                                           THEN (array_agg(s.j -> 'user_id'))[1] END,
                           'details', jsonb_build_object('changed', c.cols, 'rows',
                               jsonb_agg(jsonb_build_object('key', s.j - c.other, 'user_id', s.j -> 'user_id') ORDER BY s.n)))
                           AS event
                      FROM (SELECT to_jsonb(r) AS j, row_number() OVER () - 1 AS n FROM {rows} r) AS s, {columns}
                     GROUP BY s.n / 1000, c.cols) AS b
             GROUP BY b.bulk / 10 ORDER BY b.bulk / 10;
        ELSE
"""


def bulk_or_rows(rows: str) -> str:
    branch = row_branch(rows)
    columns = branch[branch.index(" AS s, ") + len(" AS s, "):branch.index("\n        GROUP BY s.chunk")]
    kept = (branch.replace("        INSERT", "            INSERT", 1)
            .replace("\n          FROM (SELECT to_jsonb", "\n              FROM (SELECT to_jsonb", 1)
            .replace("\n        GROUP BY s.chunk", "\n            GROUP BY s.chunk", 1))
    return BULK.replace("{rows}", rows).replace("{columns}", columns) + kept + "        END IF;\n"


assert PREVIOUS_STAGE.count(row_branch("new_rows")) == PREVIOUS_STAGE.count(row_branch("old_rows")) == 1
STAGE = (PREVIOUS_STAGE.replace(row_branch("new_rows"), bulk_or_rows("new_rows"))
         .replace(row_branch("old_rows"), bulk_or_rows("old_rows")))


def upgrade() -> None:
    op.execute(REPLACE_IF_PLPGSQL.replace('{body}', STAGE))
    if op.get_context().as_sql:   # offline SQL cannot try the library: the link is the script's to run
        op.execute(RELINK_IF_C.replace('{link}', BULK_AS))
    elif op.get_bind().execute(text('SELECT ' + LANGUAGE)).scalar() == 'c':
        audit_capture.choose(op, BULK_AS)   # in a savepoint: an older library keeps the row events ("auto")


def downgrade() -> None:
    op.execute(RELINK_IF_C.replace('{link}', ROWS_AS))
    op.execute(REPLACE_IF_PLPGSQL.replace('{body}', PREVIOUS_STAGE))
