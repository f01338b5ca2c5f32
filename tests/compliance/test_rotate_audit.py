"""``rotate-key`` leaves neither a key nor the cipher options in the immutable audit_log.

``payments`` is audited: its trigger records the statement text (``current_query()``)
of every UPDATE, so rotation must bind the key *and* the pgcrypto options.
"""

from __future__ import annotations

import psycopg
import pytest

from sovren_db.compliance.rotate import KeySource, rotate
from sovren_db.postgres.declared import load_schema
from sovren_db.postgres.state import Encrypted

from .support import WRITTEN_SINCE, last_event
from .test_rotate import KEY_A, KEY_B, SEED_KEY, decrypt_in_place, decrypted, keys, tokens  # noqa: F401

pytestmark = pytest.mark.postgres


def rotation_events(pg_url: str, after: list[int]) -> list[tuple[str, str, str]]:
    """(action, query, the whole row as text) of the audit events written since the position ``after``."""
    with psycopg.connect(pg_url) as conn:
        return conn.execute(f"SELECT action, query, t::text FROM audit_log AS t WHERE {WRITTEN_SINCE} "
                            "ORDER BY event_id", (after,)).fetchall()


def secrets_in(events: list[tuple[str, str, str]], *texts: str) -> list[str]:
    return [text for text in texts for _, _, row in events if text in row]


@pytest.mark.parametrize("first_encryption", [False, True], ids=["rotation", "first-encryption"])
def test_rotation_writes_neither_key_nor_cipher_options_to_the_audit_log(migrated, tokens, keys,  # noqa: F811
                                                                         first_encryption):
    options = [m.options for m in load_schema(migrated.settings.postgres_dir).of(Encrypted)]
    assert options == ["cipher-algo=aes256"]
    if first_encryption:
        decrypt_in_place(migrated.pg_url)
    before = last_event(migrated.pg_url)
    old = None if first_encryption else KeySource("old", env="KEY_SEED")
    result = rotate(migrated.settings, old=old, new=KeySource("new", env="KEY_A"), batch_size=7)
    assert result.exit_code == 0 and result.data["columns"][0]["rotated"] == len(tokens)
    assert decrypted(migrated.pg_url, KEY_A) == tokens
    events = rotation_events(migrated.pg_url, before)
    updates = [query for action, query, _ in events if action == "UPDATE"]
    assert len(updates) == len(tokens)                       # one audited event per re-encrypted row ...
    assert all("pgp_sym_encrypt" in query for query in updates)   # ... recording the rotation's statement
    assert secrets_in(events, KEY_A, KEY_B, SEED_KEY, *options, "cipher-algo") == []
