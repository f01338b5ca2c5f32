"""Generated data, without servers: deterministic, consistent across the stores, valid for its declarations."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import replace
from pathlib import Path
from statistics import mean

import bson
import pytest

from sovren_db.mongo.declared import load_declared
from sovren_db.redis.declared import load_declarations
from sovren_db.mongo.validate import validator_schema
from sovren_db.seeds import vocab
from sovren_db.seeds.documents import documents_of
from sovren_db.seeds.families import keys_of
from sovren_db.seeds.draws import SEEDED_UUID, Draws, is_seeded
from sovren_db.seeds.plan import BLOCK_USERS, Plan
from sovren_db.postgres.declared import load_schema
from sovren_db.postgres.state import PartitionRule
from sovren_db.seeds.declared import build_graph
from sovren_db.seeds.postgres_rows import TableRows
from sovren_db.seeds.prevalidate import DocumentCheck, KeyCheck
from sovren_db.seeds.profiles import load_profile, parse_profile

REPO = Path(__file__).resolve().parents[2]
ANCHOR = dt.date(2026, 11, 1)
MONTHS = 4  # operations: this month and the 3 the PartitionRule keeps ahead
SCHEMA = load_schema(REPO / "postgres")
COLLECTIONS = load_declared(REPO / "mongo").collections
FAMILIES = load_declarations(REPO / "redis").families

# The ci profile at seed 1, anchored at 2026-11: these bytes on every machine and Python version.
# Changing a generator changes this digest on purpose: update it, and say so in the commit.
CI_DIGEST = "2ae74e8124443661b70ab73d662d5a0fd8a553be4f4fe41e3f05eae706a85869"


def declarations_of(profile) -> dict:
    """What the seed's Targets give the plan: each collection's $jsonSchema, each family's declaration."""
    found = {n: validator_schema(COLLECTIONS[n].validator) or {} for n in profile.documents}
    return {**found, **{n: FAMILIES[n] for n in profile.families}}


def graph_of(profile):
    return build_graph(SCHEMA, profile, {r.table: r.column for r in SCHEMA.of(PartitionRule)})


def plan_of(name: str = "ci", *, seed: int | None = None, scale: int = 1, anchor: dt.date = ANCHOR,
            users: int | None = None) -> Plan:
    profile = load_profile(REPO / "seeds", name)
    if users:
        profile = replace(profile, users=users, tables={**profile.tables, "users": replace(
            profile.tables["users"], rows=users)})
    return Plan(profile, scale, profile.seed if seed is None else seed, anchor, graph=graph_of(profile),
                declarations=declarations_of(profile))


def tables_of(plan: Plan) -> list[TableRows]:
    return [TableRows.of(t) for t in plan.graph.tables]


def everything(plan: Plan):
    """(table or collection or family, records) of every block, in a fixed order."""
    for block in plan.blocks():
        for table in tables_of(plan):
            yield table.table, table.lines(block)
        for name in plan.profile.documents:
            yield name, documents_of(name, block)
        for name in plan.profile.families:
            batch = keys_of(name, block)
            yield name, list(zip(batch.keys, batch.values, [batch.ttl_of(i) for i in range(len(batch))]))


def digest(plan: Plan) -> str:
    out = hashlib.sha256()
    for name, records in everything(plan):
        out.update(name.encode())
        for record in records:
            out.update(bson.encode(record) if isinstance(record, dict) else repr(record).encode())
    return out.hexdigest()


def rows(plan: Plan, table: str) -> list[list[str]]:
    spec = next(t for t in tables_of(plan) if t.table == table)
    return [line.split("\t") for block in plan.blocks() for line in spec.lines(block)]


def test_same_profile_scale_and_seed_give_the_same_bytes():
    assert digest(plan_of()) == digest(plan_of())


def test_the_ci_data_is_pinned_across_machines():
    assert digest(plan_of()) == CI_DIGEST


def test_streams_are_standard_shake256_not_python_random():
    assert Draws(1, 0).bytes("users.id", 4) == hashlib.shake_256(b"sovren-seed/1/0/users.id").digest(4)
    assert Draws(1, 0).uuids("users.id", 1) == ["5eed18f5-c931-8435-a181-e3d44a524232"]


def test_another_seed_or_anchor_gives_other_data():
    assert digest(plan_of(seed=2)) != digest(plan_of())
    assert digest(plan_of(anchor=dt.date(2026, 12, 1))) != digest(plan_of())


def test_a_bigger_scale_starts_with_the_smaller_one():
    small, big = rows(plan_of(), "users"), rows(plan_of(scale=3), "users")
    assert len(big) == 3 * len(small)
    assert big[:len(small)] == small


def test_blocks_are_independent_and_cover_every_user():
    profile = parse_profile("big", REPO / "big.toml", {"users": BLOCK_USERS + 10})
    plan = Plan(profile, 1, 5, ANCHOR, graph=graph_of(profile))
    assert len(rows(plan, "users")) == BLOCK_USERS + 10 and len(rows(plan, "operations")) > BLOCK_USERS
    assert [b.size for b in plan.blocks()] == [BLOCK_USERS, 10]
    ids = [i for b in plan.blocks() for i in b.rows("users").values("user_id")]
    assert len(set(ids)) == BLOCK_USERS + 10
    assert all(is_seeded(i) for i in ids)


def test_every_id_is_a_seeded_version_8_uuid():
    plan = plan_of()
    for table in tables_of(plan):
        for row in rows(plan, table.table):
            assert SEEDED_UUID.fullmatch(row[0]), (table.table, row[0])
    assert not is_seeded("5eed18f5-c931-4435-a181-e3d44a524232")  # a version 4 id with the same prefix


def test_usernames_and_emails_are_unique_and_use_example_domains():
    users = rows(plan_of("dev", users=3000), "users")
    assert len({u[1] for u in users}) == len({u[3] for u in users}) == len(users)
    assert {u[3].split("@")[1] for u in users} <= set(vocab.DOMAINS)
    assert all(d.rsplit(".", 2)[-2] == "example" for d in vocab.DOMAINS)


def test_every_time_falls_in_the_year_up_to_the_anchor_never_after():
    plan = plan_of()
    for table in plan.graph.tables:
        spec = TableRows.of(table)
        times = [i for i, (_, kind) in enumerate(spec.columns) if kind == "timestamp"]
        values = [row[i] for row in rows(plan, table.name) for i in times if row[i] != "\\N"]
        assert values and min(values) >= "2025-11-01 00:00:00" and max(values) < "2026-11-01 00:00:00", table.name
    months = {row[5][:7] for row in rows(plan, "operations")}
    assert len(months) == 12


def test_a_window_in_the_profile_moves_every_date(tmp_path):
    profile = replace(load_profile(REPO / "seeds", "ci"), window=("2024-01-01", "+2m"))
    plan = Plan(profile, 1, 1, ANCHOR, graph=graph_of(profile))
    executed = [row[5] for row in rows(plan, "operations")]
    assert min(executed) >= "2024-01-01" and max(executed) < "2027-01-01" and max(executed) >= "2026-11-01"


def test_payments_hold_no_card_data_and_belong_to_their_transactions_user():
    plan = plan_of()
    transactions = {r[0]: r for r in rows(plan, "transactions")}
    subscriptions = {r[0]: r for r in rows(plan, "subscriptions")}
    payments = rows(plan, "payments")
    assert len(payments) == len(transactions)   # share 1.0 in ci
    for payment in payments:
        assert payment[1] == transactions[payment[2]][1]     # the ancestor's row, not any user
        assert payment[8] == "\\N" and (payment[7] == "\\N" or len(payment[7]) == 4)
    for tx in transactions.values():   # a sibling under the same user: one of the user's subscriptions
        assert tx[2] == "\\N" or subscriptions[tx[2]][1] == tx[1]
    assert all(tx[5] in ("pending", "succeeded", "failed", "refunded") for tx in transactions.values())


def test_documents_and_keys_reference_the_seeded_users_and_operations():
    plan = plan_of()
    users = {r[0]: r for r in rows(plan, "users")}
    operations = {r[0]: r for r in rows(plan, "operations")}
    block = plan.block(0)
    executives = documents_of("executives", block)
    boards = {uid: {e["executiveId"] for e in executives if e["userId"] == uid} for uid in users}
    for name in ("communications", "scenario_simulations", "analytics_payloads"):
        for document in documents_of(name, block):
            assert document["userId"] in users
            if "operationId" in document:
                assert operations[document["operationId"]][1] == document["userId"]
    simulations = documents_of("scenario_simulations", block)
    assert any(s["executiveIds"] for s in simulations)
    for simulation in simulations:
        assert set(simulation["executiveIds"]) <= boards[simulation["userId"]]
    sessions = keys_of("session", block)
    signed_in = {k.split(b":")[1].decode() for k in sessions.keys}
    assert signed_in and signed_in <= set(users)
    devices = keys_of("session_devices", block)
    assert {k.rsplit(b":", 1)[1].decode() for k in devices.keys} <= signed_in
    queued = {e["messageId"] for e in keys_of("comms_outbox", block).values}
    statuses = keys_of("comms_status", block)
    assert statuses.keys and {k.rsplit(b":", 1)[1].decode() for k in statuses.keys} <= queued
    failed = {c["messageId"] for c in documents_of("communications", block) if c["status"] == "failed"}
    dead = keys_of("comms_dead", block).values
    assert dead and {e["messageId"] for e in dead} <= failed
    cached = keys_of("executive_cache", block)
    by_id = {e["executiveId"]: e for e in executives}
    for key, value in zip(cached.keys, cached.values):
        executive = by_id[key.rsplit(b":", 1)[1].decode()]
        assert value["role"] == executive["role"] and value["skills"] == ",".join(executive["skills"])


def test_times_are_ordered_and_in_the_window():
    block = plan_of().block(0)
    low, high = dt.datetime(2025, 11, 1), dt.datetime(2026, 11, 1)
    for executive in documents_of("executives", block):
        assert low <= executive["createdAt"] <= executive["updatedAt"] < high
    for simulation in documents_of("scenario_simulations", block):
        assert simulation["completedAt"] is None or simulation["createdAt"] <= simulation["completedAt"] < high


@pytest.mark.parametrize("name", ["ci", "dev"])
def test_every_document_and_key_passes_its_declaration(name):
    plan = plan_of(name, users=400)
    documents, keys = DocumentCheck(COLLECTIONS), KeyCheck(FAMILIES)
    block = plan.block(0)
    for collection in plan.profile.documents:
        documents.check(collection, documents_of(collection, block))
    for family in plan.profile.families:
        keys.check(keys_of(family, block))
    assert min(documents.seen.values()) > 0 and min(keys.seen.values()) > 0


def test_keys_follow_the_declared_ttl_rules():
    block = plan_of().block(0)
    assert keys_of("session", block).ttl == FAMILIES["session"].ttl.default
    assert keys_of("comms_outbox", block).ttl is None


def test_profile_amounts_are_honoured_on_average():
    plan = plan_of("dev", users=3000)
    users = rows(plan, "users")
    for table in ("operations", "transactions"):
        per_user = len(rows(plan, table)) / len(users)
        assert abs(per_user - plan.graph.table(table).amount) < 0.3, table
    paid = rows(plan, "transactions")
    assert abs(len(rows(plan, "payments")) / len(paid) - plan.graph.table("payments").amount) < 0.03
    signed_in = mean(len(keys_of("session", b)) / b.size for b in plan.blocks())
    assert abs(signed_in - plan.profile.families["session"].amount) < 0.03


def test_vocabularies_need_no_escaping_in_copy_text_or_json():
    words = [w for name in dir(vocab) if name.isupper() for w in _strings(getattr(vocab, name))]
    assert words and all(not set(w) & set('\t\n\r\\"') for w in words)


def test_distinct_picks_are_distinct():
    picks = Draws(3, 0).distinct("x", [5] * 500, vocab.SKILLS)
    assert all(len(set(p)) == 5 for p in picks)


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, (tuple, list, frozenset)):
        return [s for v in value for s in _strings(v)]
    return []


@pytest.mark.parametrize("cents", [0, 5, 50, 99, 100, 2900, 4970, 10000, 999999, 1000000, 123456789, 10000000000])
def test_binary_numeric_matches_psycopgs_own_encoder(cents):
    from decimal import Decimal

    from psycopg.types.numeric import DecimalBinaryDumper

    from sovren_db.seeds.postgres_rows import _numeric_cents

    expected = bytes(DecimalBinaryDumper(Decimal).dump(Decimal(cents).scaleb(-2).quantize(Decimal("0.01"))))
    assert _numeric_cents(cents)[4:] == expected


def test_a_left_out_field_stays_left_out_in_another_process():
    import pickle

    from sovren_db.seeds.records import MISSING

    assert pickle.loads(pickle.dumps(MISSING)) is MISSING


@pytest.mark.parametrize("entry, where, problem", [
    ('[redis.x]\nper = "nowhere"\nshare = 1.0\n', "redis.x.per", "'nowhere' is not a table, collection or family"),
    ('[redis.x]\nper = "y"\nshare = 1.0\n[redis.y]\nper = "x"\nshare = 1.0\n', "redis.x.per", "its own ancestor"),
    ('[mongo.executives]\nfields.mood = "word"\n', "mongo.executives.fields.mood", "declares no field 'mood'"),
    ('[mongo.executives]\nfields.updatedAt = { after = "bedtime" }\n', "mongo.executives.fields.updatedAt.after",
     "'bedtime' is not a field of executives"),
    ('[redis.comms_dead]\nwhere = { state = "failed" }\n', "redis.comms_dead.where.state",
     "communications has no field 'state'"),
    ('[mongo.executives]\nfields.name = { from = "users.nickname" }\n', "mongo.executives.fields.name.from",
     "table users has no generated column 'nickname'"),
])
def test_a_record_entry_the_declarations_cannot_serve_names_the_profile_key(tmp_path, entry, where, problem):
    from sovren_db.core.errors import DeclarationError
    from sovren_db.seeds.targets import check_record

    (tmp_path / "ci.toml").write_text((REPO / "seeds" / "ci.toml").read_text())
    (tmp_path / "p.toml").write_text('extends = "ci"\n' + entry)
    profile = load_profile(tmp_path, "p")
    declarations = {**declarations_of(replace(profile, families={
        n: f for n, f in profile.families.items() if n in FAMILIES})), "x": FAMILIES["session"], "y": FAMILIES["session"]}
    with pytest.raises(DeclarationError) as caught:
        for name in [*profile.documents, *profile.families]:
            check_record(profile, name, declarations, graph_of(profile))
    assert (caught.value.where, str(tmp_path / "p.toml") in str(caught.value)) == (where, True)
    assert problem in caught.value.problem
