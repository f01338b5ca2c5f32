"""The two event formats of audit_log, and the SQL that ties a row's columns to its event_payload.

Every row satisfies G.2: ``hash = sha256(event_payload || event_id)``.

- Format 1 (revision b0423f0c320c): ``{"at", "table", "action", "details",
  "user_id", "prev_hash"}``; ``accessed_at`` equals ``created_at``; ``actor``
  and ``query`` are not in the payload (those rows' query text was reduced to
  its shape by the revision that introduced format 2).
- Format 2: ``{"v": 2, "at", "table", "action", "details", "user_id", "actor",
  "accessed_at", "query", "prev_hash"}``, times in UTC: every column of the row
  is either in the hash (event_id, event_payload) or a copy of a payload value.

- Format 3 (revision 7c3e9a41f0b2): format 2 plus ``"chain": k``, the number
  of the chain the event belongs to (1 to :data:`CHAINS`). The single chain of
  formats 1 and 2 forked at that revision into CHAINS chains: chain k's ids are
  the ids above the fork id F that are congruent to k modulo CHAINS (so each
  id is its chain's previous id plus CHAINS, and chain k's first id, the
  smallest such id above F, follows from F and k), and its first event's
  prev_hash is the hash of event F (the head at the fork).

``COLUMNS_MATCH`` is true when the row's columns are the ones its payload
holds. It is audit_log's CHECK constraint ``audit_log_columns_match`` (so an
edited column is refused even with the triggers disabled, and G.2's query keeps
meaning "no tampered row"), and ``audit verify`` evaluates the same text in its
own query rather than trusting the constraint. jsonb orders keys by length, so
``"v"`` comes first and a format-2 payload starts with ``{"v": 2, ``: the
format is told apart without parsing. Formats 2 and 3 have the same columns in
the payload; format 3's chain number is not a column, only hashed.
"""

V2_PREFIX = '{"v": 2, '
V3_PREFIX = '{"v": 3, '
CHAINS = 8  # the number of chains of format 3, fixed by revision 7c3e9a41f0b2 (postgres/audit.py says why)


def first_id(fork_id: int, chain: int) -> int:
    """The id of chain ``chain``'s first event after a fork at event ``fork_id`` (0 for an empty log)."""
    return fork_id + 1 + (chain - fork_id - 1) % CHAINS

COLUMNS_MATCH = """CASE WHEN left(event_payload, 9) IN ('{"v": 2, ', '{"v": 3, ')
    THEN event_payload::jsonb @> jsonb_build_object(
        'at', created_at AT TIME ZONE 'UTC', 'table', table_name, 'action', action, 'user_id', user_id,
        'actor', actor, 'accessed_at', accessed_at AT TIME ZONE 'UTC', 'query', query,
        'prev_hash', COALESCE(prev_hash, ''))
    ELSE event_payload::jsonb @> jsonb_build_object(
        'table', table_name, 'action', action, 'user_id', user_id, 'prev_hash', COALESCE(prev_hash, ''))
        AND accessed_at = created_at AND (event_payload::jsonb ->> 'at')::timestamptz = created_at
END"""
