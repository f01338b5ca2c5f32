"""Seeding Postgres afresh while MongoDB still holds an earlier seed's documents (engine.py, mongo_load.py).

The earlier documents must go first: kept, they would pass for "already there" (duplicate
keys) or sit beside the new ones (their ``_id`` holds another anchor's creation time). The
pure tests drive ``Seeder.run`` with its loaders replaced and a stand-in that records the
deletions sent to MongoDB (not a server); the last one seeds a real mongod twice (skipped,
saying why, where there is none).
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest

from sovren_db.seeds import manifest as manifests
from sovren_db.seeds.engine import NoProgress, Seeder, StoreResult
from sovren_db.seeds.mongo_load import SEEDED_USER_ID
from sovren_db.seeds.profiles import load_profile

REPO = Path(__file__).resolve().parents[2]
ALL_COLLECTIONS = ["executives", "communications", "scenario_simulations", "analytics_payloads"]
ANCHOR = dt.date(2026, 5, 1)


class Deletions:
    """Stands in for a pymongo Database: records each ``delete_many`` and answers a canned count."""

    def __init__(self, events: list, deleted: int = 3):
        self.events, self.deleted = events, deleted

    def __getitem__(self, name):
        owner = self

        class Collection:
            def delete_many(self, query):
                owner.events.append(("delete", name, query))
                return SimpleNamespace(deleted_count=owner.deleted)

        return Collection()


class Connection:
    def rollback(self):
        pass


def seeder(monkeypatch, events: list, found=None, mongo: bool = True, deleted: int = 3) -> Seeder:
    """A Seeder whose Postgres side, validation and loaders only record that they ran."""
    monkeypatch.setattr(manifests, "read", lambda conn: found)
    run = object.__new__(Seeder)
    run.settings, run.runtime, run.conn, run.progress = None, None, Connection(), NoProgress()
    run.targets = SimpleNamespace(all_collections=ALL_COLLECTIONS, names=lambda store: [], graph=None,
                                  document_keys={}, declarations={})
    run.backends = {"mongo": SimpleNamespace(db=Deletions(events, deleted)) if mongo else None, "redis": None}
    run._anchor = lambda *args: ANCHOR
    run._validate = lambda plan, report: events.append("validate")
    run._gone = lambda found, store, report: False   # the stores still hold what the manifest says
    run._reset = lambda report: events.append("reset")
    for store in ("postgres", "mongo"):
        run.__dict__[f"_load_{store}"] = lambda plan, store=store: events.append(f"load {store}") or {}
    return run


def profile():
    return load_profile(REPO / "seeds", "ci")


def test_a_fresh_postgres_seed_deletes_earlier_seeded_documents_before_loading_anything(monkeypatch):
    events: list = []
    report = seeder(monkeypatch, events).run(profile(), 1, 1, reset=False)
    deletions = [e for e in events if e[0] == "delete"]
    assert [name for _, name, _ in deletions] == ALL_COLLECTIONS      # every declared collection, not only seeded
    assert all(query == {"userId": SEEDED_USER_ID} for _, _, query in deletions)
    assert events.index(deletions[-1]) < events.index("load postgres") < events.index("load mongo")
    assert events[0] == "validate"                                     # nothing is deleted for an invalid seed
    assert any("12 seeded documents of an earlier seed were deleted" in note for note in report.notes)
    assert report.stores["mongo"].deleted == {}                        # that is what --reset removed


def test_no_note_when_there_was_nothing_to_delete(monkeypatch):
    events: list = []
    report = seeder(monkeypatch, events, deleted=0).run(profile(), 1, 1, reset=False)
    assert len([e for e in events if e[0] == "delete"]) == 4 and report.notes == []


def test_finishing_an_interrupted_seed_keeps_the_documents_already_loaded(monkeypatch):
    ci = profile()
    found = manifests.Manifest(ci.name, ci.fingerprint, 1, 1, ANCHOR, {"postgres": {"users": 120}})
    events: list = []
    report = seeder(monkeypatch, events, found=found).run(ci, 1, 1, reset=False)
    assert events == ["validate", "load mongo"]
    assert report.stores["postgres"].state == "already seeded"


def test_reset_deletes_through_the_reset_path_only(monkeypatch):
    events: list = []
    seeder(monkeypatch, events).run(profile(), 1, 1, reset=True)
    assert events == ["validate", "reset", "load postgres", "load mongo"]


def test_without_mongodb_configured_nothing_is_deleted(monkeypatch):
    events: list = []
    report = seeder(monkeypatch, events, mongo=False).run(profile(), 1, 1, reset=False)
    assert events == ["validate", "load postgres"]
    assert report.stores["mongo"] == StoreResult("not configured")


def test_reset_deletes_seeded_documents_of_every_declared_collection(monkeypatch):
    from sovren_db.seeds.engine import SeedReport

    events: list = []
    run = seeder(monkeypatch, events)
    del run.__dict__["_reset"]

    class Conn:
        def execute(self, *args):
            return self

        def commit(self):
            pass

    run.conn = Conn()
    run.targets.graph = SimpleNamespace(names=lambda: [], declared=())
    run.targets.role, run.targets.all_families = "migrator", []
    monkeypatch.setattr("sovren_db.seeds.engine.act_as", lambda conn, role: None)
    monkeypatch.setattr("sovren_db.seeds.engine.delete_rows", lambda conn, tables, graph, advance: {})
    monkeypatch.setattr(manifests, "forget", lambda conn: None)
    report = SeedReport("ci", 1, 1, "2026-05-01", "seeded")
    run._reset(report)
    assert [name for _, name, _ in events] == ALL_COLLECTIONS
    assert report.stores["mongo"].deleted == dict.fromkeys(ALL_COLLECTIONS, 3)


# -- a real mongod ------------------------------------------------------------------------------

@pytest.mark.postgres
@pytest.mark.redis
@pytest.mark.mongo
def test_seeding_a_fresh_postgres_a_month_later_leaves_no_stale_or_doubled_documents(
        mongo_url, triad, postgres_server_url, monkeypatch):
    import pymongo

    from sovren_db import commands
    from sovren_db.core.config import load_settings
    from sovren_db.core.urls import with_database
    from sovren_db.seeds.engine import seed

    settings = load_settings(triad)
    this_month = dt.date.today().replace(day=1)
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    original = Seeder._anchor
    monkeypatch.setattr(Seeder, "_anchor", lambda self, *args: last_month)
    seed(settings, "ci")                                   # last month's seed, in Postgres and MongoDB
    monkeypatch.setattr(Seeder, "_anchor", original)

    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    db = client[settings.mongo_database]
    earlier = {name: set(db[name].distinct("_id")) for name in ALL_COLLECTIONS}
    assert all(earlier.values())
    other = f"t_{uuid.uuid4().hex[:12]}"
    admin = with_database(postgres_server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{other}"')
    try:
        fresh = settings.with_urls(postgres=with_database(postgres_server_url, other))
        commands.migrate(fresh)
        report = seed(fresh, "ci")                          # this month's, over a fresh Postgres
        assert report.anchor == this_month.isoformat()
        loaded = report.stores["mongo"].counts
        for name in ALL_COLLECTIONS:
            ids = db[name].distinct("_id")
            assert db[name].count_documents({}) == len(ids)                      # nothing twice
            if name == "analytics_payloads":     # the TTL monitor may delete a payload of the month's first day
                assert 0 < len(ids) <= loaded[name]
            else:
                assert len(ids) == loaded[name]
            assert earlier[name].isdisjoint(ids)                                  # nothing stale
        assert any("of an earlier seed were deleted" in note for note in report.notes)
    finally:
        client.close()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other}" WITH (FORCE)')
