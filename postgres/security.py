"""Roles, grants, row-level security and tenant policies (§6 "RBAC, row-level security")."""

from sovren_db.postgres import Function, Grant, Policy, Role, RowSecurity

APP, READONLY, MIGRATOR = "sovren_app", "sovren_readonly", "sovren_migrator"

# Group roles (NOLOGIN): deployments GRANT them to their login users.
roles = [
    Role(APP),
    Role(READONLY),
    # Seeding and maintenance write every tenant's rows without disabling security on the tables.
    Role(MIGRATOR, bypass_rls=True),
]

# Every table holding a tenant's rows; tests/integration/test_tenant_isolation.py finds them in the
# catalog (a user_id, or a foreign key path to users) and probes each as sovren_app.
TENANT_TABLES = ("users", "operations", "subscriptions", "transactions", "payments")
APP_TABLES = ("users", "operations", "subscriptions", "transactions", "payments")
ALL_TABLES = APP_TABLES + ("audit_log",)
CRUD = ("SELECT", "INSERT", "UPDATE", "DELETE")

# The tenant is the session setting app.user_id (SET app.user_id = '<uuid>'). Unset, empty or not a
# UUID gives NULL, hence no rows and no error: a cast in the policy itself would raise, echoing the value.
# STABLE and without SET options so that the planner inlines it and the user_id indexes serve the policy.
current_tenant = Function(
    name="sovren_current_tenant",
    args="",
    returns="uuid",
    language="sql",
    volatility="STABLE",
    body="""
SELECT CASE WHEN pg_catalog.current_setting('app.user_id', true)
                 OPERATOR(pg_catalog.~*) '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
            THEN pg_catalog.current_setting('app.user_id', true)::pg_catalog.uuid END
""",
)
functions = [current_tenant]

TENANT = "user_id = sovren_current_tenant()"

row_security = [
    *[RowSecurity(table, enabled=True, forced=True) for table in TENANT_TABLES],
    # The trail is written only by its SECURITY DEFINER functions, as the table owner: FORCE would
    # hide the previous hash from them. Tenants read their own events, never write (no grant).
    RowSecurity("audit_log", enabled=True, forced=False),
]

policies = [
    *[Policy(f"{table}_tenant_isolation", table, using=TENANT, check=TENANT, roles=(APP,))
      for table in TENANT_TABLES],
    Policy("audit_log_tenant_select", "audit_log", using=TENANT, command="SELECT", roles=(APP,)),
    # Analytics replicas read across tenants, never write.
    *[Policy(f"{table}_readonly_select", table, using="true", command="SELECT", roles=(READONLY,))
      for table in (*TENANT_TABLES, "audit_log")],
]

grants = [
    *[Grant(APP, table, CRUD) for table in APP_TABLES],
    Grant(APP, "audit_log", ("SELECT",)),
    *[Grant(READONLY, table, ("SELECT",)) for table in ALL_TABLES],
    *[Grant(MIGRATOR, table, CRUD) for table in APP_TABLES],
    Grant(MIGRATOR, "audit_log", ("SELECT",)),
]
