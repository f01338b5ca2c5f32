"""the audit guard gives hand-made partitions their triggers only after a command that made or attached one, beside an impostor

Revision f3b9d2a7c5e1 had the guard's event trigger call
sovren_audit_cover_partitions() at the end of every CREATE TABLE, ALTER TABLE
and ALTER TRIGGER (and, since c7e2a9f4b1d6, CREATE SCHEMA), whatever the command
touched. The function walks every partition of every audited partitioned table
against the root's audit triggers: measured on a migration of 300 ALTER TABLE ADD
COLUMN on an unrelated table, 1.7x the time without the call with operations at
5 partitions, 4.1-4.9x at 65 (about 1.5-2.2 ms more per command); with this
revision 1.1x at 65 (/tmp script, the three revisions in turn on one server,
best of 3). Now the guard calls it
only when the command's own objects (pg_event_trigger_ddl_commands()) include a
partition or a partitioned table: CREATE TABLE ... PARTITION OF names the new
partition, ATTACH PARTITION the partitioned parent, a CREATE TABLE inside CREATE
SCHEMA its table. Other commands pay one look at their own objects.

sovren_audit_cover_partitions() counted a trigger as present by its name: a
table attached with its own trigger named operations_audit_insert (calling
anything) kept it, and statements naming that partition left no event (`check`
reported it: partition-trigger-missing). Now a trigger is present when it calls
the stage function for the same events, whatever its name, and a missing one is
created under the root trigger's name, or with the suffix _sovren when another
trigger has that name: the partition's statements leave their events, and
`check` still names the partition for the impostor (an owner's to look at);
where that name is taken too, a warning and no trigger, never an error (the
function runs after every partition command and looks at every partition: an
error would refuse each later one while that table stands).
Refusing the ATTACH instead was tried: with one impostor standing (attached
with the guard off) every later partition command failed, `sovren-db
partitions` included, and next month's rows would have had no partition. A
disabled audit trigger is present (disabling one on the parent is an owner's
act too; `check` reports both).

The guard's and the function's bodies are the previous ones (revision
f3b9d2a7c5e1's, written out once here: a revision stands alone) with the guard's
last call made conditional and the presence test and the name in the function; the event
triggers are unchanged. The downgrade gives the previous bodies back.

Revision ID: b9e5d3f7a2c4
Revises: c7e2a9f4b1d6
Create Date: 2026-12-07 02:25:00.000000

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'b9e5d3f7a2c4'
down_revision: Union[str, Sequence[str], None] = 'c7e2a9f4b1d6'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The cover function as revision f3b9d2a7c5e1 wrote it (a revision stands alone: copied once)
PREVIOUS_COVER = r"""
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
# A trigger is present when one on the partition calls the stage function at the same timing and events,
# whatever its name; before, one of the root trigger's name counted too, whatever it called: a table attached
# with its own `operations_audit_insert` (calling anything) kept it, and statements naming that partition left no
# event. The real trigger now comes beside it, named with a suffix when the name is taken; `check` still names
# the partition (partition-trigger-missing: its trigger of that name is not the audit trigger).
PRESENT_BY_NAME = """           AND NOT EXISTS (SELECT 1 FROM pg_trigger x WHERE x.tgrelid = d.relid
                           AND (x.tgname = t.tgname OR (x.tgfoid = t.tgfoid AND x.tgtype = t.tgtype)))
"""
# It must fire as the root's does: a WHEN condition (WHEN (false) never fires), an UPDATE OF column list or
# other transition tables make it another trigger, beside which the real one comes as beside an impostor.
PRESENT_BY_FUNCTION = """           AND NOT EXISTS (SELECT 1 FROM pg_trigger x WHERE x.tgrelid = d.relid
                           AND x.tgfoid = t.tgfoid AND x.tgtype = t.tgtype AND x.tgqual IS NULL AND x.tgattr = t.tgattr
                           AND (x.tgoldtable IS NULL) = (t.tgoldtable IS NULL) AND (x.tgnewtable IS NULL) = (t.tgnewtable IS NULL))
"""
NAMED = "        SELECT t.tgname, d.relid::regclass AS partition,\n"
NAMED_FREE = """        SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_trigger n WHERE n.tgrelid = d.relid AND n.tgname = t.tgname)
                    THEN t.tgname || '_sovren' ELSE t.tgname END AS tgname, d.relid::regclass AS partition,
"""
# Both names taken (two impostors): a warning, not an error. The function runs at the end of every partition
# command and looks at every partition: an error would refuse each later one while that table stands,
# `sovren-db partitions` making next month's included.
CREATE_EACH = """    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s%s FOR EACH STATEMENT EXECUTE FUNCTION sovren_audit_stage()',
                       v_missing.tgname, v_missing.events, v_missing.partition, v_missing.referencing);
    END LOOP;
"""
CREATE_EACH_OR_WARN = """    LOOP
        BEGIN
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s%s FOR EACH STATEMENT EXECUTE FUNCTION sovren_audit_stage()',
                           v_missing.tgname, v_missing.events, v_missing.partition, v_missing.referencing);
        EXCEPTION WHEN duplicate_object THEN
            RAISE WARNING 'partition % has no audit trigger for %: its names are taken by other triggers (check names it)',
                v_missing.partition, v_missing.events;
        END;
    END LOOP;
"""
assert PREVIOUS_COVER.count(PRESENT_BY_NAME) == 1 and PREVIOUS_COVER.count(NAMED) == 1
assert PREVIOUS_COVER.count(CREATE_EACH) == 1
COVER = (PREVIOUS_COVER.replace(PRESENT_BY_NAME, PRESENT_BY_FUNCTION).replace(NAMED, NAMED_FREE)
         .replace(CREATE_EACH, CREATE_EACH_OR_WARN))

# The guard's body as revision f3b9d2a7c5e1 left it (c7e2a9f4b1d6 changed its event trigger's tags only).
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
    PERFORM sovren_audit_cover_partitions();
END
"""

COVER_ALWAYS = "    PERFORM sovren_audit_cover_partitions();\n"
# pg_event_trigger_ddl_commands() lists the command's objects (a CREATE SCHEMA's subcommands included); a
# partition (relispartition) or a partitioned table (relkind 'p', the parent an ATTACH names) among them is
# the only way a partition can have come without the audit triggers.
COVER_WHEN_PARTITIONS = """    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() d JOIN pg_class c ON c.oid = d.objid
                WHERE d.classid = 'pg_class'::regclass AND (c.relispartition OR c.relkind = 'p')) THEN
        PERFORM sovren_audit_cover_partitions();
    END IF;
"""
assert PREVIOUS_GUARD.count(COVER_ALWAYS) == 1
GUARD = PREVIOUS_GUARD.replace(COVER_ALWAYS, COVER_WHEN_PARTITIONS)


def replace(name: str, returns: str, body: str, previous: str) -> None:
    """One of the two owner-only plpgsql functions, SECURITY DEFINER as revision f3b9d2a7c5e1 made them."""
    op.replace_function(
        name=name,
        args='',
        returns=returns,
        body=body,
        language='plpgsql',
        security_definer=True,
        search_path='public, pg_temp',
        callers=(),
        previous_body=previous,
    )


def upgrade() -> None:
    replace('sovren_audit_cover_partitions', 'void', COVER, PREVIOUS_COVER)
    replace('sovren_audit_guard_ddl', 'event_trigger', GUARD, PREVIOUS_GUARD)
    op.execute('SELECT sovren_audit_cover_partitions()')   # the real triggers beside impostors standing already


def downgrade() -> None:
    replace('sovren_audit_guard_ddl', 'event_trigger', PREVIOUS_GUARD, GUARD)
    replace('sovren_audit_cover_partitions', 'void', PREVIOUS_COVER, COVER)
