"""verify-restore and MongoDB collections with a TTL (snapshot.py ``expiry``, restore.py ``_ttl_compare``).

Pure: hand-made documents, read through a stand-in that only hands out raw BSON (not a server),
at chosen clock times. The TTL monitor's deletions are played by leaving documents out.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import bson
import pytest
from bson.raw_bson import RawBSONDocument

from sovren_db.compliance.restore import TTL_MARGIN, compare_entry, ttl_cutoff
from sovren_db.compliance.snapshot import expires_at, mongo_entries, ttl_rules
from sovren_db.core.config import Settings

REPO = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc
DAY = dt.timedelta(days=1)
TTL = 30 * 86400
RULES = {"analytics_payloads": [("createdAt", TTL)]}
SNAPSHOT = dt.datetime(2026, 5, 10, 12, 0, tzinfo=UTC)


class Database:
    """Hands out the given documents as raw BSON; knows nothing else of MongoDB."""

    def __init__(self, collections: dict[str, list[dict]]):
        self.collections = collections

    def list_collection_names(self):
        return list(self.collections)

    def get_collection(self, name, codec_options):
        documents = self.collections[name]

        class Collection:
            def find(self, query, batch_size):
                return iter([RawBSONDocument(bson.encode(d)) for d in documents])

        return Collection()


def payload(i: int, expires: dt.datetime | None) -> dict:
    """A payload whose createdAt makes it expire at ``expires`` (None: no createdAt, never expires)."""
    document = {"_id": i, "userId": f"u{i}", "kind": "forecast"}
    if expires is not None:
        document["createdAt"] = expires - dt.timedelta(seconds=TTL)
    return document


# Expired already (the monitor has not run yet), later today, in 3 days, in 20 days, never.
DOCS = [payload(0, SNAPSHOT - dt.timedelta(hours=2)), payload(1, SNAPSHOT + dt.timedelta(hours=3)),
        payload(2, SNAPSHOT + 3 * DAY), payload(3, SNAPSHOT + 20 * DAY), payload(4, None)]


def entry(documents: list[dict], now: dt.datetime) -> dict:
    return mongo_entries(Database({"analytics_payloads": documents}), ["analytics_payloads"], RULES, now=now)[
        "analytics_payloads"]


def compare(found: list[dict], at: dt.datetime, notes: list | None = None):
    return compare_entry("mongo", "analytics_payloads", entry(DOCS, SNAPSHOT), entry(found, at),
                         [] if notes is None else notes)


# -- classification ----------------------------------------------------------------------

def test_the_declared_ttl_of_analytics_payloads_is_read_from_mongo_toml(tmp_path):
    settings = Settings(root=REPO, urls={"postgres": None, "mongo": None, "redis": None},
                        postgres_dir=REPO / "postgres", mongo_dir=REPO / "mongo", redis_dir=REPO / "redis",
                        seeds_dir=REPO / "seeds", migrations_dir=REPO / "migrations")
    assert ttl_rules(settings) == {"analytics_payloads": [("createdAt", 2592000)]}
    assert ttl_rules(Settings(root=tmp_path, urls={}, postgres_dir=tmp_path, mongo_dir=tmp_path / "none",
                              redis_dir=tmp_path, seeds_dir=tmp_path, migrations_dir=tmp_path)) == {}


def test_expiry_is_the_earliest_date_plus_ttl_and_none_without_a_date():
    created = dt.datetime(2026, 1, 1, tzinfo=UTC)
    rules = [("createdAt", 60)]

    def raw(document):
        return bson.encode(document)

    assert expires_at(raw({"createdAt": created}), rules) == created + dt.timedelta(seconds=60)
    assert expires_at(raw({"createdAt": [created + DAY, created]}), rules) == created + dt.timedelta(seconds=60)
    assert expires_at(raw({"createdAt": "2026-01-01"}), rules) is None     # not a date: never deleted
    assert expires_at(raw({"other": created}), rules) is None
    assert expires_at(raw({"meta": {"at": created}}), [("meta.at", 10)]) == created + dt.timedelta(seconds=10)
    assert expires_at(raw({"a": created, "b": created + DAY}), [("b", 0), ("a", 3600)]) == created + dt.timedelta(
        hours=1)
    # dates Python cannot hold, or cannot add the TTL to, count as expiring (compared loosely, never refused)
    from bson.datetime_ms import DatetimeMS

    assert expires_at(raw({"createdAt": DatetimeMS(-10**15)}), rules).year == 1
    assert expires_at(raw({"createdAt": dt.datetime(9999, 12, 31, 23, 59, 30)}), rules).year == 1


def test_the_snapshot_sums_ttl_documents_per_day_of_expiry_and_the_rest_apart():
    snap = entry(DOCS, SNAPSHOT)
    assert snap["count"] == 5
    assert snap["expiry"]["now"] == "2026-05-10T12:00:00+00:00"
    # the expired one counts on the snapshot's day; the one without createdAt on none
    assert {day: sums["count"] for day, sums in snap["expiry"]["days"].items()} == {
        "2026-05-10": 2, "2026-05-13": 1, "2026-05-30": 1}
    # a collection without a TTL is summed as before
    plain = mongo_entries(Database({"executives": DOCS}), ["executives"], RULES, now=SNAPSHOT)["executives"]
    assert set(plain) == {"count", "checksum"} and plain["checksum"] == snap["checksum"]


def test_the_cutoff_is_the_first_midnight_a_margin_after_the_later_read():
    snap, late = entry(DOCS, SNAPSHOT), entry(DOCS, SNAPSHOT + 2 * DAY)
    assert ttl_cutoff(snap, late) == dt.datetime(2026, 5, 13, tzinfo=UTC)
    just_before_midnight = entry(DOCS, dt.datetime(2026, 5, 10, 23, 50, tzinfo=UTC))
    assert TTL_MARGIN > dt.timedelta(minutes=10)
    assert ttl_cutoff(snap, just_before_midnight) == dt.datetime(2026, 5, 12, tzinfo=UTC)


# -- comparison ------------------------------------------------------------------------------

def test_an_identical_restore_is_clean_without_notes():
    notes: list[str] = []
    assert compare(DOCS, SNAPSHOT + dt.timedelta(hours=1), notes) == [] and notes == []


def test_documents_the_ttl_monitor_may_have_deleted_are_compared_by_count():
    notes: list[str] = []
    later = SNAPSHOT + dt.timedelta(hours=4)          # documents 0 and 1 have expired
    assert compare(DOCS[2:], later, notes) == []
    assert notes and "2 of the snapshot's 2 documents expiring (TTL) before 2026-05-11" in notes[0]


def test_a_missing_document_that_cannot_have_expired_is_a_finding():
    (finding,) = compare([d for d in DOCS if d["_id"] != 3], SNAPSHOT + dt.timedelta(hours=4))
    assert "has 2 documents not due to expire (TTL) before 2026-05-11, the snapshot had 3" in finding.message
    (never,) = compare(DOCS[:4], SNAPSHOT + dt.timedelta(hours=4))    # the one without createdAt
    assert "the snapshot had 3" in never.message


def test_a_changed_document_that_cannot_have_expired_is_a_finding():
    changed = [*DOCS[:3], {**DOCS[3], "kind": "edited"}, DOCS[4]]
    (finding,) = compare(changed, SNAPSHOT + dt.timedelta(hours=1))
    assert "checksum differs (changed contents)" in finding.message


def test_more_expiring_documents_than_the_snapshot_had_is_a_finding():
    extra = payload(9, SNAPSHOT + dt.timedelta(hours=1))
    (finding,) = compare([*DOCS, extra], SNAPSHOT + dt.timedelta(hours=1))
    assert "3 documents expiring (TTL) before 2026-05-11, more than the snapshot's 2" in finding.message


def test_expiring_documents_all_there_but_changed_is_a_finding():
    changed = [{**DOCS[0], "kind": "edited"}, *DOCS[1:]]
    (finding,) = compare(changed, SNAPSHOT + dt.timedelta(hours=1))
    assert "documents expiring (TTL) but their checksum differs" in finding.message


def test_a_late_check_counts_every_document_due_by_then():
    later = SNAPSHOT + 5 * DAY                        # documents 0, 1 and 2 may all be gone
    notes: list[str] = []
    assert compare(DOCS[3:], later, notes) == [] and "3 of the snapshot's 3" in notes[0]
    (finding,) = compare([*DOCS[:3], DOCS[4]], later)  # but the one expiring on 2026-05-30 may not
    assert "the snapshot had 2" in finding.message


@pytest.mark.parametrize("side", ["expected", "found"])
def test_an_entry_without_expiry_sums_is_compared_exactly(side):
    with_sums, plain = entry(DOCS, SNAPSHOT), entry(DOCS[1:], SNAPSHOT + dt.timedelta(hours=4))
    plain = {k: v for k, v in plain.items() if k != "expiry"}
    expected, found = (plain, with_sums) if side == "expected" else (with_sums, plain)
    (finding,) = compare_entry("mongo", "analytics_payloads", expected, found, [])
    assert "the snapshot had" in finding.message
