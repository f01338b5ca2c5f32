"""The immutable, hash-chained audit trail (§6, Appendix G.2 and G.4).

Every row's event_payload is canonical JSON text holding the previous row's
hash, and hash = sha256(event_payload || event_id), so G.2's query

    SELECT event_id, created_at, hash FROM audit_log
    WHERE hash != encode(digest(event_payload || event_id::text, 'sha256'), 'hex');

returns nothing on an untouched log and the altered row after tampering,
while the embedded prev_hash makes the rows a chain. Appending takes a
transaction advisory lock so that the chain is linear under concurrency.
Audited rows are described by key and changed column names, never by their
values, so the immutable log holds no personal data beyond the subject id.
"""

from sovren_db.postgres import Function, Trigger

AUDIT_LOCK = 7_301_001

append_event = Function(
    name="sovren_audit_append",
    args="p_table text, p_action text, p_user uuid, p_details jsonb",
    returns="bigint",
    security_definer=True,
    search_path="public, pg_temp",
    body=f"""
DECLARE
    v_prev text;
    v_id bigint;
    v_at timestamptz := clock_timestamp();
    v_payload text;
BEGIN
    PERFORM pg_advisory_xact_lock({AUDIT_LOCK});
    SELECT hash INTO v_prev FROM audit_log ORDER BY event_id DESC LIMIT 1;
    v_id := nextval(pg_get_serial_sequence('audit_log', 'event_id'));
    v_payload := jsonb_build_object(
        'table', p_table, 'action', p_action, 'user_id', p_user,
        'details', COALESCE(p_details, '{{}}'::jsonb), 'prev_hash', COALESCE(v_prev, ''), 'at', v_at
    )::text;
    INSERT INTO audit_log (event_id, created_at, table_name, action, user_id, actor,
                           accessed_at, query, event_payload, prev_hash, hash)
    VALUES (v_id, v_at, p_table, p_action, p_user, session_user, v_at, current_query(),
            v_payload, v_prev, encode(digest(v_payload || v_id::text, 'sha256'), 'hex'));
    RETURN v_id;
END
""",
)

# Row trigger for audited tables: records the key, the subject and which columns changed.
audit_row = Function(
    name="sovren_audit_row",
    args="",
    returns="trigger",
    security_definer=True,
    search_path="public, pg_temp",
    body="""
DECLARE
    v_new jsonb := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
    v_old jsonb := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END;
    v_row jsonb := COALESCE(v_new, v_old);
    v_key jsonb;
    v_changed jsonb;
BEGIN
    SELECT jsonb_object_agg(a.attname, v_row -> a.attname) INTO v_key
      FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
     WHERE i.indrelid = TG_RELID AND i.indisprimary;
    SELECT COALESCE(jsonb_agg(k ORDER BY k), '[]'::jsonb) INTO v_changed
      FROM jsonb_object_keys(v_row) AS k
     WHERE v_new -> k IS DISTINCT FROM v_old -> k;
    PERFORM sovren_audit_append(TG_TABLE_NAME, TG_OP, (v_row ->> 'user_id')::uuid,
                                jsonb_build_object('key', v_key, 'changed', v_changed));
    RETURN NULL;
END
""",
)

reject_change = Function(
    name="sovren_audit_immutable",
    args="",
    returns="trigger",
    body="""
BEGIN
    RAISE EXCEPTION 'audit_log is immutable: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
""",
)

functions = [append_event, audit_row, reject_change]

AUDITED = ("users", "operations", "payments")

triggers = [
    *[Trigger(f"{table}_audit", table, "sovren_audit_row") for table in AUDITED],
    Trigger("audit_log_immutable", "audit_log", "sovren_audit_immutable", timing="BEFORE",
            events=("UPDATE", "DELETE")),
    Trigger("audit_log_no_truncate", "audit_log", "sovren_audit_immutable", timing="BEFORE",
            events=("TRUNCATE",), level="STATEMENT"),
]
