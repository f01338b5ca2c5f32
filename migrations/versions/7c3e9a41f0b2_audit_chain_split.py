"""audit chain split in 8 chains verified together (issue 13, part 7)

The one head row of audit_chain_head, which every committing transaction
locked until the end of its commit (a convoy at 8 clients on 2 cores), forks
into CHAINS = 8 heads: a committer takes the first head no one holds (FOR
UPDATE SKIP LOCKED, from pid % 8 + 1) and waits only when all eight are held.
Chain k's event ids are the ids above the fork id F congruent to k modulo 8,
so each is its chain's previous id plus 8 and no global sequence or lock is
needed; every chain's first event links to the hash of event F. Events carry
their chain in payload format 3 (compliance/audit_format.py), which the CHECK
audit_log_columns_match now reads like format 2 (dropped and added again with
the guard event triggers off for the length of this transaction). The head's
event_id becomes next_id, the id the chain's next event takes: a backend still
running the previous library or function body fails on the renamed column
instead of appending out of place.

The downgrade merges the chains back into one when events were written on at
most one of them since the fork (that chain's events are a linear chain; the
next format-2 event follows its last); it refuses, changing nothing, when
several chains hold events. The capture path stays as it is: the library
chains the one head of the revisions before this one as they did (format 2),
and split heads from here on (it looks at audit_chain_head at each commit).
The CHECK keeps reading format 3 (a merged chain's events are format 3).

Revision ID: 7c3e9a41f0b2
Revises: 5e1c0a7b9d21
Create Date: 2026-12-06 17:20:00.000000

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
from typing import Sequence, Union

from alembic import op
from sqlalchemy import text

from sovren_db.core.errors import Refused

# sovren-db: accept ban-drop-constraint because audit_chain_head_one_chain becomes audit_chain_head_chains (one head to eight) and audit_log_columns_match is added again in the same transaction, reading format 3 as well
# sovren-db: accept renaming-column because audit_chain_head's only clients are the owner-only audit functions and library: a backend still on the old code must fail on the renamed column rather than append out of place
# sovren-db: accept constraint-missing-not-valid because audit_chain_head holds 8 rows and is locked by this revision anyway

# revision identifiers, used by Alembic.
revision: str = '7c3e9a41f0b2'
down_revision: Union[str, Sequence[str], None] = '5e1c0a7b9d21'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

CHAINS = 8

# The guard refuses dropping audit_log_columns_match: off for this transaction only (where it exists).
GUARDS = """DO $sovren$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_event_trigger WHERE evtname = 'sovren_audit_guard_drop') THEN
        ALTER EVENT TRIGGER sovren_audit_guard_drop {state};
    END IF;
END
$sovren$"""

COLUMNS_MATCH_V3 = """CASE WHEN left(event_payload, 9) IN ('{"v": 2, ', '{"v": 3, ')
    THEN event_payload::jsonb @> jsonb_build_object(
        'at', created_at AT TIME ZONE 'UTC', 'table', table_name, 'action', action, 'user_id', user_id,
        'actor', actor, 'accessed_at', accessed_at AT TIME ZONE 'UTC', 'query', query,
        'prev_hash', COALESCE(prev_hash, ''))
    ELSE event_payload::jsonb @> jsonb_build_object(
        'table', table_name, 'action', action, 'user_id', user_id, 'prev_hash', COALESCE(prev_hash, ''))
        AND accessed_at = created_at AND (event_payload::jsonb ->> 'at')::timestamptz = created_at
END"""

# The fork: chain 1's row held the head (last id F, its hash); chain k's next id is the smallest id above F
# congruent to k modulo CHAINS, and every chain starts from F's hash.
FORK = [
    "LOCK TABLE audit_chain_head IN ACCESS EXCLUSIVE MODE",
    "ALTER TABLE audit_chain_head DROP CONSTRAINT audit_chain_head_one_chain",
    "ALTER TABLE audit_chain_head RENAME COLUMN event_id TO next_id",
    f"""INSERT INTO audit_chain_head (chain, next_id, hash)
SELECT k, h.next_id + 1 + (((k - h.next_id - 1) % {CHAINS}) + {CHAINS}) % {CHAINS}, h.hash
  FROM audit_chain_head h, generate_series(2, {CHAINS}) AS k WHERE h.chain = 1""",
    f"UPDATE audit_chain_head SET next_id = next_id + 1 + (((1 - next_id - 1) % {CHAINS}) + {CHAINS}) % {CHAINS} "
    "WHERE chain = 1",
    f"ALTER TABLE audit_chain_head ADD CONSTRAINT audit_chain_head_chains "
    f"CHECK (chain >= 1 AND chain <= {CHAINS} AND (next_id - chain) % {CHAINS} = 0)",
]

# Events per chain since the fork (format 3), for the downgrade.
USED_CHAINS = """SELECT count(DISTINCT event_payload::jsonb ->> 'chain'), count(*) FROM audit_log
 WHERE left(event_payload, 9) = '{"v": 3, '"""

# One head again: the last event (the one chain's last when a chain was used, else the fork's head).
MERGE = [
    "LOCK TABLE audit_chain_head IN ACCESS EXCLUSIVE MODE",
    "ALTER TABLE audit_chain_head DROP CONSTRAINT audit_chain_head_chains",
    "DELETE FROM audit_chain_head WHERE chain <> 1",
    "ALTER TABLE audit_chain_head RENAME COLUMN next_id TO event_id",
    """UPDATE audit_chain_head SET event_id = COALESCE((SELECT max(event_id) FROM audit_log), 0),
       hash = (SELECT hash FROM audit_log ORDER BY event_id DESC LIMIT 1) WHERE chain = 1""",
    "ALTER TABLE audit_chain_head ADD CONSTRAINT audit_chain_head_one_chain CHECK (chain = 1)",
]


# sovren_audit_chain on the split heads (format 3), and as revision d2645c4dc20c wrote it (one head, format 2).
NEW_CHAIN = '''
DECLARE
    v_want int := pg_backend_pid() % 8 + 1;
    v_held text := current_setting('sovren_audit.chain', true);
    v_chain int;
    v_first bigint;
    v_id bigint;
    v_head text;
    v_prev text;
    v_at timestamptz;
    v_payloads text[] := '{}';
    v_hashes text[] := '{}';
    v_event jsonb;
    v_payload text;
BEGIN
    IF v_held ~ '^[1-8]$' THEN
        v_want := v_held::int;
    END IF;
    SELECT chain, next_id, hash INTO v_chain, v_first, v_head FROM audit_chain_head
     ORDER BY (chain - v_want + 8) % 8 LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT chain, next_id, hash INTO v_chain, v_first, v_head FROM audit_chain_head WHERE chain = v_want FOR UPDATE;
    END IF;
    PERFORM set_config('sovren_audit.chain', v_chain::text, true);
    v_id := v_first - 8;
    v_prev := v_head;
    v_at := clock_timestamp();  -- read under the lock: created_at grows with event_id in a chain
    FOR v_event IN SELECT e FROM jsonb_array_elements(p_events) AS e LOOP
        v_id := v_id + 8;
        v_payload := (v_event || jsonb_build_object('v', 3, 'at', v_at AT TIME ZONE 'UTC', 'actor', session_user,
                                                    'chain', v_chain, 'prev_hash', COALESCE(v_prev, '')))::text;
        v_prev := encode(digest(v_payload || v_id::text, 'sha256'), 'hex');
        v_payloads := v_payloads || v_payload;
        v_hashes := v_hashes || v_prev;
    END LOOP;
    WITH appended AS (
        INSERT INTO audit_log (event_id, created_at, table_name, action, user_id, actor, accessed_at, query,
                               event_payload, prev_hash, hash)
        SELECT v_first + (n - 1) * 8, v_at, e ->> 'table', e ->> 'action', (e ->> 'user_id')::uuid, session_user,
               ((e ->> 'accessed_at')::timestamp AT TIME ZONE 'UTC'), e ->> 'query', payload,
               CASE WHEN n = 1 THEN v_head ELSE lag(hash) OVER (ORDER BY n) END, hash
          -- in step, not p_events -> i: each -> would read the whole (TOASTed) array again
          FROM ROWS FROM (jsonb_array_elements(p_events), unnest(v_payloads), unnest(v_hashes))
               WITH ORDINALITY AS u(e, payload, hash, n))
    UPDATE audit_chain_head SET next_id = v_id + 8, hash = v_prev WHERE chain = v_chain;
    RETURN v_id;
END
'''
OLD_CHAIN = '''
DECLARE
    v_first bigint;
    v_id bigint;
    v_head text;
    v_prev text;
    v_at timestamptz;
    v_payloads text[] := '{}';
    v_hashes text[] := '{}';
    v_event jsonb;
    v_payload text;
BEGIN
    SELECT event_id, hash INTO v_id, v_head FROM audit_chain_head WHERE chain = 1 FOR UPDATE;
    v_first := v_id + 1;
    v_prev := v_head;
    v_at := clock_timestamp();  -- read under the lock: created_at grows with event_id
    FOR v_event IN SELECT e FROM jsonb_array_elements(p_events) AS e LOOP
        v_id := v_id + 1;
        v_payload := (v_event || jsonb_build_object('v', 2, 'at', v_at AT TIME ZONE 'UTC', 'actor', session_user,
                                                    'prev_hash', COALESCE(v_prev, '')))::text;
        v_prev := encode(digest(v_payload || v_id::text, 'sha256'), 'hex');
        v_payloads := v_payloads || v_payload;
        v_hashes := v_hashes || v_prev;
    END LOOP;
    WITH appended AS (
        INSERT INTO audit_log (event_id, created_at, table_name, action, user_id, actor, accessed_at, query,
                               event_payload, prev_hash, hash)
        SELECT v_first + n - 1, v_at, e ->> 'table', e ->> 'action', (e ->> 'user_id')::uuid, session_user,
               ((e ->> 'accessed_at')::timestamp AT TIME ZONE 'UTC'), e ->> 'query', payload,
               CASE WHEN n = 1 THEN v_head ELSE lag(hash) OVER (ORDER BY n) END, hash
          -- in step, not p_events -> i: each -> would read the whole (TOASTed) array again
          FROM ROWS FROM (jsonb_array_elements(p_events), unnest(v_payloads), unnest(v_hashes))
               WITH ORDINALITY AS u(e, payload, hash, n))
    UPDATE audit_chain_head SET event_id = v_id, hash = v_prev WHERE chain = 1;
    RETURN v_id;
END
'''


def replace_chain(body: str, previous: str) -> None:
    op.replace_function(
        name='sovren_audit_chain',
        args='p_events jsonb',
        returns='bigint',
        body=body,
        language='plpgsql',
        security_definer=True,
        search_path='public, pg_temp',
        volatility='VOLATILE',
        callers=(),
        previous_body=previous,
    )


def upgrade() -> None:
    op.execute(GUARDS.format(state="DISABLE"))
    for statement in FORK:
        op.execute(statement)
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT audit_log_columns_match")
    op.execute(f"ALTER TABLE audit_log ADD CONSTRAINT audit_log_columns_match CHECK ({COLUMNS_MATCH_V3}) NOT VALID")
    op.execute("ALTER TABLE audit_log VALIDATE CONSTRAINT audit_log_columns_match")
    op.execute(GUARDS.format(state="ENABLE"))
    replace_chain(NEW_CHAIN, OLD_CHAIN)


def downgrade() -> None:
    if not op.get_context().as_sql:
        chains, events = op.get_bind().execute(text(USED_CHAINS)).fetchone()
        if chains > 1:
            raise Refused(f"revision {revision} cannot be downgraded: {events:,} events were written on {chains} "
                          "chains since the fork, which no single linear chain can hold.")
    for statement in MERGE:
        op.execute(statement)
    replace_chain(OLD_CHAIN, NEW_CHAIN)
