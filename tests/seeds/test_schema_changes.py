"""Sovren's schema moves (a column dropped or added, a table added); the same profiles seed it, no code changed.

Each test edits the copied project's declarations as a developer would, writes
the revision with autogenerate, migrates, and seeds the ci profile: the new
columns are filled within their constraints, the dropped one is not asked for.
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.seeds.engine import seed

from .helpers import count

G2 = "SELECT count(*) FROM audit_log WHERE hash != encode(digest(event_payload || event_id::text, 'sha256'), 'hex')"


def edit(root: Path, path: str, old: str, new: str) -> None:
    file = root / path
    text = file.read_text()
    assert old in text, old
    file.write_text(text.replace(old, new, 1))


def moved(root: Path) -> None:
    """Write the revision of the edited declarations and migrate to it."""
    settings = load_settings(root)
    commands.revision(settings, "schema moved", autogenerate=True)
    commands.migrate(settings)


def seeded(root: Path, pg_url: str) -> dict[str, int]:
    report = seed(load_settings(root), "ci")
    counts = report.stores["postgres"].counts
    assert counts["users"] == 120 and all(counts[t] > 0 for t in ("operations", "transactions", "payments"))
    assert count(pg_url, G2) == 0   # the audit chain stays valid
    return counts


def test_a_dropped_column_is_not_asked_for(triad, pg_url):
    edit(triad, "postgres/tables.py", '    Column("last_login", TIMESTAMP),\n', "")
    edit(triad, "postgres/privacy.py", ', "last_login"', "")
    moved(triad)
    seeded(triad, pg_url)
    assert count(pg_url, "SELECT count(*) FROM information_schema.columns WHERE column_name = 'last_login'") == 0


def test_a_nullable_column_and_a_not_null_column_with_a_check_are_filled(triad, pg_url):
    edit(triad, "postgres/tables.py", '    Column("last_login", TIMESTAMP),\n',
         '    Column("last_login", TIMESTAMP),\n    Column("nickname", VARCHAR(12)),\n'
         '    Column("seats", BigInteger, nullable=False),\n'
         '    Column("plan_code", CHAR(2), nullable=False),\n'
         '    CheckConstraint("seats BETWEEN 1 AND 250", name="users_seats_check"),\n'
         "    CheckConstraint(\"plan_code IN ('S1', 'M2', 'L3')\", name=\"users_plan_code_check\"),\n")
    moved(triad)
    seeded(triad, pg_url)
    with psycopg.connect(pg_url) as conn:
        low, high, codes, nicknames, nulls, longest = conn.execute(
            "SELECT min(seats), max(seats), array_agg(DISTINCT plan_code ORDER BY plan_code), "
            "count(nickname), count(*) - count(nickname), max(length(nickname)) FROM users").fetchone()
    assert 1 <= low < high <= 250 and codes == ["L3", "M2", "S1"]
    assert nicknames > 0 and nulls > 0 and longest <= 12


def test_a_new_table_is_seeded_per_parent_with_a_text_copy_for_arrays_and_addresses(triad, pg_url):
    edit(triad, "postgres/tables.py", "from sqlalchemy.dialects.postgresql import JSONB, UUID",
         "from sqlalchemy.dialects.postgresql import ARRAY, INET, JSONB, UUID")
    with (triad / "postgres" / "tables.py").open("a") as tables:
        tables.write('''
api_keys = Table(
    "api_keys", metadata,
    Column("key_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.user_id", name="api_keys_user_id_fkey"), nullable=False),
    Column("label", VARCHAR(40), nullable=False),
    Column("token_hash", Text, nullable=False, unique=True),
    Column("scopes", ARRAY(Text), nullable=False),
    Column("last_ip", INET),
    Column("created_at", TIMESTAMP, nullable=False, server_default=NOW),
    Column("revoked", BigInteger, nullable=False, server_default=text("0")),
)
''')
    edit(triad, "postgres/security.py", '"transactions", "payments")\nALL_TABLES',
         '"transactions", "payments", "api_keys")\nALL_TABLES')
    moved(triad)
    counts = seeded(triad, pg_url)
    assert 0.5 * 120 < counts["api_keys"] < 1.5 * 120      # one per user on average (not in the profile)
    with psycopg.connect(pg_url) as conn:
        orphans, scoped, addressed, revoked, future = conn.execute(
            "SELECT count(*) FILTER (WHERE u.user_id IS NULL), count(*) FILTER (WHERE cardinality(scopes) > 0), "
            "count(last_ip), count(*) FILTER (WHERE revoked <> 0), count(*) FILTER (WHERE k.created_at > now()) "
            "FROM api_keys k LEFT JOIN users u USING (user_id)").fetchone()
    assert orphans == 0 and scoped == counts["api_keys"] and addressed > 0
    assert revoked == 0 and future == 0          # a server default is left to the server; no date after now


def edit_schema(root: Path, collection: str, add: dict | None = None, drop: str | None = None) -> None:
    """Make each of ``add`` (field -> schema) required in the collection's $jsonSchema; remove ``drop``."""
    import json

    path = root / "mongo" / f"{collection}.schema.json"
    schema = json.loads(path.read_text())
    for field, spec in (add or {}).items():
        schema["required"].append(field)
        schema["properties"][field] = spec
    if drop:
        schema["required"].remove(drop)
        del schema["properties"][drop]
    path.write_text(json.dumps(schema, indent=2))


def test_a_required_field_added_to_a_collection_and_a_field_removed_are_followed(triad, pg_url, monkeypatch):
    """Sovren's collections are profile data on the generic engine: the declaration moves, no code changes."""
    from sovren_db.seeds import documents

    edit_schema(triad, "communications", add={"channel": {"enum": ["email", "sms", "push"]},
                                              "priority": {"bsonType": "int", "minimum": 1, "maximum": 5}})
    edit_schema(triad, "analytics_payloads", drop="payload")
    moved(triad)
    made: dict[str, list] = {}
    original = documents.documents_of
    monkeypatch.setattr(documents, "documents_of", lambda name, block: made.setdefault(name, []).extend(
        found := original(name, block)) or found)
    report = seed(load_settings(triad), "ci", validate_all=True)   # every document through the validator
    assert report.validated["communications"] == len(made["communications"]) > 0
    assert {d["channel"] for d in made["communications"]} == {"email", "sms", "push"}
    assert {1 <= d["priority"] <= 5 for d in made["communications"]} == {True}
    assert all("payload" not in d for d in made["analytics_payloads"]) and made["analytics_payloads"]


def test_a_field_the_profile_names_but_the_collection_dropped_is_a_declaration_error(triad, pg_url):
    import pytest

    from sovren_db.core.errors import DeclarationError

    edit_schema(triad, "communications", drop="recipient")
    moved(triad)
    with pytest.raises(DeclarationError) as caught:
        seed(load_settings(triad), "ci", validate_all=True)
    assert caught.value.where == "mongo.communications.fields.recipient"
    assert str(triad / "seeds" / "ci.toml") in str(caught.value)
    assert "declares no field 'recipient'" in caught.value.problem


def test_a_new_key_family_named_in_the_profile_is_seeded_for_seeded_users_only(triad, pg_url, redis_url):
    """A family added to redis/ and named in the profile: its keys appear, one per seeded parent, no code."""
    import redis as redis_py

    (triad / "redis" / "presence.toml").write_text(
        '[families.presence]\npattern = "presence:{user_id}:{device}"\ntype = "hash"\n'
        'ttl = { policy = "required", max = "1h", default = "5m" }\nmax_elements = 8\n'
        'description = "Which screen a signed-in user has open, per device."\n')
    with (triad / "seeds" / "ci.toml").open("a") as profile:
        profile.write('\n[redis.presence]\nper = "session"\nshare = 0.5\n'
                      'fields = { userId = {}, screen = { values = ["board", "inbox", "simulations"] }, '
                      'since = { from = "executives.createdAt" } }\n')
    moved(triad)
    report = seed(load_settings(triad), "ci")
    client = redis_py.Redis.from_url(redis_url, decode_responses=True)
    keys = list(client.scan_iter("presence:*"))
    assert len(keys) == report.stores["redis"].counts["presence"] > 0
    users = {str(r[0]) for r in psycopg.connect(pg_url).execute("SELECT user_id FROM users")}
    sessions = {k.split(":", 1)[1] for k in client.scan_iter("session:*") if k.count(":") == 1}
    for key in keys:
        _, user, device = key.split(":")
        value = client.hgetall(key)
        assert user in sessions and user in users and device.startswith("5eed")
        assert value["userId"] == user and value["screen"] in ("board", "inbox", "simulations")
        assert 0 < client.ttl(key) <= 300
    assert seed(load_settings(triad), "ci", reset=True).stores["redis"].deleted["presence"] == len(keys)
