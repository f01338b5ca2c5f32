"""the audit guard also runs at the end of CREATE SCHEMA (a partition made inside one is covered at once)

`CREATE SCHEMA s CREATE TABLE p PARTITION OF operations ...` is one command
tagged CREATE SCHEMA: sovren_audit_guard_alter (ddl_command_end WHEN TAG IN
('ALTER TABLE', 'CREATE TABLE', 'ALTER TRIGGER')) did not run, so the partition
stood without the audit triggers of operations (revision f3b9d2a7c5e1) until the
next CREATE or ALTER TABLE of anyone, and DML naming it in between left no event
(tests/integration/test_audit_attack.py). The guard's body is unchanged; its
event trigger listens to CREATE SCHEMA too (an event trigger's tags cannot be
altered: it is dropped and created again, in the state it was in, as revision
a5d3c8e1f2b7 did). Where the migrating role is not a superuser the tags are left
as they are, with a NOTICE (no guard there: `check` reports such a partition,
partition-trigger-missing). The downgrade gives the previous tags back.

Revision ID: c7e2a9f4b1d6
Revises: f3b9d2a7c5e1
Create Date: 2026-12-07 02:05:00.000000

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'c7e2a9f4b1d6'
down_revision: Union[str, Sequence[str], None] = 'f3b9d2a7c5e1'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TAGS = "'ALTER TABLE', 'CREATE TABLE', 'ALTER TRIGGER', 'CREATE SCHEMA'"
PREVIOUS_TAGS = "'ALTER TABLE', 'CREATE TABLE', 'ALTER TRIGGER'"

# sovren_audit_guard_alter with other tags, in the state it was in (enabled, disabled, ...); nothing where the
# guard was not installed or the role is not a superuser now (copied from revision a5d3c8e1f2b7: a revision
# stands alone).
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


def upgrade() -> None:
    op.execute(RETAG.format(tags=TAGS))


def downgrade() -> None:
    op.execute(RETAG.format(tags=PREVIOUS_TAGS))
