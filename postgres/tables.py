"""Sovren's relational tables (architecture document §3, §5, §6, Appendix G)."""

from sqlalchemy import (
    CHAR, TIMESTAMP, VARCHAR, BigInteger, CheckConstraint, Column, ForeignKey, Identity, Index,
    MetaData, Numeric, PrimaryKeyConstraint, Table, Text, text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from sovren_db.compliance.audit_format import CHAINS, COLUMNS_MATCH
from sovren_db.postgres.pci import four_digits, no_card_number

metadata = MetaData()
NOW = text("CURRENT_TIMESTAMP")

# §3, exactly as the architecture document writes it.
users = Table(
    "users", metadata,
    Column("user_id", UUID(as_uuid=True), primary_key=True),
    Column("username", VARCHAR(150), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("email", VARCHAR(255), nullable=False, unique=True),
    Column("created_at", TIMESTAMP, server_default=NOW),
    Column("subscription_tier", VARCHAR(50), nullable=False),
    Column("shadow_board", JSONB),
    Column("last_login", TIMESTAMP),
)

# §3 plus §5's partitioning: a partitioned table's primary key must contain the
# partition key, so the key is (operation_id, executed_at) and executed_at is NOT NULL.
operations = Table(
    "operations", metadata,
    Column("operation_id", UUID(as_uuid=True), nullable=False),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.user_id", name="operations_user_id_fkey")),
    Column("parameters", JSONB),
    Column("result", JSONB),
    Column("confidence", Numeric(5, 2)),
    Column("executed_at", TIMESTAMP, nullable=False, server_default=NOW),
    PrimaryKeyConstraint("operation_id", "executed_at", name="operations_pkey"),
    Index("ix_operations_user_id_executed_at", "user_id", "executed_at"),
    postgresql_partition_by="RANGE (executed_at)",
)

subscriptions = Table(
    "subscriptions", metadata,
    Column("subscription_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.user_id", name="subscriptions_user_id_fkey",
                                                     ondelete="CASCADE"), nullable=False),
    Column("tier", VARCHAR(50), nullable=False),
    Column("status", VARCHAR(20), nullable=False, server_default=text("'active'")),
    Column("started_at", TIMESTAMP, nullable=False, server_default=NOW),
    Column("current_period_end", TIMESTAMP),
    Column("cancelled_at", TIMESTAMP),
    CheckConstraint("status IN ('trialing', 'active', 'past_due', 'cancelled')", name="subscriptions_status_check"),
    Index("ix_subscriptions_user_id", "user_id"),
)

transactions = Table(
    "transactions", metadata,
    Column("transaction_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.user_id", name="transactions_user_id_fkey"),
           nullable=False),
    Column("subscription_id", UUID(as_uuid=True),
           ForeignKey("subscriptions.subscription_id", name="transactions_subscription_id_fkey")),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("status", VARCHAR(20), nullable=False),
    Column("created_at", TIMESTAMP, nullable=False, server_default=NOW),
    CheckConstraint("status IN ('pending', 'succeeded', 'failed', 'refunded')", name="transactions_status_check"),
    Index("ix_transactions_user_id_created_at", "user_id", "created_at"),
    Index("ix_transactions_subscription_id", "subscription_id"),  # every foreign key leads an index
)

# Appendix G.5: raw card data can never be stored; only a provider token and the last four digits.
# No text column may hold a card number (PCI scope, pci.py): the database refuses it.
payments = Table(
    "payments", metadata,
    Column("payment_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.user_id", name="payments_user_id_fkey"),
           nullable=False),
    Column("transaction_id", UUID(as_uuid=True),
           ForeignKey("transactions.transaction_id", name="payments_transaction_id_fkey")),
    Column("amount", Numeric(12, 2), nullable=False),
    Column("currency", CHAR(3), nullable=False),
    Column("provider", VARCHAR(50), nullable=False),
    Column("provider_token", Text, nullable=False),
    Column("card_last4", CHAR(4)),
    Column("raw_card_number", Text),
    Column("created_at", TIMESTAMP, nullable=False, server_default=NOW),
    CheckConstraint("raw_card_number IS NULL", name="no_card_data"),
    *[no_card_number("payments", column) for column in ("provider", "provider_token", "raw_card_number")],
    four_digits("payments", "card_last4"),
    Index("ix_payments_user_id", "user_id"),
    # Deleting a transaction scans payments for referrers without it (seed --reset sat 27 min on one DELETE).
    Index("ix_payments_transaction_id", "transaction_id"),
)

# §6 and Appendix G.2/G.4: the immutable, hash-chained audit trail. event_payload is the
# canonical text of the event (it embeds the previous row's hash), so that
# hash = sha256(event_payload || event_id) chains the rows and G.2's query checks them.
audit_log = Table(
    "audit_log", metadata,
    Column("event_id", BigInteger, Identity(always=False), nullable=False),
    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
    Column("table_name", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("user_id", UUID(as_uuid=True)),
    Column("actor", Text, nullable=False),
    Column("accessed_at", TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
    Column("query", Text),
    Column("event_payload", Text, nullable=False),
    Column("prev_hash", Text),
    Column("hash", Text, nullable=False),
    PrimaryKeyConstraint("event_id", "created_at", name="audit_log_pkey"),
    CheckConstraint(COLUMNS_MATCH, name="audit_log_columns_match"),
    Index("ix_audit_log_user_id_accessed_at", "user_id", "accessed_at"),
    postgresql_partition_by="RANGE (created_at)",
)

# The heads of the chains (postgres/audit.py): one row per chain, the id its next event takes
# (chain k's ids are congruent to k modulo CHAINS) and its last hash; a committing transaction takes
# a free row FOR UPDATE ... SKIP LOCKED at commit.
audit_chain_head = Table(
    "audit_chain_head", metadata,
    Column("chain", BigInteger, primary_key=True, autoincrement=False),
    Column("next_id", BigInteger, nullable=False),
    Column("hash", Text),
    CheckConstraint(f"chain >= 1 AND chain <= {CHAINS} AND (next_id - chain) % {CHAINS} = 0",
                    name="audit_chain_head_chains"),
)

# Events staged by the audit triggers until their transaction commits; never holds a
# committed row for long (the commit-time flush deletes them), hence UNLOGGED.
audit_pending = Table(
    "audit_pending", metadata,
    Column("seq", BigInteger, Identity(always=True), primary_key=True),
    Column("xact", BigInteger, nullable=False),   # txid_current() of the staging transaction
    Column("events", JSONB, nullable=False),
    Index("ix_audit_pending_xact", "xact"),
    prefixes=["UNLOGGED"],
)
