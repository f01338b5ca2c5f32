"""SQL text for the operations in :mod:`ops` (convergent where Postgres allows)."""

from __future__ import annotations

from .state import Function, PartitionRule, Policy, Role, Trigger

MANAGED = "sovren-db"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ensure_role(role: Role) -> str:
    attrs = f"{'LOGIN' if role.login else 'NOLOGIN'} {'BYPASSRLS' if role.bypass_rls else 'NOBYPASSRLS'}"
    name = _literal(role.name)
    return f"""DO $sovren$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}) THEN
        BEGIN
            CREATE ROLE {role.name} {attrs};
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created concurrently by a migration of another database
        END;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {name}
                   AND rolcanlogin = {str(role.login).lower()} AND rolbypassrls = {str(role.bypass_rls).lower()}) THEN
        ALTER ROLE {role.name} {attrs};
    END IF;
END
$sovren$"""


def drop_role(role: Role) -> str:
    return f"""DO $sovren$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = {_literal(role.name)}) THEN
        BEGIN
            DROP ROLE {role.name};
        EXCEPTION WHEN dependent_objects_still_exist THEN
            RAISE NOTICE 'role {role.name} kept: objects in another database still depend on it';
        END;
    END IF;
END
$sovren$"""


def mark_function(function: Function) -> str:
    return f"COMMENT ON FUNCTION {function.key} IS {_literal(MANAGED)}"


# The live fingerprint of a policy is computed by the server from pg_get_expr right after
# CREATE POLICY and kept in the policy's comment next to the declaration's fingerprint;
# check's catalog query (live._POLICIES) computes it again with this same SQL, so both a
# changed declaration and an ALTER POLICY made by hand show as drift without re-parsing SQL
# expressions. It must be computed in SQL on both sides: Python's whitespace (\s, strip())
# is not Postgres's (btrim strips spaces only; \s does not match a no-break space).
LIVE_POLICY_FINGERPRINT = (
    "left(encode(sha256(convert_to("
    "regexp_replace(btrim(COALESCE(pg_get_expr(polqual, polrelid), '')), '\\s+', ' ', 'g') || chr(31) || "
    "regexp_replace(btrim(COALESCE(pg_get_expr(polwithcheck, polrelid), '')), '\\s+', ' ', 'g'),"
    " 'UTF8')), 'hex'), 16)"
)


def mark_policy(policy: Policy) -> str:
    return f"""DO $sovren$
DECLARE
    v_live text;
BEGIN
    SELECT {LIVE_POLICY_FINGERPRINT} INTO v_live FROM pg_policy
     WHERE polname = {_literal(policy.name)} AND polrelid = {_literal(policy.table)}::regclass;
    EXECUTE format('COMMENT ON POLICY %I ON %I IS %L', {_literal(policy.name)}, {_literal(policy.table)},
                   {_literal(MANAGED + ' ' + policy.declared_fingerprint + ' ')} || v_live);
END
$sovren$"""


def ensure_partitions(rule: PartitionRule) -> str:
    """Create the month partitions from this month to ``months_ahead`` ahead, and the default.

    Postgres clones a partitioned table's row triggers onto its partitions but not its
    statement-level triggers, and a statement naming a partition (``TRUNCATE partition``,
    ``INSERT INTO partition``) never meets the parent's: each partition created here gets the
    parent's statement-level triggers, with their transition tables (audit_log's TRUNCATE guard;
    the audit triggers of operations, revisions 8b4f1d6c2e90 and e7a2c9d4b61f)."""
    table = _literal(rule.table)
    default = (f"""
    IF to_regclass({_literal(rule.default_name)}) IS NULL THEN
        EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', {_literal(rule.default_name)}, {table});
        {_copy_statement_triggers(table, _literal(rule.default_name))}
    END IF;""" if rule.default else "")
    return f"""DO $sovren$
DECLARE
    v_month date := date_trunc('month', current_date)::date;
    v_from date;
    v_name text;
    v_trigger record;
BEGIN
    FOR i IN 0..{int(rule.months_ahead)} LOOP
        v_from := (v_month + make_interval(months => i))::date;
        v_name := format('%s_p%s', {table}, to_char(v_from, 'YYYY_MM'));
        IF to_regclass(v_name) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
                           v_name, {table}, v_from, (v_from + interval '1 month')::date);
            {_copy_statement_triggers(table, "v_name")}
        END IF;
    END LOOP;{default}
END
$sovren$"""


def partition_truncate_trigger(trigger: Trigger, create: bool) -> list[str]:
    """The TRUNCATE trigger ``trigger`` of a partitioned table created on (or dropped from) each
    partition: Postgres neither clones nor drops statement-level triggers with the parent's."""
    if "TRUNCATE" not in trigger.events:
        return []
    action = ("CREATE TRIGGER %I {timing} TRUNCATE ON %I FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
              .format(timing=trigger.timing, function=trigger.function) if create else "DROP TRIGGER IF EXISTS %I ON %I")
    present = "NOT EXISTS" if create else "EXISTS"
    return [f"""DO $sovren$
DECLARE
    v_partition text;
BEGIN
    FOR v_partition IN SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                        WHERE i.inhparent = to_regclass({_literal(trigger.table)})
                          AND {present} (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = c.oid
                                         AND t.tgname = {_literal(trigger.name)}) LOOP
        EXECUTE format({_literal(action)}, {_literal(trigger.name)}, v_partition);
    END LOOP;
END
$sovren$"""]


def _copy_statement_triggers(table: str, partition: str) -> str:
    """PL/pgSQL giving ``partition`` every statement-level trigger of ``table`` (a record ``v_trigger``
    is declared): its timing, events and transition tables. Written here rather than read back from
    pg_get_triggerdef, whose text names the parent and would have to be edited. A trigger with a WHEN
    condition or an UPDATE OF column list is not copied (none is declared on a partitioned table; its
    copy would need the clause rebuilt)."""
    return f"""FOR v_trigger IN SELECT t.tgname, p.proname, CASE WHEN t.tgtype & 2 <> 0 THEN 'BEFORE' ELSE 'AFTER' END AS timing,
                       concat_ws(' OR ', CASE WHEN t.tgtype & 4 <> 0 THEN 'INSERT' END, CASE WHEN t.tgtype & 16 <> 0 THEN 'UPDATE' END,
                                 CASE WHEN t.tgtype & 8 <> 0 THEN 'DELETE' END, CASE WHEN t.tgtype & 32 <> 0 THEN 'TRUNCATE' END) AS events,
                       COALESCE(' REFERENCING ' || NULLIF(concat_ws(' ', 'OLD TABLE AS ' || quote_ident(t.tgoldtable),
                                                                    'NEW TABLE AS ' || quote_ident(t.tgnewtable)), ''), '') AS referencing
                  FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                 WHERE t.tgrelid = {table}::regclass AND t.tgtype & 1 = 0 AND NOT t.tgisinternal
                   AND t.tgqual IS NULL AND t.tgattr = ''::int2vector
                   AND NOT EXISTS (SELECT 1 FROM pg_trigger x WHERE x.tgrelid = to_regclass({partition})
                                   AND x.tgname = t.tgname) LOOP
                EXECUTE format('CREATE TRIGGER %I %s %s ON %I%s FOR EACH STATEMENT EXECUTE FUNCTION %I()',
                               v_trigger.tgname, v_trigger.timing, v_trigger.events, {partition}, v_trigger.referencing,
                               v_trigger.proname);
            END LOOP;"""
