"""The pre-validation catches a generator bug as its first offending record (no server here)."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest

from sovren_db.mongo.declared import load_declared
from sovren_db.redis.declared import load_declarations
from sovren_db.seeds import redis_keys
from sovren_db.seeds.documents import documents_of
from sovren_db.seeds.families import keys_of
from sovren_db.seeds.plan import Plan
from sovren_db.seeds.prevalidate import DocumentCheck, KeyCheck, SeedRejected
from sovren_db.seeds.profiles import load_profile

REPO = Path(__file__).resolve().parents[2]
COLLECTIONS = load_declared(REPO / "mongo").collections
FAMILIES = load_declarations(REPO / "redis").families


@pytest.fixture(scope="module")
def block():
    from tests.seeds.test_generation import plan_of

    return plan_of().block(0)


def spoil(documents: list[dict], index: int, **changes) -> list[dict]:
    documents[index] = {**documents[index], **changes}
    return documents


def test_a_document_breaking_its_schema_is_reported_with_collection_index_and_reason(block):
    documents = spoil(documents_of("executives", block), 7, skills=["pricing", "pricing"])
    with pytest.raises(SeedRejected) as caught:
        DocumentCheck(COLLECTIONS).check("executives", documents)
    error = caught.value
    assert (error.store, error.where, error.index) == ("mongo", "collection executives", 7)
    assert "/skills" in error.reason and "non-unique" in error.reason
    assert documents[7]["executiveId"] in str(error)
    assert str(error).startswith("Seed data rejected before anything was written: mongo collection executives, "
                                 "record 7:")


def test_record_indexes_count_across_blocks(block):
    check = DocumentCheck(COLLECTIONS)
    good = documents_of("communications", block)
    check.check("communications", good)
    with pytest.raises(SeedRejected) as caught:
        check.check("communications", spoil(documents_of("communications", block), 2, status="bounced"))
    assert caught.value.index == len(good) + 2
    assert "bounced" in caught.value.reason


@pytest.mark.parametrize("field, value, reason", [
    ("userId", "42", "does not match"),
    ("timestamp", "2026-11-01", "bsonType date"),
    ("extra", 1, "Additional properties"),
])
def test_each_kind_of_schema_violation_is_caught(block, field, value, reason):
    with pytest.raises(SeedRejected, match=reason):
        DocumentCheck(COLLECTIONS).check("communications", spoil(documents_of("communications", block), 0,
                                                                   **{field: value}))


def redis_reject(batch: redis_keys.KeyBatch) -> SeedRejected:
    with pytest.raises(SeedRejected) as caught:
        KeyCheck(FAMILIES).check(batch)
    assert caught.value.store == "redis"
    return caught.value


def test_a_key_without_the_ttl_its_family_requires(block):
    batch = keys_of("session", block)
    error = redis_reject(replace(batch, ttl=None))
    assert (error.where, error.index) == ("family session", 0)
    assert "gets no TTL but the family requires one" in error.reason


def test_a_ttl_outside_the_family_bounds_names_the_bound(block):
    batch = keys_of("session", block)
    ttls = [batch.ttl] * len(batch)
    ttls[3] = 60
    error = redis_reject(replace(batch, ttl=ttls))
    assert error.index == 3 and "below the family's minimum 5m" in error.reason
    assert redis_reject(replace(batch, ttl=90 * 86400)).reason.endswith("above the family's maximum 30d")


def test_a_key_of_another_family_or_of_none(block):
    batch = keys_of("session", block)
    keys = list(batch.keys)
    keys[2] = b"session:devices:" + keys[2].split(b":")[1]
    error = redis_reject(replace(batch, keys=keys))
    assert error.index == 2 and "belongs to family session_devices, not session" in error.reason
    keys[2] = b"sessions:" + keys[2]
    assert "matches no declared key family" in redis_reject(replace(batch, keys=keys)).reason


def test_a_value_of_the_wrong_type_or_size(block):
    batch = keys_of("session", block)
    assert "would be a hash but the family is declared string" in redis_reject(replace(batch, kind="hash")).reason
    values = list(batch.values)
    values[1] = b"x" * 5000
    error = redis_reject(replace(batch, values=values))
    assert error.index == 1 and "above max_bytes 4,096" in error.reason
    devices = keys_of("session_devices", block)
    members = list(devices.values)
    members[0] = []
    assert "is an empty set" in redis_reject(replace(devices, values=members)).reason


def test_a_ttl_on_a_family_that_never_expires(block):
    batch = keys_of("comms_outbox", block)
    assert "never expire" in redis_reject(replace(batch, ttl=60)).reason


def big_plan(users: int, thin: float = 1.0) -> Plan:
    """``users`` users with the ci amounts (``thin`` times the means, so that tests stay quick)."""
    from tests.seeds.test_generation import plan_of

    plan = plan_of(users=users, seed=1)
    documents = {n: replace(d, amount=d.amount * thin) if n in ("executives", "communications") else d
                 for n, d in plan.profile.documents.items()}
    return replace(plan, profile=replace(plan.profile, documents=documents))


def test_blocks_checked_in_parallel_find_the_same_first_record_as_in_order(monkeypatch):
    from sovren_db.seeds import prevalidate

    plan = big_plan(3 * 8192, thin=0.02)
    seeded = {name: FAMILIES[name] for name in plan.profile.families}
    collections = {name: COLLECTIONS[name] for name in plan.profile.documents}
    monkeypatch.setattr(prevalidate, "PARALLEL_FROM_DOCUMENTS", 10**12)
    in_order = prevalidate.check_blocks(plan, collections, seeded)
    monkeypatch.setattr(prevalidate, "PARALLEL_FROM_DOCUMENTS", 1)
    assert prevalidate.check_blocks(plan, collections, seeded) == in_order
    assert in_order["users"] == 0 and in_order["executives"] > 1000 and in_order["session"] > 10000


def test_the_first_rejection_is_indexed_in_the_whole_seed_not_its_block():
    from collections import Counter

    from sovren_db.seeds.prevalidate import _combine

    blocks = [(Counter(communications=10), Counter(), None),
              (Counter(communications=4), Counter(), ("mongo", "collection communications", 3, "bad", "communications")),
              (Counter(communications=7), Counter(), ("mongo", "collection communications", 0, "worse", "communications"))]
    with pytest.raises(SeedRejected) as caught:
        _combine(iter(blocks), {}, lambda n: None)
    assert (caught.value.index, caught.value.reason) == (13, "bad")


def test_a_stream_over_its_limit_across_blocks_names_the_first_entry_over_it():
    from sovren_db.seeds.prevalidate import check_blocks

    plan = big_plan(2 * 8192)
    family = replace(FAMILIES["comms_outbox"], max_elements=5000)
    per_block = [len(keys_of("comms_outbox", plan.block(i))) for i in range(2)]
    assert per_block[0] < 5000 < sum(per_block)
    with pytest.raises(SeedRejected) as caught:
        check_blocks(plan, {}, {"comms_outbox": family})
    assert caught.value.index == 5000 and "more than 5,000 entries" in caught.value.reason


def test_a_document_pymongo_cannot_encode_is_rejected_before_anything_is_written():
    # the offline validator reads a uuid.UUID as binData, but pymongo 4 refuses to encode one
    # without a uuidRepresentation: caught here instead of halfway through insert_many
    import uuid

    from sovren_db.mongo.state import CollectionSpec

    blobs = CollectionSpec("blobs", validator={"$jsonSchema": {"bsonType": "object",
                                                               "properties": {"b": {"bsonType": "binData"}}}})
    check = DocumentCheck({"blobs": blobs})
    check.check("blobs", [{"b": b"\x01"}])
    with pytest.raises(SeedRejected) as caught:
        check.check("blobs", [{"b": b"\x01"}, {"b": uuid.uuid4()}])
    assert caught.value.index == 2 and "cannot be encoded as BSON" in caught.value.reason
