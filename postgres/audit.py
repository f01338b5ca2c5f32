"""The immutable, hash-chained audit trail (§6, Appendix G.2 and G.4).

Every row's event_payload is canonical JSON text (jsonb's) holding every other
column of the row and the previous row's hash, and hash = sha256(event_payload ||
event_id), so G.2's query

    SELECT event_id, created_at, hash FROM audit_log
    WHERE hash != encode(digest(event_payload || event_id::text, 'sha256'), 'hex');

returns nothing on an untouched log and the altered row after tampering. The
columns cannot drift from the payload: the CHECK constraint audit_log_columns_match
(sovren_db.compliance.audit_format) refuses such a row even with the triggers
disabled. Event ids are gapless in their chain: each is its chain's previous one
plus CHAINS (below; plus one in the single chain of formats 1 and 2).

How rows get there, and why (issue 13, "fast enough"). The first design appended
each audited row under a transaction advisory lock held until commit: every
audited transaction waited for the previous one's whole remaining life (its
next statements, client round trips, commit), 7.5x slower at 8 clients.
Now the chain is written at commit:

1. statement-level AFTER triggers with transition tables (``{table}_audit_insert``,
   ``_update``, ``_delete``) turn all rows of a statement into events in one
   set-based query (one trigger call per statement, not per row: a COPY of
   100,000 rows makes one call) and stage them in the UNLOGGED audit_pending;
2. a deferred constraint trigger on audit_pending (``audit_pending_flush``)
   runs at commit: it takes a chain's head (a row of audit_chain_head, which
   also holds the chain's next event id and last hash, so no index scan finds
   the head), numbers and hashes the staged events in order and appends them
   with one INSERT. The head's lock is held from there to the end of the commit only.

Several chains, verified together (revision 7c3e9a41f0b2). With one head, every
committer queued on its row lock until the one before it had finished its commit;
on two cores a woken waiter then waited for a CPU too: a convoy (p99 11-16 ms at 8
clients). Now there are CHAINS = 8 heads; a commit takes the first head no other
transaction holds (``FOR UPDATE SKIP LOCKED``, tried from pid % 8 + 1, so that
concurrent backends start on different heads) and waits only when all eight are
held. Eight: the most committers the workload runs at once (8 pgbench clients; the
application's pool is of that order), so that a free head exists for each, while
a checkpoint stays a short line and a verification tracks eight heads; more heads
would not wait less on two cores. Chain k's ids are the ids above the fork id F
congruent to k modulo 8, so each event's id is its chain's previous id plus 8
without any global sequence or lock; each chain's first event links to event F's
hash (the single chain's head at the fork) and has the id first_id(F, k). Payload
format 3 carries the chain number (compliance/audit_format.py); the CHECK reads it
like format 2 and, since revision 3f6b2d8e4a19, also requires it to follow from the id.

What the split costs, and why the proof stays as strong. Ids no longer tell the
global commit order (created_at grows with event_id within a chain, not across
chains), and a transaction's events are adjacent in its chain (ids 8 apart), not
in the table. The proof is the single chain's, per chain: every event is hashed
with every column; each is linked to its chain's previous event and numbered
after it, so a deleted, inserted, moved or rewritten event breaks its chain or
leaves a gap in it, including a chain's first event (its id follows from F and k,
and it must link to F); the chains' common root is the single chain's head, so
the history before the fork is covered as before. The one thing a chain cannot
show by itself, a cut or rewritten tail, is what it could not show before either:
the signed checkpoint now holds every chain's (count, last id, head hash), and
``audit verify`` checks each tail against it. A verification walks all chains in
one pass in event id order (the per-chain state is eight entries).

The native capture (issue 13, part 7). The plpgsql path above costs about 0.9 ms of
server time per two-statement transaction, spread over five plpgsql calls; the
1-client target leaves about 0.1 ms. So where the server loads the C library
pgext/sovren_audit (revision 5e1c0a7b9d21 tries it in a savepoint; setting
``[tool.sovren-db.audit] capture = "auto" | "native" | "plpgsql"``, module
src/sovren_db/postgres/audit_capture.py), ``sovren_audit_stage`` is its C function:

1. the same statement triggers and transition tables call it; it builds exactly
   the plpgsql events (same jsonb keys and values, sorted column names, the
   query's shape from ``sovren_audit_shape``, called once per distinct statement
   text and remembered) and keeps them in the backend's memory, in a tuplestore
   that spills to a temporary file past work_mem (a million-row COPY is fine);
   a subtransaction that rolls back drops its events (they are the tail
   recorded since it began); PREPARE TRANSACTION with events pending is refused;
2. an XACT_EVENT_PRE_COMMIT callback chains them: a free head row, as above,
   payload = the event plus v, at, actor, chain and prev_hash as jsonb text, hash =
   sha256(payload || event_id) with Postgres's own sha256, as the function's owner,
   and writes the rows below the executor (``write_rows``): the partition for the
   commit's created_at found in the relcache's partition descriptor, the
   partition's NOT NULL and CHECK constraints evaluated by ``ExecConstraints``
   with the CHECK expressions compiled once per relcache version (kept across
   transactions, dropped by a relcache or pg_proc invalidation), heap rows by
   ``table_multi_insert`` and index entries by ``ExecInsertIndexTuples``, then one
   saved UPDATE moves the chain's head. Whatever would need the executor (an INSERT
   trigger or foreign key on audit_log or the partition, row security that applies
   to the owner, no partition for created_at, a column beyond the declared ones)
   sends the commit through the former saved plan instead (INSERT ... SELECT FROM
   unnest of arrays per 10,000 events, moving the head in the same statement), so
   it happens exactly as before; the C file lists each executor step and what
   replaces it. A pre-commit callback rather than a deferred trigger: it runs after
   every deferred trigger (whose audited writes are chained too) and needs no row
   queued to fire it.

Payload text, hash formula, audit_log's CHECK, ``audit verify``, ``audit seal``
and G.2/G.4 are the same on both paths; ``check`` accepts either function
(``Function.native``). audit_pending and the flush trigger stay for the plpgsql path.

Measured (``bench/audit_write.py``: both paths and unaudited alternating in one
run, best of 2 x 15 s each, 2 cores shared with two other engineers' work, fsync
off), four runs at load average 3.4-5.1 (runs 1-3) and 1.7-3.0 (run 4), native
(plpgsql) against unaudited: tps ratio at 8 clients 0.42, 0.31, 0.37, 0.41 (0.18-0.19),
p99 12.8, 16.3, 12.6, 10.4 ms (plpgsql 17.5-23.2 ms, unaudited 5.4-8.1 ms); at 1
client 0.45, 0.46, 0.62, 0.42 (0.12-0.14); COPY of 100,000 users 0.35, 0.31, 0.21,
0.22 (0.13-0.21). The chain split (revision 7c3e9a41f0b2), measured before and after it
back to back on a quiet moment of the machine (load average 0.8-1.7), native against
unaudited: 8 clients 3,866 tps, ratio 0.39, p99 4.82 ms before; 4,656 tps, ratio 0.49,
p99 3.41 ms after (unaudited p99 1.6 ms): the convoy is gone and the p99 target is met.
1 client 0.69 before, 0.66 after (a single committer never waited; the head is now
chosen by a sort of eight rows); COPY 0.22 and 0.25. A first pair at load average
2.8-6.9 gave 8 clients p99 12.0 ms before and 8.7 ms after. Where the time went
before the rows were written below the executor (perf on a backend committing
two-row transactions in a loop, share of all its samples): the pre-commit callback
49 %, of which the chain's one INSERT 39 %: its CHECK audit_log_columns_match 20 %
(its stored text read back and compiled for every execution, stringToNode and
ExecPrepareExpr, 11.5 %; the payload parsed again as jsonb), executor start-up
10 %, the index inserts 8 %; capture itself 3.4 % (in a 100,000-row COPY: the
callback 61 %, the CHECK 18 %, capture 7 %). At 8 clients the one head row's lock,
held from the INSERT to the end of the commit, serialised the commits, and on two
cores a waiter that is woken waits for a CPU: a convoy, which is what p99 showed;
the chain split removes it.

With the rows written below the executor (measured on one chain, before the split;
same bench, 15 s x 2, native against unaudited in the same run; two runs of each,
the machine shared, so noisy): before, load average 0.2 rising to 6.7 and 2.1-4.8:
8 clients 0.43, 0.29 (p99 5.7, 14.1 ms), 1 client 0.49, 0.49, COPY 0.85 (its
unaudited side slowed by the load rising: 29,900 rows/s), 0.19; after, load average
1.7-2.9 and 4.1-5.1: 8 clients 0.48, 0.43 (p99 7.9, 11.0 ms), 1 client 0.55, 0.62,
COPY 0.22, 0.39. Where a 100,000-row COPY's backend spends its time now (perf,
share of all samples, the COPY's own work included): the pre-commit callback 58 %,
of which writing the rows 39 %: the CHECK's evaluation 20 % (jsonb_in of every
payload 8.5 %, jsonb_build_object and its key sort the rest), heap inserts 9 %,
audit_log's two index inserts about 9 %; payloads and hashes most of the rest. The
declared CHECK was then the largest cost left.

A CHECK that never parses the payload (revision 3f6b2d8e4a19, compliance/audit_format.py
says how and why it is as strict): formats 2 and 3 are compared as text, the columns'
JSON as the payload's prefix before "details" and its suffix after it, as UTF-8 bytes.
Evaluated over 100,000 rows on one server (a quiet moment, load average about 1.3):
3.4 us a row against 6.4 us for the jsonb text (of which jsonb_in 3.3 us); the
rendering of the columns (to_json) is most of what is left. perf on the backend of a
100,000-row COPY into users (native capture), the two texts swapped in turn on one
database at load average 2.7-3.0: ExecConstraints (audit_log's CHECK and users' own)
19.2 % of the samples with the jsonb text (jsonb_in 8.4 %, jsonb_build_object 8.2 %),
11.1 % and 13.5 % with the new one (to_json 5.2-5.7 %, convert_to 1.6-1.9 %, the
byte search 0.7-0.9 %). For a two-row pgbench transaction the CHECK is about 1 % of
its time: the pgbench ratios are not expected to move. The bench (15 s x 2, native
against unaudited, this branch and the code before it back to back; the machine
shared with two other sessions' tests and benchmarks, so noisy): at load
average 2.9-7.4, this branch (the code before): 8 clients 0.63 (0.41), p99 7.3 ms
(9.1 ms), 1 client 0.56 (0.56), COPY 0.24 (0.21); at load average 1.3-6.5: 8 clients
0.52 (0.61), p99 7.4 ms (8.0 ms), 1 client 0.62 (0.45), COPY 0.47 (0.27), the 0.47 an
artefact of its unaudited side slowed to 44,700 rows/s. The run-to-run spread is larger
than the CHECK's share. A first pair on a quieter machine (load average 1.0-1.8), with a
first form of this text that cost 9.6 us a row (text functions, which count characters),
gave 8 clients 0.57 (0.58), p99 3.1 ms (3.1 ms), 1 client 0.71 (0.70), COPY 0.22 (0.24).
bench/audit_verify.py builds its 2,000,000 events by a COPY into audit_log (no trigger:
the CHECK, the heap and two indexes): 47,700 rows/s against 42,100 with the jsonb text
(load average 2-4); its verification ran at 190,000 events/s, 232,000 with the code
before (the walk does not evaluate a CHECK it trusts: the difference is the load; part
8 holds).
Still missed: COPY at 0.5, which the CHECK alone cannot reach (capture, payloads,
hashes and the heap and index inserts of the events are the rest of the callback).

Where that leaves the COPY (measured once bench/audit_write.py started every COPY
from the same table: 1,000 seeded users and a CHECKPOINT; before, each copied into
the table the runs before it grew, the unaudited side first, into 1,000 rows, the
audited side into 101,000 or more): an unaudited COPY of 100,000 users costs about
7-9 us a row (a heap row and three index entries, two of them text).

Two changes since (pgext/sovren_audit): a commit of 1,000 events or more writes the
entries of audit_log's plain b-trees sorted (keep_back_indexes: the user index is
keyed by a random UUID, and 100,000 entries each descending to a leaf of its own cost
about a quarter of the commit), and the part of every payload that is the commit's
own (created_at, actor, chain) is rendered once, with one sha256 context. Ratio
0.30 -> 0.39-0.41, the commit of 100,000 events 1.68 s -> 1.24-1.35 s.

Why one row per event could not reach 0.5 on a bulk COPY. perf of the audited
100,000-row COPY's backend with one event per row (share of its samples, quiet
machine, ratio 0.41 in that run): the COPY's own work 36 %; capture (the transition
table and the stage function) 6 %; audit_log's CHECK, evaluated for every event row,
17.5 %; the event rows themselves (heap and index inserts, their WAL) 14 %;
payloads, hashes and the rest 12 %. The ratio is 36 / (36 + the audit's share): 0.5
needs the audit to cost no more than the COPY, and one audit_log row per copied row
(wider than it: the payload repeats every column, plus a CHECK, two index entries and
a hash) costs more than the copied row. Dropping the CHECK (for the measurement)
gave 0.45-0.49; a cheaper CHECK was estimated at 0.47.

Bulk events (revision a4d8c1e6f2b3). So a bulk statement, an INSERT, COPY or DELETE
of BULK_ROWS (1,000) rows or more, is recorded as one event per 1,000 of its rows, in
the statement's order, instead of one per row: the "sealing batches" of issue 13's
part 7, with the batch an ordinary chained event. A bulk event has the columns a row
event of the statement would have (table, action, accessed_at, query, actor) and
details {"changed": [every column], "rows": [{"key": .., "user_id": ..}, ..]}, each
element what that row's own event would have said; its user_id is the rows' subject
when they all share one, else NULL. What holds, unchanged:
  - every row of the statement is named (key and subject) in a hashed payload: a
    row dropped, added or edited inside a bulk event breaks its hash (part 2, G.2);
  - the CHECK covers the event's columns as for any event, the payload is format 3
    (details is free JSON to the CHECK and to ``audit verify``), and ids, chains,
    checkpoints and verification see one event like any other;
  - no value is stored (part 5): keys, subjects and column names, as before.
What it gives up, and why that is acceptable:
  - a bulk event of several subjects has user_id NULL: row security (part 6) shows it
    to the auditor and to no application role ("at most its own tenant's events"
    holds; a tenant's own bulk load, one subject, keeps its user_id and stays
    visible to it), and ``WHERE user_id = ..`` does not find a subject's rows in it.
    A subject's events, bulk ones included (the query of HIPAA access tracking, G.4,
    by subject; ``audit_log`` has no index on the payload, so it reads the bulk
    events, which are few):

        SELECT event_id, accessed_at, query FROM audit_log
         WHERE user_id = $1 OR (user_id IS NULL AND event_payload::jsonb -> 'details' -> 'rows'
               @> jsonb_build_array(jsonb_build_object('user_id', $1::text)));

  - UPDATE stays one event per row: its changed columns differ from row to row,
    and an UPDATE changing a row's key is two events for that row; the target is
    the bulk load. A large UPDATE costs what it cost before.
  - the threshold is a count of one statement's rows: 999 rows are 999 events, 1,000
    one. 1,000 keeps a bulk event's payload about 100 kB (TOASTed) and the
    2-row transactions of the application as they were.
Both paths build the same events (test_audit_bulk.py compares their bytes): the
plpgsql body counts the transition table and aggregates 1,000 rows per event; the C
function (``sovren_audit_stage_bulk``, the link the revision installs; the library's
``sovren_audit_stage`` keeps one event per row for the revisions before) builds the
details while it reads the transition table. Measured (bench/audit_write.py, native
against unaudited in the same run): the 100,000-row COPY at 0.86 on a quiet machine,
0.78 and 0.92 at load average 1-3.5 (0.37-0.40 before; main before the change gave
0.30 in the same loaded hour); the plpgsql path's COPY 0.37-0.42 (0.13 before).

The heads are locked and moved below the executor since the fix for the snapshot
isolation levels (pgext/sovren_audit: lock_head, update_head, which say why): perf
of a one-client two-row pgbench backend, the pre-commit callback fell from 28.5 %
to 21.2 % of its samples (the two SPI statements on the heads had been 13.4 %).

What an event says. INSERT, UPDATE and DELETE: one event per row, details {"key": the row's primary
key, "changed": the columns written (all of them for an insert or a delete)}, user_id the row's
subject. TRUNCATE (revision 8b4f1d6c2e90; before it a TRUNCATE left nothing, and an auditor could
not tell the rows went): AFTER TRUNCATE statement triggers ``{table}_audit_truncate`` call the same
``sovren_audit_stage``, which writes one event per table truncated, directly or by CASCADE, in the
truncating transaction's commit: action TRUNCATE, user_id NULL, the statement's shape as query, and
details {"key": null, "changed": [every column, sorted]}: a delete of every row, told without any
row's data (no key, no subject; counting the rows would need a scan the TRUNCATE avoids). The
payload is format 3 as for any event (details is free JSON to the CHECK and to ``audit verify``).
operations is partitioned: Postgres truncates each of its partitions with it and a partition may be
truncated alone, so each partition has the trigger too (given by the revision, by
ensure_partitions to every partition it creates later and by the guard to one made by hand) and is an event of its own, named by the
partition: ``TRUNCATE users CASCADE`` gives users, payments, operations and one event per partition
of operations. The application roles hold no TRUNCATE grant: only the owner or a superuser
truncates; a superuser's session_replication_role = replica skips these triggers as it skips the
row triggers.

DML naming a partition (revision e7a2c9d4b61f; before it ``INSERT INTO operations_p2026_12 ...``,
an UPDATE or DELETE of it, left nothing): a statement trigger fires only for statements naming its
table, and Postgres neither clones statement triggers onto partitions nor fires the parent's for a
statement naming a partition. So every partition of operations carries ``operations_audit_insert``,
``_update`` and ``_delete`` with the parent's transition tables (Postgres 15 allows them on a
partition's statement triggers; only row triggers may not have them), given by the revision to the
partitions present, by ensure_partitions (postgres/sql.py: it copies the parent's statement
triggers) to those it makes later, and by the guard to those made by hand (below). No double counting: a statement on the parent fires the parent's
statement triggers only, never a partition's. As for TRUNCATE, only the owner or a superuser writes a
partition by name (the application roles hold no grant on partitions). Such an event names the root
of the partition tree, ``operations`` (pg_partition_root on the plpgsql path, get_partition_ancestors
in the C function), and is then byte for byte the event the same statement on the parent writes,
but for the statement's shape, which names the partition: the row belongs to operations whichever
name reached it (its key is operations' key), G.4's queries and an auditor's look for
``table_name = 'operations'``, and the partition a row lives in is a storage detail that changes
with its executed_at. A TRUNCATE names what it emptied instead: it carries no key, the partition is
all it says, and truncating the parent already gives an event named operations.

Partitions made by hand (revision f3b9d2a7c5e1; before it ``CREATE TABLE x PARTITION OF operations``
or ``ALTER TABLE operations ATTACH PARTITION x`` gave x none of the four triggers, and DML or TRUNCATE
naming x left nothing): the audit guard's event trigger calls ``sovren_audit_cover_partitions`` at the
end of a CREATE TABLE, ALTER TABLE or CREATE SCHEMA whose objects include a partition or a partitioned
table (revision b9e5d3f7a2c4: called after every command, the walk made a migration of 300 unrelated
ALTER TABLEs 4.1x as long with operations at 65 partitions; now 1.1x), which gives every partition of an
audited table, at any depth, the root's audit triggers it lacks (by name, as ensure_partitions; see
cover_partitions below).
Event triggers need a superuser: where the guard is off or was never installed, ``check`` reports such
a partition (``partition-trigger-missing``, src/sovren_db/postgres/checks.py) and the owner's
``SELECT sovren_audit_cover_partitions()`` gives the triggers back.

Only these triggers append: every function here is owner-only (EXECUTE revoked
from PUBLIC); the trigger functions cannot be called at all, and audit_pending
is granted to no role. ``sovren_audit_append`` (owner-only) records an event of
the owner's own; ``sovren_audit_erasure``, granted to sovren_migrator, records
nothing but an ERASE event without a subject (``sovren-db erase``).

The query column keeps a statement's shape, not its values (``sovren_audit_shape``:
string, dollar-quoted and numeric literals become ``?``, comments are dropped), so
G.4's ``query LIKE '%medical%'`` still finds statements by table and column names.
"""

from sovren_db.compliance.audit_format import CHAINS
from sovren_db.postgres import Function, Grant, Policy, Role, Trigger
from sovren_db.postgres.audit_capture import NATIVE_AS  # the C function that may stand in for the stage

AUDITED = ("users", "operations", "payments")

AUDITOR = "sovren_auditor"
OWNER_ONLY: tuple[str, ...] = ()


def _definer(**declared) -> Function:
    """A function running as its owner (the schema's owner), callable by the owner only unless told."""
    return Function(**{"security_definer": True, "search_path": "public, pg_temp", "callers": OWNER_ONLY,
                       **declared})

# Postgres has no SQL-callable normaliser (pg_stat_statements' lexer is internal). The fast
# path is one regexp_replace of string and numeric literals (a number is kept when it ends a
# word: p2026_12, $1); its result is kept unless it still holds a double quote, a comment or a
# dollar quote, whose contents only a left-to-right scan tells apart: then one regular
# expression splits the text into identifiers and parameters (kept), literals (replaced),
# comments (dropped) and the rest (kept), the longest alternative winning at each place.
shape_query = Function(
    name="sovren_audit_shape",
    args="p_query text",
    returns="text",
    callers=OWNER_ONLY,
    body=r"""
DECLARE
    v_shape text := regexp_replace(p_query,
        '([^A-Za-z_0-9$.])(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?'
        || '|[Ee]''(?:[^''\\]|\\.|'''')*''|''(?:[^'']|'''')*''', '\1?', 'g');
BEGIN
    IF strpos(v_shape, '"') + strpos(v_shape, '--') + strpos(v_shape, '/*') + strpos(v_shape, '$$') = 0
       AND v_shape !~ '\$[A-Za-z_][A-Za-z_0-9]*\$' THEN
        RETURN v_shape;
    END IF;
    RETURN (SELECT string_agg(CASE WHEN m[1] IS NOT NULL THEN m[1]
                                   WHEN m[2] IS NOT NULL THEN '?'
                                   WHEN m[4] IS NOT NULL THEN ' '
                                   ELSE m[5] END, '' ORDER BY n)
              FROM regexp_matches(p_query,
                   '("(?:[^"]|"")*"|\$[0-9]+|[A-Za-z_][A-Za-z_0-9]*)'
                || '|([Ee]''(?:[^''\\]|\\.|'''')*''|''(?:[^'']|'''')*''|\$([A-Za-z_0-9]*)\$.*?\$\3\$'
                || '|[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)'
                || '|(--[^\n]*|/\*[^*]*\*+(?:[^/*][^*]*\*+)*/)'
                || '|([^"''$A-Za-z_0-9.\-/]+|.)', 'g') WITH ORDINALITY AS t(m, n));
END
""",
)

# Numbers, hashes and appends staged events (a jsonb array, in order) on one of the CHAINS chains,
# under its head row's lock: the first head no other transaction holds (FOR UPDATE SKIP LOCKED),
# tried from this backend's own (pid % CHAINS + 1); only when all are held does it wait for its own.
# At REPEATABLE READ and SERIALIZABLE the heads are read in the transaction's snapshot: it takes the
# first head that neither moved since the transaction began nor is held, and fails the commit as a
# serialization failure when there is none (revision c4e8f1a2b3d5; the native capture has no such limit).
# A transaction that appends twice (a bulk load: several calls) stays on the chain it took first.
chain_events = _definer(
    name="sovren_audit_chain",
    args="p_events jsonb",
    returns="bigint",
    body=f"""
DECLARE
    v_want int := pg_backend_pid() % {CHAINS} + 1;
    v_held text := current_setting('sovren_audit.chain', true);
    v_chain int;
    v_first bigint;
    v_id bigint;
    v_head text;
    v_prev text;
    v_at timestamptz;
    v_payloads text[] := '{{}}';
    v_hashes text[] := '{{}}';
    v_event jsonb;
    v_payload text;
    v_try int;
BEGIN
    IF v_held ~ '^[1-{CHAINS}]$' THEN
        v_want := v_held::int;
    END IF;
    IF current_setting('transaction_isolation') = 'read committed' THEN
        SELECT chain, next_id, hash INTO v_chain, v_first, v_head FROM audit_chain_head
         ORDER BY (chain - v_want + {CHAINS}) % {CHAINS} LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            SELECT chain, next_id, hash INTO v_chain, v_first, v_head FROM audit_chain_head WHERE chain = v_want FOR UPDATE;
        END IF;
    ELSE
        -- REPEATABLE READ and SERIALIZABLE read the heads in the transaction's snapshot: a head moved
        -- since it began cannot be locked, and one held now is about to move. The first that can be,
        -- from v_want; none: the commit fails as a serialization failure, which the application retries.
        FOR v_try IN 0..{CHAINS - 1} LOOP
            BEGIN
                SELECT chain, next_id, hash INTO v_chain, v_first, v_head FROM audit_chain_head
                 WHERE chain = (v_want - 1 + v_try) % {CHAINS} + 1 FOR UPDATE NOWAIT;
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
    PERFORM set_config('sovren_audit.chain', v_chain::text, true);
    v_id := v_first - {CHAINS};
    v_prev := v_head;
    v_at := clock_timestamp();  -- read under the lock: created_at grows with event_id in a chain
    FOR v_event IN SELECT e FROM jsonb_array_elements(p_events) AS e LOOP
        v_id := v_id + {CHAINS};
        v_payload := (v_event || jsonb_build_object('v', 3, 'at', v_at AT TIME ZONE 'UTC', 'actor', session_user,
                                                    'chain', v_chain, 'prev_hash', COALESCE(v_prev, '')))::text;
        v_prev := encode(digest(v_payload || v_id::text, 'sha256'), 'hex');
        v_payloads := v_payloads || v_payload;
        v_hashes := v_hashes || v_prev;
    END LOOP;
    WITH appended AS (
        INSERT INTO audit_log (event_id, created_at, table_name, action, user_id, actor, accessed_at, query,
                               event_payload, prev_hash, hash)
        SELECT v_first + (n - 1) * {CHAINS}, v_at, e ->> 'table', e ->> 'action', (e ->> 'user_id')::uuid, session_user,
               ((e ->> 'accessed_at')::timestamp AT TIME ZONE 'UTC'), e ->> 'query', payload,
               CASE WHEN n = 1 THEN v_head ELSE lag(hash) OVER (ORDER BY n) END, hash
          -- in step, not p_events -> i: each -> would read the whole (TOASTed) array again
          FROM ROWS FROM (jsonb_array_elements(p_events), unnest(v_payloads), unnest(v_hashes))
               WITH ORDINALITY AS u(e, payload, hash, n))
    UPDATE audit_chain_head SET next_id = v_id + {CHAINS}, hash = v_prev WHERE chain = v_chain;
    RETURN v_id;
END
""",
)

append_event = _definer(
    name="sovren_audit_append",
    args="p_table text, p_action text, p_user uuid, p_details jsonb",
    returns="bigint",
    body="""
BEGIN
    RETURN sovren_audit_chain(jsonb_build_array(jsonb_build_object(
        'table', p_table, 'action', p_action, 'user_id', p_user,
        'accessed_at', clock_timestamp() AT TIME ZONE 'UTC', 'query', sovren_audit_shape(current_query()),
        'details', COALESCE(p_details, '{}'::jsonb))));
END
""",
)

# The one event a role other than the owner may append: an erasure (`sovren-db erase`, run by
# a member of sovren_migrator), recorded with no subject, its details holding a salted hash.
erasure_event = _definer(
    name="sovren_audit_erasure",
    args="p_table text, p_details jsonb",
    returns="bigint",
    callers=("sovren_migrator",),
    body="""
BEGIN
    RETURN sovren_audit_append(p_table, 'ERASE', NULL, p_details);
END
""",
)

# The primary key's columns (events name a row by its key) and all columns sorted (an insert or a
# delete changes them all), read from the catalog by the statement that builds the events.
_COLUMNS = """(SELECT COALESCE(array_agg(a.attname::text) FILTER (WHERE NOT a.attnum = ANY (i.indkey)), '{}')
                   AS other, jsonb_agg(a.attname::text ORDER BY a.attname::text) AS cols
              FROM pg_attribute a JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary
             WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped) AS c"""
_EVENT = """jsonb_build_object('table', v_table, 'action', TG_OP, 'accessed_at', v_at, 'query', v_query,
                   'user_id', {row} -> 'user_id',
                   'details', jsonb_build_object('key', {row} - c.other, 'changed', {changed}))"""
# The table a row event names (revision e7a2c9d4b61f): the root of the partition tree when the trigger is a
# partition's (a statement naming operations_p2026_12 writes rows of operations), else the table itself.
# pg_partition_root is NULL for a table outside any partition tree and the table itself for the root, so
# users, payments and operations' own triggers read no catalog row (a simple expression, no query).
_TABLE = "v_table name := TG_TABLE_NAME;"
_ROOT = """IF pg_partition_root(TG_RELID) <> TG_RELID THEN
        SELECT c.relname INTO v_table FROM pg_class c WHERE c.oid = pg_partition_root(TG_RELID);
    END IF;"""
# A statement's events are staged in chunks of STAGE_CHUNK (in order): a jsonb value holds at most
# 256 MB, which a single COPY of about a million rows would pass as one array.
STAGE_CHUNK = 10_000
FLUSH_CHUNKS = 10
_STAGE = "INSERT INTO audit_pending (xact, events) SELECT txid_current(), jsonb_agg({event})"
_CHUNKED = "GROUP BY s.chunk ORDER BY s.chunk"
_NUMBERED = f"(row_number() OVER () - 1) / {STAGE_CHUNK} AS chunk"
_ALL_CHANGED = _EVENT.format(row="j", changed="c.cols")
# A TRUNCATE (revision 8b4f1d6c2e90) has no transition table and no row: one event for the table, its
# details {"key": null, "changed": [every column]} (a DELETE of every row, no one row's key).
_TRUNCATED = """jsonb_build_array(jsonb_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'accessed_at', v_at,
                   'query', v_query, 'user_id', NULL,
                   'details', jsonb_build_object('key', NULL, 'changed', (
                       SELECT jsonb_agg(attname::text ORDER BY attname::text) FROM pg_attribute
                        WHERE attrelid = TG_RELID AND attnum > 0 AND NOT attisdropped))))"""
# A bulk statement (an INSERT, COPY or DELETE of BULK_ROWS rows or more, revision a4d8c1e6f2b3): one event per
# BULK_ROWS rows in order, details {"changed": [every column], "rows": [{"key", "user_id"} per row]}, its user_id
# the rows' subject when they share one; staged BULK_STAGED events to a row of audit_pending.
BULK_ROWS = 1000
BULK_STAGED = 10
_BULK = """IF (SELECT count(*) FROM {rows}) >= {bulk_rows} THEN
            INSERT INTO audit_pending (xact, events) SELECT txid_current(), jsonb_agg(b.event ORDER BY b.bulk)
              FROM (SELECT s.n / {bulk_rows} AS bulk, jsonb_build_object('table', v_table, 'action', TG_OP,
                           'accessed_at', v_at, 'query', v_query,
                           'user_id', CASE WHEN count(DISTINCT s.j -> 'user_id') = 1 AND count(s.j -> 'user_id') = count(*)
                                           THEN (array_agg(s.j -> 'user_id'))[1] END,
                           'details', jsonb_build_object('changed', c.cols, 'rows',
                               jsonb_agg(jsonb_build_object('key', s.j - c.other, 'user_id', s.j -> 'user_id') ORDER BY s.n)))
                           AS event
                      FROM (SELECT to_jsonb(r) AS j, row_number() OVER () - 1 AS n FROM {rows} r) AS s, {columns}
                     GROUP BY s.n / {bulk_rows}, c.cols) AS b
             GROUP BY b.bulk / {staged} ORDER BY b.bulk / {staged};
        ELSE
            {stage}
              FROM (SELECT to_jsonb(r) AS j, {numbered} FROM {rows} r) AS s, {columns}
            {chunked};
        END IF;"""


def _bulk_or_rows(rows: str) -> str:
    return _BULK.format(rows=rows, bulk_rows=BULK_ROWS, staged=BULK_STAGED, columns=_COLUMNS,
                        stage=_STAGE.format(event=_ALL_CHANGED), numbered=_NUMBERED, chunked=_CHUNKED)


_UPDATED = _EVENT.format(row="COALESCE(s.nj, s.oj)", changed="""CASE WHEN s.nj IS NULL OR s.oj IS NULL THEN c.cols ELSE
                       (SELECT COALESCE(jsonb_agg(k ORDER BY k), '[]') FROM jsonb_object_keys(s.nj) AS k
                         WHERE s.nj -> k IS DISTINCT FROM s.oj -> k) END""")

# One call per statement: every row of the transition table(s) becomes an event describing the
# key, the subject and which columns changed, never their values, staged by one INSERT. An
# UPDATE pairs old and new rows by primary key; a row whose key changed is recorded under each
# of its two keys.
stage_statement = _definer(
    name="sovren_audit_stage",
    args="",
    returns="trigger",
    native=NATIVE_AS,
    body=f"""
DECLARE
    v_query text := sovren_audit_shape(current_query());
    v_at timestamp := clock_timestamp() AT TIME ZONE 'UTC';
    {_TABLE}
BEGIN
    {_ROOT}
    IF TG_OP = 'INSERT' THEN
        {_bulk_or_rows('new_rows')}
    ELSIF TG_OP = 'DELETE' THEN
        {_bulk_or_rows('old_rows')}
    ELSIF TG_OP = 'TRUNCATE' THEN
        INSERT INTO audit_pending (xact, events) VALUES (txid_current(), {_TRUNCATED});
    ELSE
        {_STAGE.format(event=_UPDATED)}
          FROM {_COLUMNS} CROSS JOIN LATERAL (
               SELECT n.j AS nj, o.j AS oj, {_NUMBERED} FROM (SELECT to_jsonb(r) AS j FROM new_rows r) AS n
                 FULL JOIN (SELECT to_jsonb(r) AS j FROM old_rows r) AS o ON n.j - c.other = o.j - c.other) AS s
        {_CHUNKED};
    END IF;
    RETURN NULL;
END
""",
)

# At commit: everything this transaction staged, in order, chained in one call (in calls of at
# most FLUSH_CHUNKS staged chunks for a bulk load, so no jsonb passes its 256 MB). A transaction's
# own rows are found through the index on xact: the rows deleted by earlier commits are never read.
flush_staged = _definer(
    name="sovren_audit_flush",
    args="",
    returns="trigger",
    body=f"""
DECLARE
    v_events jsonb;
    v_staged int;
BEGIN
    LOOP  -- at most FLUSH_CHUNKS staged chunks per chain call; one pass for an ordinary transaction
        WITH staged AS (DELETE FROM audit_pending WHERE seq IN (
                            SELECT seq FROM audit_pending WHERE xact = txid_current() ORDER BY seq LIMIT {FLUSH_CHUNKS})
                        RETURNING seq, events)
        SELECT jsonb_agg(x.e ORDER BY s.seq, x.n), count(DISTINCT s.seq) INTO v_events, v_staged
          FROM staged AS s CROSS JOIN LATERAL jsonb_array_elements(s.events) WITH ORDINALITY AS x(e, n);
        IF v_events IS NOT NULL THEN  -- NULL in the later firings of the same commit: the first took everything
            PERFORM sovren_audit_chain(v_events);
        END IF;
        EXIT WHEN v_staged < {FLUSH_CHUNKS};
    END LOOP;
    RETURN NULL;
END
""",
)

reject_change = Function(
    name="sovren_audit_immutable",
    args="",
    returns="trigger",
    callers=OWNER_ONLY,
    body="""
BEGIN
    RAISE EXCEPTION 'audit_log is immutable: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
""",
)

# Every partition of an audited partitioned table (operations), at any depth, given the audit triggers of the root
# it lacks (revision f3b9d2a7c5e1): Postgres never clones statement triggers onto a partition, and a statement naming
# a partition fires only the partition's own, so a partition made by hand (CREATE TABLE ... PARTITION OF, ATTACH
# PARTITION) left DML and TRUNCATE naming it without events. Called by the guard at the end of a command whose objects
# include a partition or a partitioned table (a superuser's CREATE TABLE, ALTER TABLE or CREATE SCHEMA, which is where a
# partition appears; after every command it saw before revision b9e5d3f7a2c4) and once by the revisions (partitions
# made by hand before them). The same definitions as ensure_partitions copies (postgres/sql.py), by the same names, so
# whichever of the two runs second finds each trigger there and creates nothing: ensure_partitions' own CREATE TABLE
# fires the guard first. A trigger is present when one calls the stage function at the same timing and events,
# whatever its name (one renamed on the partition): a second one would write every event twice.
# It must also fire as the root's does: no WHEN condition (an attached table's WHEN (false) copy, calling the stage
# function for INSERT, counted present and its INSERTs left no event), the same UPDATE OF columns (none) and
# transition tables.
# The roots are found by their statement triggers calling sovren_audit_stage, not by a list of table names, so a
# table audited later is covered as it is; pg_partition_tree reaches the partitions of a sub-partitioned one (a
# statement naming a middle level fires its own statement triggers, so it needs them too). Written as a function of
# its own, not in the guard's body, so the revision can call it where no event trigger exists (the guard needs a
# superuser) and so the guard's body stays the previous one plus one line. Until revision b9e5d3f7a2c4 a trigger of
# the root trigger's name counted as present whatever it called: a table attached with its own operations_audit_insert
# kept it and statements naming the partition left no event. Now the real one comes beside it (named with the suffix
# _sovren, the name being taken; both taken: a warning, no trigger) and `check` names the partition for the impostor.
# Refusing such a partition instead would have made every later partition command fail while one stood (`sovren-db
# partitions` included), as an error creating a trigger would: hence the warning.
cover_partitions = _definer(
    name="sovren_audit_cover_partitions",
    args="",
    returns="void",
    body="""
DECLARE
    v_missing record;
BEGIN
    FOR v_missing IN
        SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_trigger n WHERE n.tgrelid = d.relid AND n.tgname = t.tgname)
                    THEN t.tgname || '_sovren' ELSE t.tgname END AS tgname, d.relid::regclass AS partition,
               concat_ws(' OR ', CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' END, CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' END,
                         CASE WHEN t.tgtype & 8 <> 0 THEN 'DELETE' END, CASE WHEN t.tgtype & 32 <> 0 THEN 'TRUNCATE' END) AS events,
               COALESCE(' REFERENCING ' || NULLIF(concat_ws(' ', 'OLD TABLE AS ' || quote_ident(t.tgoldtable),
                                                            'NEW TABLE AS ' || quote_ident(t.tgnewtable)), ''), '') AS referencing
          FROM pg_trigger t JOIN pg_class r ON r.oid = t.tgrelid CROSS JOIN LATERAL pg_partition_tree(r.oid) AS d
         WHERE t.tgfoid = to_regprocedure('sovren_audit_stage()') AND t.tgtype & 3 = 0   -- AFTER, FOR EACH STATEMENT
           AND r.relkind = 'p' AND NOT r.relispartition AND d.level > 0
           AND NOT EXISTS (SELECT 1 FROM pg_trigger x WHERE x.tgrelid = d.relid
                           AND x.tgfoid = t.tgfoid AND x.tgtype = t.tgtype AND x.tgqual IS NULL AND x.tgattr = t.tgattr
                           AND (x.tgoldtable IS NULL) = (t.tgoldtable IS NULL) AND (x.tgnewtable IS NULL) = (t.tgnewtable IS NULL))
         ORDER BY d.level, d.relid, t.tgname
    LOOP
        BEGIN
            EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s%s FOR EACH STATEMENT EXECUTE FUNCTION sovren_audit_stage()',
                           v_missing.tgname, v_missing.events, v_missing.partition, v_missing.referencing);
        EXCEPTION WHEN duplicate_object THEN
            RAISE WARNING 'partition % has no audit trigger for %: its names are taken by other triggers (check names it)',
                v_missing.partition, v_missing.events;
        END;
    END LOOP;
END
""",
)

# Event trigger function (created by the revision where the migrating role is a superuser):
# DROP or DETACH of audit_log or any of its partitions, dropping, disabling or renaming its guard
# triggers and dropping or renaming its CHECK constraint are refused; a partition attached or created
# by hand gets the TRUNCATE guard, and one of an audited table its audit triggers (sovren_audit_cover_partitions,
# revision f3b9d2a7c5e1; only after a command whose objects include a partition or a partitioned table since
# b9e5d3f7a2c4). Two event triggers run it: sovren_audit_guard_drop ON sql_drop and
# sovren_audit_guard_alter ON ddl_command_end WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE', 'ALTER TRIGGER',
# 'CREATE SCHEMA') (their tags are the revisions' business: d2645c4dc20c, then a5d3c8e1f2b7 added 'ALTER TRIGGER',
# c7e2a9f4b1d6 'CREATE SCHEMA': a partition made by a CREATE TABLE inside CREATE SCHEMA is covered at once).
#
# Renames (revision a5d3c8e1f2b7): a CHECK or trigger renamed could be dropped or disabled under its
# new name. Rather than read the command (RENAME CONSTRAINT is tagged ALTER TABLE, RENAME of a trigger
# ALTER TRIGGER; PG 15 has no command tagged ALTER CONSTRAINT for tables), the guard checks what stands
# at the end of every command it sees: audit_log under its name, its CHECK and both its triggers under
# theirs. A drop is refused earlier (sql_drop), so one missing here was renamed, or dropped with the drop
# guard alone turned off: a revision that must swap the CHECK turns off both event triggers for its
# transaction. A partition's audit_log_no_truncate is checked where a trigger of that partition was
# altered (ALTER TRIGGER): elsewhere a partition without it is a new one, which the loop at the end
# guards. The clones of audit_log_immutable on partitions cannot be renamed (Postgres refuses), and
# renaming it on audit_log renames them all. A trigger enabled for replicas only (ENABLE REPLICA
# TRIGGER) does not fire in ordinary sessions: that counts as disabling it.
guard_ddl = _definer(
    name="sovren_audit_guard_ddl",
    args="",
    returns="event_trigger",
    body="""
DECLARE
    v_name text;
    v_log regclass := to_regclass('audit_log');
BEGIN
    IF TG_EVENT = 'sql_drop' THEN
        SELECT object_identity INTO v_name FROM pg_event_trigger_dropped_objects()
         WHERE (object_type = 'trigger' AND object_identity ~ '^audit_log_(immutable|no_truncate) on [^.]+\\.audit_log')
            OR (object_type = 'table constraint' AND object_identity ~ '^audit_log_columns_match on [^.]+\\.audit_log')
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
    IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() d JOIN pg_class c ON c.oid = d.objid
                WHERE d.classid = 'pg_class'::regclass AND (c.relispartition OR c.relkind = 'p')) THEN
        PERFORM sovren_audit_cover_partitions();
    END IF;
END
""",
)

functions = [shape_query, chain_events, append_event, erasure_event, stage_statement, flush_staged, reject_change,
             cover_partitions, guard_ddl]

_TRANSITIONS = {"INSERT": "NEW TABLE AS new_rows", "UPDATE": "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                "DELETE": "OLD TABLE AS old_rows"}

# A TRUNCATE trigger on a partitioned table (operations) is given to each of its partitions too
# (sql.partition_truncate_trigger, ensure_partitions): Postgres truncates every partition of a
# truncated parent, and a partition may be truncated alone; each is an event of its own. The
# INSERT, UPDATE and DELETE triggers are on each partition too (revision e7a2c9d4b61f, ensure_partitions; the
# guard for partitions made by hand, revision f3b9d2a7c5e1), their events named by the parent; `check` compares the
# parent's triggers as declared, and names a partition lacking one of them (partition-trigger-missing).
triggers = [
    *[Trigger(f"{table}_audit_{event.lower()}", table, "sovren_audit_stage", events=(event,), level="STATEMENT",
              referencing=referencing)
      for table in AUDITED for event, referencing in _TRANSITIONS.items()],
    *[Trigger(f"{table}_audit_truncate", table, "sovren_audit_stage", events=("TRUNCATE",), level="STATEMENT")
      for table in AUDITED],
    Trigger("audit_pending_flush", "audit_pending", "sovren_audit_flush", events=("INSERT",), deferred=True),
    Trigger("audit_log_immutable", "audit_log", "sovren_audit_immutable", timing="BEFORE",
            events=("UPDATE", "DELETE")),
    Trigger("audit_log_no_truncate", "audit_log", "sovren_audit_immutable", timing="BEFORE",
            events=("TRUNCATE",), level="STATEMENT"),
    Trigger("audit_chain_head_no_truncate", "audit_chain_head", "sovren_audit_immutable", timing="BEFORE",
            events=("TRUNCATE",), level="STATEMENT"),
]

# Row security (issue 13.6): an application session sees its own tenant's events (the row security and
# tenant policy of audit_log are in security.py, with every tenant table's), an auditor all of them.
security = [
    Role(AUDITOR),
    Policy("audit_log_auditor_read", "audit_log", using="true", command="SELECT", roles=(AUDITOR,)),
    Grant(AUDITOR, "audit_log", ("SELECT",)),
]
