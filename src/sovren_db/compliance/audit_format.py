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
own query unless the constraint stands validated and unaltered. jsonb orders keys
by length, so ``"v"`` comes first and a format-2 payload starts with ``{"v": 2, ``:
the format is told apart without parsing. Formats 2 and 3 have the same columns
in the payload; format 3's chain number is not a column (it follows from the
event id). Since revision 3f6b2d8e4a19 formats 2 and 3 are compared as text,
without parsing the payload (below, where the text is built, says why that is
sound); ``COLUMNS_MATCH_JSONB`` is the text of the revisions before it.
"""

V2_PREFIX = '{"v": 2, '
V3_PREFIX = '{"v": 3, '
CHAINS = 8  # the number of chains of format 3, fixed by revision 7c3e9a41f0b2 (postgres/audit.py says why)


def first_id(fork_id: int, chain: int) -> int:
    """The id of chain ``chain``'s first event after a fork at event ``fork_id`` (0 for an empty log)."""
    return fork_id + 1 + (chain - fork_id - 1) % CHAINS


# -- audit_log_columns_match ------------------------------------------------------------------
#
# Formats 2 and 3 (revision 3f6b2d8e4a19): the payload is never parsed. It is the text of a jsonb
# value, so its keys come in jsonb's order (by length, then bytes) and each value is written as
# to_json writes it (the same escape_json and ISO time rendering jsonb's output uses):
#
#     {"v": 3, "at": .., "actor": .., "chain": k, "query": .., "table": .., "action": .., "details": ..,
#      "user_id": .., "prev_hash": .., "accessed_at": ..}          (format 2: no "chain")
#
# Every column is in the text before "details" (PREFIX) or after it (SUFFIX), so the CHECK is: the
# payload starts with PREFIX and ends with SUFFIX. Why that is as strict as the containment it replaces:
# - each value is a JSON string or ``null``, self-delimiting read from the left (a string ends at its
#   first unescaped quote) and from the right (a quote inside a string is always written ``\"``,
#   while the quote that opens one follows ``: ``), so PREFIX can only match the payload's own
#   values in order, and SUFFIX only its own from the end: nothing in details, whatever it holds
#   (the key names and ``, "user_id": `` included), can stand in for a column;
# - the chain number is not a column but follows from event_id (chain k's ids are k modulo CHAINS,
#   revision 7c3e9a41f0b2), so PREFIX is fully known; the CHECK thus also refuses a format-3 row
#   whose chain number does not match its id;
# - a NULL column is written ``null`` (COALESCE on every value), and event_payload is NOT NULL, so
#   the expression is never NULL: a CHECK that is NULL would pass.
# Format 1 rows (no actor, query or accessed_at in the payload, another key order) keep the jsonb
# containment they were validated with.
#
# What it costs (measured per row over 100,000 rows: the jsonb text 6.7 us, this one about 3.5 us,
# half of it rendering the columns): Postgres's text functions count characters (text_starts_with
# takes a substring of the payload in characters, right() and reverse() walk all of it: 3 us each
# on a 500-byte payload), its bytea functions count bytes. So both sides are compared as UTF-8 bytes
# (convert_to, a check of the bytes and a copy: 0.1 us): position(PREFIX IN payload) = 1, and, as
# Postgres has no ends_with and SUFFIX should be built once, position(SUFFIX || NUL IN payload ||
# NUL) > 0: text cannot hold a NUL byte, so the one in the payload is its end, and a match ending
# on it is a suffix. Written with what Postgres has, no function of ours (the CHECK would depend on
# it and on its owner); to_json rather than to_jsonb: the same text without building a jsonb. The
# chain rule ties the CHECK to CHAINS: changing CHAINS needs a revision of this text too.

def _json(value: str) -> str:
    return f"COALESCE(to_json({value})::text, 'null')"


def _bytes(text: str) -> str:
    return f"convert_to({text}, 'UTF8')"


_PAYLOAD = _bytes("event_payload")
_END = "decode('00', 'hex')"   # the NUL byte (folded to a constant when the CHECK is compiled)
_AT = _json("created_at AT TIME ZONE 'UTC'")
_ACCESSED_AT = _json("accessed_at AT TIME ZONE 'UTC'")
_PREV_HASH = _json("COALESCE(prev_hash, '')")
_NEXT = "\n        || "
_HEAD = """'{{"v": {v}, "at": ' || """ + _AT + """ || ', "actor": ' || """ + _json("actor")
_CHAIN = f"""', "chain": ' || COALESCE((mod(event_id - 1, {CHAINS}) + 1)::text, 'null')"""
_BEFORE_DETAILS = (f"""', "query": ' || {_json('query')} || ', "table": ' || {_json('table_name')}"""
                   f"""{_NEXT}', "action": ' || {_json('action')} || ', "details": '""")
PREFIX_V3 = _HEAD.format(v=3) + _NEXT + _CHAIN + _NEXT + _BEFORE_DETAILS
PREFIX_V2 = _HEAD.format(v=2) + _NEXT + _BEFORE_DETAILS
SUFFIX = (f"""', "user_id": ' || {_json('user_id')} || ', "prev_hash": ' || {_PREV_HASH}"""
          f"""{_NEXT}', "accessed_at": ' || {_ACCESSED_AT} || '}}'""")
_ENDS = f"position({_bytes(SUFFIX)} || {_END} IN {_PAYLOAD} || {_END}) > 0"


def _starts(prefix: str) -> str:
    return f"position({_bytes(prefix)} IN {_PAYLOAD}) = 1"


FORMAT_1_MATCH = """event_payload::jsonb @> jsonb_build_object(
        'table', table_name, 'action', action, 'user_id', user_id, 'prev_hash', COALESCE(prev_hash, ''))
        AND accessed_at = created_at AND (event_payload::jsonb ->> 'at')::timestamptz = created_at"""

COLUMNS_MATCH = f"""CASE WHEN starts_with(event_payload, '{V3_PREFIX}')
    THEN {_starts(PREFIX_V3)}
        AND {_ENDS}
    WHEN starts_with(event_payload, '{V2_PREFIX}')
    THEN {_starts(PREFIX_V2)}
        AND {_ENDS}
    ELSE {FORMAT_1_MATCH}
END"""

# The text of revisions d2645c4dc20c to 7c3e9a41f0b2 (formats 2 and 3 compared as jsonb): what a
# database migrated to one of them holds. `audit verify` trusts either text, validated and unaltered.
COLUMNS_MATCH_JSONB = f"""CASE WHEN left(event_payload, 9) IN ('{V2_PREFIX}', '{V3_PREFIX}')
    THEN event_payload::jsonb @> jsonb_build_object(
        'at', created_at AT TIME ZONE 'UTC', 'table', table_name, 'action', action, 'user_id', user_id,
        'actor', actor, 'accessed_at', accessed_at AT TIME ZONE 'UTC', 'query', query,
        'prev_hash', COALESCE(prev_hash, ''))
    ELSE {FORMAT_1_MATCH}
END"""
