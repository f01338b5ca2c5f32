"""Roles, grants, row-level security and tenant policies (§6 "RBAC, row-level security")."""

from sovren_db.postgres import Grant, Policy, Role, RowSecurity

APP, READONLY, MIGRATOR = "sovren_app", "sovren_readonly", "sovren_migrator"

# Group roles (NOLOGIN): deployments GRANT them to their login users.
roles = [
    Role(APP),
    Role(READONLY),
    # Seeding and maintenance write every tenant's rows without disabling security on the tables.
    Role(MIGRATOR, bypass_rls=True),
]

TENANT_TABLES = ("users", "operations", "transactions", "payments")
APP_TABLES = ("users", "operations", "subscriptions", "transactions", "payments")
ALL_TABLES = APP_TABLES + ("audit_log",)
CRUD = ("SELECT", "INSERT", "UPDATE", "DELETE")

# The tenant is the session setting app.user_id (SET app.user_id = '<uuid>'); unset means no rows.
TENANT = "user_id = NULLIF(current_setting('app.user_id', true), '')::uuid"

row_security = [RowSecurity(table, enabled=True, forced=True) for table in TENANT_TABLES]

policies = [
    *[Policy(f"{table}_tenant_isolation", table, using=TENANT, check=TENANT, roles=(APP,))
      for table in TENANT_TABLES],
    # Analytics replicas read across tenants, never write.
    *[Policy(f"{table}_readonly_select", table, using="true", command="SELECT", roles=(READONLY,))
      for table in TENANT_TABLES],
]

grants = [
    *[Grant(APP, table, CRUD) for table in APP_TABLES],
    Grant(APP, "audit_log", ("SELECT",)),
    *[Grant(READONLY, table, ("SELECT",)) for table in ALL_TABLES],
    *[Grant(MIGRATOR, table, CRUD) for table in APP_TABLES],
    Grant(MIGRATOR, "audit_log", ("SELECT",)),
]
