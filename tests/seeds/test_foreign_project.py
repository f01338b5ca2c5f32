"""The issue's test (Postgres): a project that no Sovren code knows is seeded from its declarations alone.

Every constraint is Postgres's own (foreign keys, checks, enums, not null,
unique, partitions): a seed that finishes satisfied all of them. The test also
checks what Postgres cannot: the window, the amounts, children under their
parent, composite self-references inside their parent, reset and determinism.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.seeds.engine import seed

from .foreign_schema import PROFILE, SCHEMA
from .helpers import count

TABLES = ("activity", "regions", "tenants", "accounts", "teams", "memberships", "projects", "tasks", "task_events", "comments",
          "attachments", "invoices", "invoice_lines", "settlements", "api_tokens", "categories", "products",
          "orders", "order_items", "shipments")


@pytest.fixture
def shop(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The copied project with its declarations replaced by the shop's, migrated (Postgres only)."""
    shutil.rmtree(project / "postgres")
    (project / "postgres").mkdir()
    (project / "postgres" / "schema.py").write_text(SCHEMA)
    for revision in (project / "migrations" / "versions").glob("*.py"):
        revision.unlink()
    for profile in (project / "seeds").glob("*.toml"):
        profile.unlink()
    (project / "seeds" / "shop.toml").write_text(PROFILE)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres")
    settings = load_settings(project)
    commands.revision(settings, "shop", autogenerate=True)
    commands.migrate(settings)
    return project


def test_a_foreign_schema_is_seeded_with_every_constraint_satisfied(shop, pg_url):
    report = seed(load_settings(shop), "shop")
    counts = report.stores["postgres"].counts
    assert set(TABLES) <= set(counts) and all(counts[t] > 0 for t in TABLES), counts
    assert 0 < counts["activity"] < 3 * 25   # not in the profile: one per tenant (its nullable foreign key)
    assert counts["regions"] == 6 and counts["tenants"] == 25 and counts["categories"] == 8
    for table in TABLES:
        assert count(pg_url, f"SELECT count(*) FROM {table}") == counts[table], table
    with psycopg.connect(pg_url) as conn:
        one = conn.execute
        assert one("SELECT count(*) FROM task_events WHERE happened_at > now() "
                   "OR happened_at < now() - interval '7 months'").fetchone()[0] == 0
        assert one("SELECT count(*) FROM teams t JOIN teams p ON (p.tenant_id, p.team_no) = "
                   "(t.tenant_id, t.parent_team_no)").fetchone()[0] > 0          # composite self-references
        assert one("SELECT count(*) FROM memberships m JOIN accounts a USING (account_id) "
                   "WHERE a.tenant_id <> m.tenant_id").fetchone()[0] == 0       # an account of the team's tenant
        assert one("SELECT count(*) FROM tasks WHERE parent_task_id IS NOT NULL").fetchone()[0] > 0
        assert one("SELECT count(*) FROM tasks WHERE title !~ '^(Fix|Ship|Review|Plan|Test) item [0-9]+$'"
                   ).fetchone()[0] == 0                                          # the user's generator
        assert one("SELECT count(*) FROM orders WHERE status <> 'open'").fetchone()[0] == 0   # server default
        assert one("SELECT min(unit_price) >= 1 AND max(unit_price) <= 250 FROM invoice_lines").fetchone()[0]
        assert one("SELECT count(*) FROM settlements WHERE card_number IS NOT NULL").fetchone()[0] == 0
        per_tenant = one("SELECT count(*)::float / 25 FROM teams").fetchone()[0]
        assert 1.5 < per_tenant < 4.5


def test_the_foreign_seed_is_deterministic_and_reset_removes_it(shop, pg_url):
    settings = load_settings(shop)
    seed(settings, "shop")
    query = "SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {} t"
    first = {t: count(pg_url, query.format(t)) for t in ("accounts", "tasks", "invoice_lines", "order_items")}
    again = seed(settings, "shop", reset=True)
    assert again.stores["postgres"].deleted["accounts"] == again.stores["postgres"].counts["accounts"]
    assert {t: count(pg_url, query.format(t)) for t in first} == first


def test_documents_come_from_the_collections_validators_and_reference_seeded_rows(shop, pg_url, monkeypatch):
    """MongoDB is declared but has no server here: --validate-all generates every document and passes it
    through the offline $jsonSchema validator, as the seed would before writing it."""
    import json

    from sovren_db.seeds import documents

    from .foreign_schema import COLLECTIONS, MONGO_PROFILE

    for name, schema in COLLECTIONS.items():
        (shop / "mongo" / f"{name}.schema.json").write_text(json.dumps(schema))
        (shop / "mongo" / f"{name}.toml").write_text('validationLevel = "strict"\nvalidationAction = "error"\n')
    (shop / "seeds" / "shop.toml").write_text(PROFILE + MONGO_PROFILE)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,mongo")
    settings = load_settings(shop)
    commands.revision(settings, "collections", autogenerate=True)
    commands.migrate(settings)
    made: dict[str, list] = {}
    original = documents.documents_of
    monkeypatch.setattr(documents, "documents_of", lambda name, block: made.setdefault(name, []).extend(
        found := original(name, block)) or found)
    report = seed(settings, "shop", validate_all=True)
    assert {n: report.validated[n] > 0 for n in COLLECTIONS} == dict.fromkeys(COLLECTIONS, True), report.validated
    accounts = {r[0]: r[1] for r in psycopg.connect(pg_url).execute("SELECT account_id, tenant_id FROM accounts")}
    reviews = made["reviews"]
    assert all(accounts[d["accountId"]] == d["tenantId"] for d in reviews)     # the account's own tenant
    assert all(1 <= d["stars"] <= 5 and set(d["meta"]) == {"lang", "tags"} for d in reviews)
    assert abs(len(reviews) / len(accounts) - 1.5) < 0.4
    assert {d["code"][0].isupper() for d in made["project_notes"]} == {True}



def test_keys_come_from_the_families_and_exist_only_for_seeded_rows(shop, pg_url, redis_url, monkeypatch):
    import redis

    from .foreign_schema import FAMILIES, REDIS_PROFILE

    shutil.rmtree(shop / "redis")
    (shop / "redis").mkdir()
    (shop / "redis" / "shop.toml").write_text(FAMILIES)
    (shop / "seeds" / "shop.toml").write_text(PROFILE + REDIS_PROFILE)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,redis")
    monkeypatch.setenv("REDIS_URL", redis_url)
    settings = load_settings(shop)
    commands.revision(settings, "families", autogenerate=True)
    commands.migrate(settings)
    report = seed(settings, "shop")
    counts = report.stores["redis"].counts
    assert all(counts[n] > 0 for n in ("carts", "task_locks", "feeds", "events")), counts
    client = redis.Redis.from_url(redis_url)
    with psycopg.connect(pg_url) as conn:
        accounts = {str(r[0]) for r in conn.execute("SELECT account_id FROM accounts")}
        tasks = {str(r[0]) for r in conn.execute("SELECT task_id FROM tasks")}
    carts = [k.decode().split(":")[1] for k in client.scan_iter(match="cart:*")]
    locks = [k.decode().rsplit(":", 1)[1] for k in client.scan_iter(match="lock:task:*")]
    assert carts and set(carts) <= accounts and locks and set(locks) <= tasks
    assert all(0 < client.ttl(f"cart:{c}") <= 86400 and client.type(f"cart:{c}") == b"hash" for c in carts[:20])
    assert client.xlen("{shop}:events") == counts["events"]
    assert seed(settings, "shop").status == "already seeded"
    again = seed(settings, "shop", reset=True)
    assert again.stores["redis"].deleted["carts"] == counts["carts"]
    assert again.stores["redis"].deleted["events"] == counts["events"]
