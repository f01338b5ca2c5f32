"""The two event formats of audit_log, and the SQL that ties a row's columns to its event_payload.

Every row satisfies G.2: ``hash = sha256(event_payload || event_id)``.

- Format 1 (revision b0423f0c320c): ``{"at", "table", "action", "details",
  "user_id", "prev_hash"}``; ``accessed_at`` equals ``created_at``; ``actor``
  and ``query`` are not in the payload (those rows' query text was reduced to
  its shape by the revision that introduced format 2).
- Format 2: ``{"v": 2, "at", "table", "action", "details", "user_id", "actor",
  "accessed_at", "query", "prev_hash"}``, times in UTC: every column of the row
  is either in the hash (event_id, event_payload) or a copy of a payload value.

``COLUMNS_MATCH`` is true when the row's columns are the ones its payload
holds. It is audit_log's CHECK constraint ``audit_log_columns_match`` (so an
edited column is refused even with the triggers disabled, and G.2's query keeps
meaning "no tampered row"), and ``audit verify`` evaluates the same text in its
own query rather than trusting the constraint. jsonb orders keys by length, so
``"v"`` comes first and a format-2 payload starts with ``{"v": 2, ``: the
format is told apart without parsing.
"""

V2_PREFIX = '{"v": 2, '

COLUMNS_MATCH = """CASE WHEN left(event_payload, 9) = '{"v": 2, '
    THEN event_payload::jsonb @> jsonb_build_object(
        'at', created_at AT TIME ZONE 'UTC', 'table', table_name, 'action', action, 'user_id', user_id,
        'actor', actor, 'accessed_at', accessed_at AT TIME ZONE 'UTC', 'query', query,
        'prev_hash', COALESCE(prev_hash, ''))
    ELSE event_payload::jsonb @> jsonb_build_object(
        'table', table_name, 'action', action, 'user_id', user_id, 'prev_hash', COALESCE(prev_hash, ''))
        AND accessed_at = created_at AND (event_payload::jsonb ->> 'at')::timestamptz = created_at
END"""
