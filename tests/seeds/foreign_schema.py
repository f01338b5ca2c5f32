"""A project no Sovren code knows: 20 tables declared with SQLAlchemy, for the seed to fill with no code of its own.

Composite keys and composite foreign keys, self-references (plain and
composite), CHECK constraints (IN lists, bounds, BETWEEN, lengths, IS NULL),
enums, a range-partitioned table, jsonb, arrays, inet, numerics of several
scales, dates, booleans, floats, identity and serial keys, text keys, unique
columns and server defaults. ``titles`` is a user generator the profile names.
"""

from __future__ import annotations

SCHEMA = '''
import sqlalchemy as sa
from sqlalchemy import (CHAR, TIMESTAMP, VARCHAR, BigInteger, Boolean, CheckConstraint, Column, Date, Float,
                        ForeignKey, ForeignKeyConstraint, Identity, Integer, MetaData, Numeric, PrimaryKeyConstraint,
                        SmallInteger, Table, Text, UniqueConstraint, text)
from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB, UUID

from sovren_db.postgres import Grant, PartitionRule, Role, Schema

metadata = MetaData()
NOW = text("CURRENT_TIMESTAMP")
lifecycle = sa.Enum("draft", "live", "retired", name="lifecycle")
plan = sa.Enum("free", "team", "scale", name="tenant_plan")

Table("regions", metadata, Column("code", CHAR(2), primary_key=True), Column("name", VARCHAR(40), nullable=False))
Table("tenants", metadata,
      Column("tenant_id", BigInteger, Identity(), primary_key=True),
      Column("name", VARCHAR(80), nullable=False, unique=True),
      Column("plan", plan, nullable=False),
      Column("settings", JSONB, nullable=False, server_default=text("'{}'")),
      Column("created_at", TIMESTAMP, nullable=False, server_default=NOW))
Table("accounts", metadata,
      Column("account_id", Integer, primary_key=True),
      Column("tenant_id", BigInteger, ForeignKey("tenants.tenant_id"), nullable=False),
      Column("email", VARCHAR(120), nullable=False, unique=True),
      Column("region_code", CHAR(2), ForeignKey("regions.code"), nullable=False),
      Column("status", VARCHAR(12), nullable=False),
      Column("balance", Numeric(12, 2), nullable=False),
      Column("referred_by", Integer, ForeignKey("accounts.account_id")),
      CheckConstraint("status IN ('invited', 'active', 'locked')", name="accounts_status_check"),
      CheckConstraint("balance >= 0", name="accounts_balance_check"))
Table("teams", metadata,
      Column("tenant_id", BigInteger, ForeignKey("tenants.tenant_id"), nullable=False),
      Column("team_no", SmallInteger, nullable=False),
      Column("name", VARCHAR(30), nullable=False),
      Column("parent_team_no", SmallInteger),
      PrimaryKeyConstraint("tenant_id", "team_no"),
      ForeignKeyConstraint(["tenant_id", "parent_team_no"], ["teams.tenant_id", "teams.team_no"],
                           name="teams_parent_fkey"))
Table("memberships", metadata,
      Column("tenant_id", BigInteger, nullable=False),
      Column("team_no", SmallInteger, nullable=False),
      Column("account_id", Integer, ForeignKey("accounts.account_id"), nullable=False),
      Column("is_lead", Boolean, nullable=False),
      ForeignKeyConstraint(["tenant_id", "team_no"], ["teams.tenant_id", "teams.team_no"],
                           name="memberships_team_fkey"),
      PrimaryKeyConstraint("tenant_id", "team_no", "account_id"))
Table("projects", metadata,
      Column("project_id", UUID(as_uuid=True), primary_key=True),
      Column("tenant_id", BigInteger, ForeignKey("tenants.tenant_id"), nullable=False),
      Column("state", lifecycle, nullable=False),
      Column("budget", Numeric(10, 2), nullable=False),
      Column("tags", ARRAY(Text), nullable=False),
      Column("starts_on", Date, nullable=False),
      CheckConstraint("budget BETWEEN 100 AND 100000", name="projects_budget_check"))
Table("tasks", metadata,
      Column("task_id", UUID(as_uuid=True), primary_key=True),
      Column("project_id", UUID(as_uuid=True), ForeignKey("projects.project_id"), nullable=False),
      Column("parent_task_id", UUID(as_uuid=True), ForeignKey("tasks.task_id")),
      Column("title", VARCHAR(60), nullable=False),
      Column("priority", Integer, nullable=False),
      Column("done", Boolean, nullable=False),
      Column("estimate", Float, nullable=False),
      CheckConstraint("priority >= 1 AND priority <= 5", name="tasks_priority_check"),
      CheckConstraint("estimate > 0.5", name="tasks_estimate_check"))
Table("task_events", metadata,
      Column("event_id", UUID(as_uuid=True), nullable=False),
      Column("happened_at", TIMESTAMP, nullable=False),
      Column("task_id", UUID(as_uuid=True), ForeignKey("tasks.task_id"), nullable=False),
      Column("kind", VARCHAR(10), nullable=False),
      Column("payload", JSONB),
      PrimaryKeyConstraint("event_id", "happened_at"),
      CheckConstraint("kind = ANY (ARRAY['created', 'moved', 'closed'])", name="task_events_kind_check"),
      postgresql_partition_by="RANGE (happened_at)")
Table("comments", metadata,
      Column("comment_id", BigInteger, primary_key=True),
      Column("task_id", UUID(as_uuid=True), ForeignKey("tasks.task_id"), nullable=False),
      Column("author_id", Integer, ForeignKey("accounts.account_id"), nullable=False),
      Column("body", Text, nullable=False),
      Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=NOW),
      CheckConstraint("char_length(body) >= 3", name="comments_body_check"))
Table("attachments", metadata,
      Column("attachment_id", UUID(as_uuid=True), primary_key=True),
      Column("comment_id", BigInteger, ForeignKey("comments.comment_id"), nullable=False),
      Column("url", Text, nullable=False),
      Column("size_bytes", BigInteger, nullable=False),
      CheckConstraint("size_bytes > 0", name="attachments_size_check"))
Table("invoices", metadata,
      Column("invoice_id", UUID(as_uuid=True), primary_key=True),
      Column("tenant_id", BigInteger, ForeignKey("tenants.tenant_id"), nullable=False),
      Column("number", VARCHAR(20), nullable=False, unique=True),
      Column("currency", CHAR(3), nullable=False),
      Column("issued_on", Date, nullable=False))
Table("invoice_lines", metadata,
      Column("invoice_id", UUID(as_uuid=True), ForeignKey("invoices.invoice_id"), nullable=False),
      Column("line_no", Integer, nullable=False),
      Column("quantity", Integer, nullable=False),
      Column("unit_price", Numeric(10, 3), nullable=False),
      PrimaryKeyConstraint("invoice_id", "line_no"),
      CheckConstraint("quantity > 0 AND quantity < 100", name="invoice_lines_quantity_check"))
Table("settlements", metadata,
      Column("settlement_id", UUID(as_uuid=True), primary_key=True),
      Column("invoice_id", UUID(as_uuid=True), ForeignKey("invoices.invoice_id"), nullable=False),
      Column("paid_at", TIMESTAMP(timezone=True), nullable=False),
      Column("card_number", Text),
      CheckConstraint("card_number IS NULL", name="no_card_data"))
Table("api_tokens", metadata,
      Column("token_id", UUID(as_uuid=True), primary_key=True),
      Column("account_id", Integer, ForeignKey("accounts.account_id"), nullable=False),
      Column("token", Text, nullable=False, unique=True),
      Column("last_ip", INET),
      Column("scopes", ARRAY(Text), nullable=False))
Table("activity", metadata,
      Column("activity_id", BigInteger, Identity(always=True), primary_key=True),
      Column("tenant_id", BigInteger, ForeignKey("tenants.tenant_id")),
      Column("action", Text, nullable=False),
      Column("at", TIMESTAMP(timezone=True), nullable=False, server_default=NOW))
Table("categories", metadata,
      Column("category_id", Integer, primary_key=True),
      Column("name", VARCHAR(40), nullable=False, unique=True),
      Column("parent_id", Integer, ForeignKey("categories.category_id")))
Table("products", metadata,
      Column("product_id", UUID(as_uuid=True), primary_key=True),
      Column("category_id", Integer, ForeignKey("categories.category_id"), nullable=False),
      Column("sku", CHAR(12), nullable=False, unique=True),
      Column("price", Numeric(8, 2), nullable=False),
      CheckConstraint("price >= 0.5", name="products_price_check"))
Table("orders", metadata,
      Column("order_id", UUID(as_uuid=True), primary_key=True),
      Column("account_id", Integer, ForeignKey("accounts.account_id"), nullable=False),
      Column("placed_at", TIMESTAMP, nullable=False),
      Column("status", VARCHAR(10), nullable=False, server_default=text("'open'")),
      CheckConstraint("status IN ('open', 'paid', 'shipped')", name="orders_status_check"))
Table("order_items", metadata,
      Column("order_id", UUID(as_uuid=True), ForeignKey("orders.order_id"), nullable=False),
      Column("item_no", SmallInteger, nullable=False),
      Column("product_id", UUID(as_uuid=True), ForeignKey("products.product_id"), nullable=False),
      Column("quantity", SmallInteger, nullable=False),
      PrimaryKeyConstraint("order_id", "item_no"),
      CheckConstraint("quantity BETWEEN 1 AND 20", name="order_items_quantity_check"))
Table("shipments", metadata,
      Column("shipment_id", UUID(as_uuid=True), primary_key=True),
      Column("order_id", UUID(as_uuid=True), ForeignKey("orders.order_id"), nullable=False),
      Column("region_code", CHAR(2), ForeignKey("regions.code"), nullable=False),
      Column("shipped_on", Date, nullable=False),
      Column("tracking", VARCHAR(30), unique=True))

schema = Schema(metadata)
schema.add(Role("shop_loader", bypass_rls=True),
           *[Grant("shop_loader", name, ("SELECT", "INSERT", "UPDATE", "DELETE")) for name in metadata.tables],
           PartitionRule("task_events", "happened_at", months_ahead=1))
'''

PROFILE = '''description = "A shop no Sovren code knows"
seed = 3
window = { start = "-6m", end = "now" }

[postgres]
regions = 6
tenants = 25
categories = 8
teams = 3.0
accounts = 5.0

[postgres.memberships]
share = 0.9                  # of teams: one member at most (a share; mean gives several)

[postgres.tasks]
mean = 4.0
columns.title = "tests.seeds.foreign_schema:titles"

[postgres.invoice_lines]
mean = 2.5
columns.unit_price = { min = 1, max = 250 }

[postgres.products]
mean = 3.0
columns.price = "money"

[postgres.comments.columns]
body = "faker:sentence"
'''


def titles(draw) -> list[str]:
    """A user generator (``module:function``): one value per row, drawn from the seed's own streams."""
    verbs = ("Fix", "Ship", "Review", "Plan", "Test")
    return [f"{verb} item {n}" for verb, n in zip(draw.pick(verbs), draw.below(1000, "#n"))]


# Three collections with nested validators, documents per seeded Postgres rows (issue 16, part 4: MongoDB).
COLLECTIONS = {
    "reviews": {
        "bsonType": "object", "required": ["_id", "accountId", "tenantId", "stars", "body", "meta"],
        "additionalProperties": False,
        "properties": {
            "_id": {"bsonType": "objectId"},
            "accountId": {"bsonType": "int"},
            "tenantId": {"bsonType": ["long", "int"]},
            "stars": {"bsonType": "int", "minimum": 1, "maximum": 5},
            "body": {"bsonType": "string", "minLength": 12, "maxLength": 200},
            "meta": {"bsonType": "object", "required": ["lang", "tags"], "additionalProperties": False,
                     "properties": {"lang": {"enum": ["en", "de", "fr"]},
                                    "tags": {"bsonType": "array", "minItems": 1, "maxItems": 4, "uniqueItems": True,
                                             "items": {"bsonType": "string", "pattern": "^[a-z]+$"}}}},
            "editedAt": {"bsonType": ["date", "null"]},
        },
    },
    "task_snapshots": {
        "bsonType": "object", "required": ["_id", "taskId", "projectId", "state"],
        "properties": {
            "_id": {"bsonType": "objectId"},
            "taskId": {"bsonType": "string",
                       "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"},
            "projectId": {"bsonType": "string"},
            "state": {"bsonType": "object", "required": ["progress", "history"],
                      "properties": {"progress": {"bsonType": "double", "minimum": 0, "maximum": 1},
                                     "history": {"bsonType": "array", "maxItems": 3,
                                                 "items": {"bsonType": "object", "required": ["at", "by"],
                                                           "properties": {"at": {"bsonType": "date"},
                                                                          "by": {"bsonType": "objectId"}}}}}},
            "cost": {"bsonType": "decimal", "minimum": 0, "maximum": 500},
        },
    },
    "project_notes": {
        "bsonType": "object", "required": ["projectId", "code", "pinned"], "additionalProperties": False,
        "properties": {
            "_id": {"bsonType": "objectId"},
            "projectId": {"bsonType": "string"},
            "code": {"bsonType": "string", "pattern": "^[A-Z][0-9]$"},
            "pinned": {"bsonType": "bool"},
            "size": {"bsonType": "long", "minimum": 10},
        },
    },
}

MONGO_PROFILE = '''
[mongo]
reviews = { per = "accounts", mean = 1.5 }
task_snapshots = { per = "tasks", share = 0.5 }
project_notes = { per = "projects", mean = 2 }
'''


# Four key families (issue 16, part 4: Redis), keys per seeded Postgres rows.
FAMILIES = '''
[families.carts]
pattern = "cart:{account_id}"
type = "hash"
ttl = { policy = "required", min = "1h", max = "7d", default = "1d" }
max_elements = 16

[families.task_locks]
pattern = "lock:task:{taskId}"
type = "string"
ttl = { policy = "required", max = "5m", default = "30s" }
max_bytes = 32

[families.feeds]
pattern = "feed:{tenant_id}:{page}"
type = "zset"
ttl = "none"

[families.events]
pattern = "{{shop}}:events"
type = "stream"
ttl = "none"
hash_tag = "shop"
max_elements = 100000
'''

REDIS_PROFILE = '''
[redis]
carts = { per = "accounts", share = 0.5 }
task_locks = { per = "tasks", share = 0.3 }
feeds = { per = "tenants", mean = 2 }
events = { per = "projects", mean = 1 }
'''
