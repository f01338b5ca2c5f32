"""the audit guard refuses renaming audit_log, its CHECK and its guard triggers (issue 13)

The guard (sovren_audit_guard_ddl, revision d2645c4dc20c) refused dropping
audit_log_columns_match, audit_log_immutable and audit_log_no_truncate and
disabling the triggers, by name: a superuser renamed the CHECK (ALTER TABLE
... RENAME CONSTRAINT) or a trigger (ALTER TRIGGER ... RENAME, a tag the
guard's event trigger did not listen to) and then dropped or disabled it
freely under its new name. Now, at the end of every command it sees, the
guard checks that audit_log, its CHECK and both triggers stand under their
names (postgres/audit.py says why checking what stands rather than the
command), and where a trigger of a partition was altered, that the partition
keeps its audit_log_no_truncate. sovren_audit_guard_alter listens to ALTER
TRIGGER too (an event trigger's tags cannot be altered: it is dropped and
created again, in the state it was in). A trigger enabled for replicas only
(ENABLE REPLICA TRIGGER), which no ordinary session fires, counts as disabled.

Swapping the CHECK (as 7c3e9a41f0b2 and 3f6b2d8e4a19 did, with the drop guard
alone off) now also needs sovren_audit_guard_alter off for that transaction:
the end of the DROP CONSTRAINT would find the CHECK missing.

Event triggers need a superuser: where the migrating role is not one, the
function is replaced (the renamed CHECK is then refused on ALTER TABLE) and
the tags are left as they are, with a NOTICE. The downgrade gives the
previous function body and tags back.

Revision ID: a5d3c8e1f2b7
Revises: 3f6b2d8e4a19
Create Date: 2026-12-06 22:50:00.000000

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'a5d3c8e1f2b7'
down_revision: Union[str, Sequence[str], None] = '3f6b2d8e4a19'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TAGS = "'ALTER TABLE', 'CREATE TABLE', 'ALTER TRIGGER'"
PREVIOUS_TAGS = "'ALTER TABLE', 'CREATE TABLE'"

# sovren_audit_guard_alter with other tags, in the state it was in (enabled, disabled, ...); nothing where the
# guard was not installed (d2645c4dc20c ran as a role that was not a superuser) or the role is not one now.
RETAG = """DO $sovren$
DECLARE
    v_state "char";
BEGIN
    SELECT evtenabled INTO v_state FROM pg_event_trigger WHERE evtname = 'sovren_audit_guard_alter';
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        RAISE NOTICE 'audit_log guard: tags of sovren_audit_guard_alter not changed: event triggers need a superuser';
        RETURN;
    END IF;
    DROP EVENT TRIGGER sovren_audit_guard_alter;
    CREATE EVENT TRIGGER sovren_audit_guard_alter ON ddl_command_end
        WHEN TAG IN ({tags})
        EXECUTE FUNCTION sovren_audit_guard_ddl();
    IF v_state <> 'O' THEN
        EXECUTE 'ALTER EVENT TRIGGER sovren_audit_guard_alter '
            || CASE v_state WHEN 'D' THEN 'DISABLE' WHEN 'R' THEN 'ENABLE REPLICA' ELSE 'ENABLE ALWAYS' END;
    END IF;
END
$sovren$"""

# The function bodies, as written when this revision was (postgres/audit.py's guard_ddl, and the one before).
GUARD = r"""
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

PREVIOUS_GUARD = r"""
DECLARE
    v_name text;
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
    SELECT c.relname INTO v_name FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE t.tgname = 'audit_log_no_truncate' AND c.relname <> 'audit_log'
       AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid
                       AND i.inhparent = 'audit_log'::regclass AND NOT i.inhdetachpending)
     LIMIT 1;
    IF v_name IS NOT NULL THEN
        RAISE EXCEPTION 'audit_log is immutable: detaching partition % is not allowed', v_name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT c.relname INTO v_name FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
     WHERE t.tgname IN ('audit_log_immutable', 'audit_log_no_truncate') AND t.tgenabled = 'D' LIMIT 1;
    IF v_name IS NOT NULL THEN
        RAISE EXCEPTION 'audit_log is immutable: disabling its triggers on % is not allowed', v_name
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    FOR v_name IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                   WHERE i.inhparent = 'audit_log'::regclass
                     AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid
                                     AND t.tgname = 'audit_log_no_truncate') LOOP
        EXECUTE format('CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON %I '
                       'FOR EACH STATEMENT EXECUTE FUNCTION sovren_audit_immutable()', v_name);
    END LOOP;
END
"""


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
    replace_guard(GUARD, PREVIOUS_GUARD)
    op.execute(RETAG.format(tags=TAGS))


def downgrade() -> None:
    op.execute(RETAG.format(tags=PREVIOUS_TAGS))
    replace_guard(PREVIOUS_GUARD, GUARD)
