"""a partition made by hand of an audited table gets the audit triggers (issue 13, "complete")

Postgres never clones statement-level triggers onto partitions, and a statement
naming a partition fires only the partition's own. Revisions 8b4f1d6c2e90 and
e7a2c9d4b61f gave operations' partitions the parent's audit triggers
(operations_audit_insert, _update, _delete, _truncate) and ensure_partitions
(`sovren-db partitions`) gives them to the partitions it makes; a partition
made by hand (CREATE TABLE ... PARTITION OF operations, ALTER TABLE operations
ATTACH PARTITION), by the owner or a superuser, had none, and DML or TRUNCATE
naming it left no event.

Now sovren_audit_cover_partitions() gives every partition of an audited
partitioned table, at any depth (a sub-partitioned partition and its own
partitions), each audit trigger of its root that it lacks, with the same
definition and name as ensure_partitions copies; the guard's event trigger
(sovren_audit_guard_alter, ddl_command_end, tags ALTER TABLE and CREATE TABLE
already: ATTACH PARTITION is an ALTER TABLE) calls it at the end of every
command it sees, and this revision calls it once for partitions made by hand
before it. Whichever of the guard and ensure_partitions runs second finds the
triggers there and creates nothing. postgres/audit.py says why it is a function
of its own and what counts as present.

The guard's body is the previous one (revision a5d3c8e1f2b7's) with one line
more; its event triggers' tags are unchanged. Where the migrating role is not
a superuser there is no event trigger: the function is created and called,
the body replaced, and hand-made partitions wait for `check`
(partition-trigger-missing). The downgrade gives the previous body back and
drops the function; triggers it gave stay (they are those of every other
partition).

Revision ID: f3b9d2a7c5e1
Revises: e7a2c9d4b61f
Create Date: 2026-12-07 01:40:00.000000

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'f3b9d2a7c5e1'
down_revision: Union[str, Sequence[str], None] = 'e7a2c9d4b61f'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The function, as written when this revision was (postgres/audit.py's cover_partitions).
COVER = r"""
DECLARE
    v_missing record;
BEGIN
    FOR v_missing IN
        SELECT t.tgname, d.relid::regclass AS partition,
               concat_ws(' OR ', CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' END, CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' END,
                         CASE WHEN t.tgtype & 8 <> 0 THEN 'DELETE' END, CASE WHEN t.tgtype & 32 <> 0 THEN 'TRUNCATE' END) AS events,
               COALESCE(' REFERENCING ' || NULLIF(concat_ws(' ', 'OLD TABLE AS ' || quote_ident(t.tgoldtable),
                                                            'NEW TABLE AS ' || quote_ident(t.tgnewtable)), ''), '') AS referencing
          FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid CROSS JOIN LATERAL pg_partition_tree(r.oid) AS d
         WHERE t.tgfoid = to_regprocedure('sovren_audit_stage()') AND t.tgtype & 3 = 0   -- AFTER, FOR EACH STATEMENT
           AND r.relkind = 'p' AND NOT r.relispartition AND d.level > 0
           AND NOT EXISTS (SELECT 1 FROM pg_trigger x WHERE x.tgrelid = d.relid
                           AND (x.tgname = t.tgname OR (x.tgfoid = t.tgfoid AND x.tgtype = t.tgtype)))
         ORDER BY d.level, d.relid, t.tgname
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s%s FOR EACH STATEMENT EXECUTE FUNCTION sovren_audit_stage()',
                       v_missing.tgname, v_missing.events, v_missing.partition, v_missing.referencing);
    END LOOP;
END
"""

# The guard's body, as written when this revision was: the one before (revision a5d3c8e1f2b7's GUARD, copied
# once, not imported from that file: a revision stands alone, the chain may be squashed one day) and
# postgres/audit.py's guard_ddl, which is it calling COVER at the end of every command it sees.
PREVIOUS_GUARD = r"""
DECLARE
    v_name text;
    v_log regclass := to_regclass('audit_log');
BEGIN
    IF TG_EVENT = 'sql_drop' THEN
        SELECT object_identity INTO v_name FROM pg_event_trigger_dropped_objects()
         WHERE (object_type = 'trigger' AND object_identity ~ '^audit_log_(immutable|no_truncate) on [^.]+\.audit_log')
            OR (object_type = 'table constraint' AND object_identity ~ '^audit_log_columns_match on [^.]+\.audit_log')
         LIMIT 1;
        IF v_name IS NOT NULL THEN
            RAISE EXCEPTION 'audit_log is immutable: dropping % is not allowed', v_name
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN;
    END IF;
    IF v_log IS NULL THEN
        RAISE EXCEPTION 'audit_log is immutable: renaming or dropping table audit_log is not allowed'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT g.what INTO v_name FROM (VALUES
            (1, 'constraint audit_log_columns_match', EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = v_log
                                                             AND conname = 'audit_log_columns_match' AND contype = 'c')),
            (2, 'trigger audit_log_immutable', EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = v_log
                                                      AND tgname = 'audit_log_immutable')),
            (3, 'trigger audit_log_no_truncate', EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = v_log
                                                        AND tgname = 'audit_log_no_truncate'))) AS g(n, what, present)
     WHERE NOT g.present ORDER BY g.n LIMIT 1;
    IF v_name IS NOT NULL THEN
        RAISE EXCEPTION 'audit_log is immutable: renaming or dropping % on audit_log is not allowed', v_name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_TAG = 'ALTER TRIGGER' THEN
        SELECT c.relname INTO v_name FROM pg_event_trigger_ddl_commands() d
          JOIN pg_trigger t ON t.oid = d.objid JOIN pg_class c ON c.oid = t.tgrelid
          JOIN pg_inherits i ON i.inhrelid = c.oid AND i.inhparent = v_log
         WHERE d.classid = 'pg_trigger'::regclass
           AND NOT EXISTS (SELECT 1 FROM pg_trigger p WHERE p.tgrelid = c.oid AND p.tgname = 'audit_log_no_truncate')
         LIMIT 1;
        IF v_name IS NOT NULL THEN
            RAISE EXCEPTION 'audit_log is immutable: renaming or dropping trigger audit_log_no_truncate on % is not allowed',
                v_name USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    SELECT c.relname INTO v_name FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE t.tgname = 'audit_log_no_truncate' AND c.oid <> v_log
       AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid
                       AND i.inhparent = v_log AND NOT i.inhdetachpending)
     LIMIT 1;
    IF v_name IS NOT NULL THEN
        RAISE EXCEPTION 'audit_log is immutable: detaching partition % is not allowed', v_name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT c.relname INTO v_name FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE t.tgname IN ('audit_log_immutable', 'audit_log_no_truncate') AND t.tgenabled IN ('D', 'R') LIMIT 1;
    IF v_name IS NOT NULL THEN
        RAISE EXCEPTION 'audit_log is immutable: disabling its triggers on % is not allowed', v_name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR v_name IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = v_log
                     AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid
                                     AND t.tgname = 'audit_log_no_truncate') LOOP
        EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION sovren_audit_immutable()', v_name);
    END LOOP;
END
"""

LAST_LOOP = "    END LOOP;\nEND\n"
GUARD = PREVIOUS_GUARD.replace(LAST_LOOP, "    END LOOP;\n    PERFORM sovren_audit_cover_partitions();\nEND\n")
assert PREVIOUS_GUARD.endswith(LAST_LOOP) and PREVIOUS_GUARD.count(LAST_LOOP) == 1


def replace_guard(body: str, previous: str) -> None:
    op.replace_function(
        name='sovren_audit_guard_ddl',
        args='',
        returns='event_trigger',
        body=body,
        language='plpgsql',
        security_definer=True,
        search_path='public, pg_temp',
        callers=(),
        previous_body=previous,
    )


def upgrade() -> None:
    op.create_function(
        name='sovren_audit_cover_partitions',
        args='',
        returns='void',
        body=COVER,
        language='plpgsql',
        security_definer=True,
        search_path='public, pg_temp',
        callers=(),
    )
    replace_guard(GUARD, PREVIOUS_GUARD)
    op.execute('SELECT sovren_audit_cover_partitions()')   # partitions made by hand before this revision


def downgrade() -> None:
    replace_guard(PREVIOUS_GUARD, GUARD)
    op.drop_function(name='sovren_audit_cover_partitions', args='', returns='void', body='', language='plpgsql')
