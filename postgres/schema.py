"""Sovren's declared Postgres schema: the one source of truth for autogenerate and check."""

from sovren_db.postgres import Extension, PartitionRule, Schema

from . import audit, pci, privacy, security, tables

schema = Schema(tables.metadata)
schema.add(
    Extension("pgcrypto"),  # digest() for the audit chain, pgp_sym_* for Appendix G.3
    *security.roles,
    *audit.functions,
    *security.functions,
    *pci.functions,
    *security.row_security,
    *security.policies,
    *audit.triggers,
    *security.grants,
    # §5: monthly partitions created ahead, plus a default partition.
    PartitionRule("operations", "executed_at", months_ahead=3),
    PartitionRule("audit_log", "created_at", months_ahead=3),
    # Issue 7: personal data and its erasure rule, encrypted columns (not DDL: read by the compliance commands).
    *privacy.personal_data,
    *privacy.encrypted,
    *pci.scopes,
    # Issue 13: who may read the audit trail.
    *audit.security,
)
