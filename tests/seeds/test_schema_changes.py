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


def test_a_required_field_added_to_a_collection_and_a_field_removed_are_followed(triad, pg_url, monkeypatch):
    """Sovren's own generators write communications; the declaration moves under them (no code changed)."""
    import json

    path = triad / "mongo" / "communications.schema.json"
    schema = json.loads(path.read_text())
    schema["required"].append("channel")
    schema["properties"]["channel"] = {"enum": ["email", "sms", "push"]}
    schema["required"].remove("recipient")
    del schema["properties"]["recipient"]
    path.write_text(json.dumps(schema, indent=2))
    moved(triad)
    report = seed(load_settings(triad), "ci", validate_all=True)   # every document through the validator
    assert report.validated["communications"] > 0

