"""the plpgsql capture chains REPEATABLE READ and SERIALIZABLE transactions on a head that has not moved (issue 13)

sovren_audit_chain (the plpgsql path) reads audit_chain_head in the committing
transaction's snapshot. At REPEATABLE READ and SERIALIZABLE that is the
transaction's first snapshot, and FOR UPDATE SKIP LOCKED does not skip a head
another transaction moved since then: it fails ("could not serialize access
due to concurrent update"), so such a commit failed as soon as the first head
in its order had moved. Now, at those levels, it tries each chain from its own
with FOR UPDATE NOWAIT, skipping heads that moved or are held, and fails (as a
serialization failure, SQLSTATE 40001, which the application retries, with a
hint naming the native capture) only when every head moved since the
transaction began or is held. READ COMMITTED is unchanged. The native capture
takes the heads at their latest version at any level (pgext/sovren_audit:
lock_head) and needs no revision. The downgrade gives the previous body back.

Revision ID: c4e8f1a2b3d5
Revises: a5d3c8e1f2b7
Create Date: 2026-12-06 23:10:00.000000

Postgres operations run first, then MongoDB's (op.mongo_*), then Redis'
(op.redis_*), all inside this revision's Postgres transaction.
"""
import textwrap
from typing import Sequence, Union

from alembic import op

# revision identifiers, used by Alembic.
revision: str = 'c4e8f1a2b3d5'
down_revision: Union[str, Sequence[str], None] = 'a5d3c8e1f2b7'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# sovren_audit_chain as revision 7c3e9a41f0b2 wrote it (a frozen copy), and as this revision writes it: the
# same text but for one declaration more and the head-taking block, which READ COMMITTED keeps as it was and
# the snapshot levels replace (built by replacement, as revision 8b4f1d6c2e90 builds its stage body, so that
# the new body is not written out twice; each replaced text must stand exactly once in the old one).
OLD_CHAIN = '''
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

OLD_TAKE_HEAD = """    SELECT chain, next_id, hash INTO v_chain, v_first, v_head FROM audit_chain_head
     ORDER BY (chain - v_want + 8) % 8 LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        SELECT chain, next_id, hash INTO v_chain, v_first, v_head FROM audit_chain_head WHERE chain = v_want FOR UPDATE;
    END IF;
"""
# READ COMMITTED keeps the old block as it was, one level deeper.
NEW_TAKE_HEAD = """    IF current_setting('transaction_isolation') = 'read committed' THEN
""" + textwrap.indent(OLD_TAKE_HEAD, '    ') + """    ELSE
        -- REPEATABLE READ and SERIALIZABLE read the heads in the transaction's snapshot: a head moved
        -- since it began cannot be locked, and one held now is about to move. The first that can be,
        -- from v_want; none: the commit fails as a serialization failure, which the application retries.
        FOR v_try IN 0..7 LOOP
            BEGIN
                SELECT chain, next_id, hash INTO v_chain, v_first, v_head FROM audit_chain_head
                 WHERE chain = (v_want - 1 + v_try) % 8 + 1 FOR UPDATE NOWAIT;
            EXCEPTION WHEN serialization_failure OR lock_not_available THEN
                v_chain := NULL;
            END;
            EXIT WHEN v_chain IS NOT NULL;
        END LOOP;
        IF v_chain IS NULL THEN
            RAISE EXCEPTION 'the audit trail cannot chain this % transaction: every chain''s head moved since it began or is held',
                current_setting('transaction_isolation')
                USING ERRCODE = 'serialization_failure',
                      HINT = 'Retry the transaction. The native capture (make pgext) takes the heads at their latest version at any isolation level.';
        END IF;
    END IF;
"""
OLD_DECLARED = "    v_payload text;\nBEGIN\n"
NEW_DECLARED = "    v_payload text;\n    v_try int;\nBEGIN\n"
assert OLD_CHAIN.count(OLD_TAKE_HEAD) == 1 and OLD_CHAIN.count(OLD_DECLARED) == 1
NEW_CHAIN = OLD_CHAIN.replace(OLD_DECLARED, NEW_DECLARED).replace(OLD_TAKE_HEAD, NEW_TAKE_HEAD)


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
    replace_chain(NEW_CHAIN, OLD_CHAIN)


def downgrade() -> None:
    replace_chain(OLD_CHAIN, NEW_CHAIN)
