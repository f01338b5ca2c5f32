"""``rotate-key``: batched, resumable re-encryption of payments.provider_token, verified; keys never shown."""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from sovren_db.cli.main import cli
from sovren_db.compliance.rotate import KeySource, decrypt_function, rotate
from sovren_db.postgres.state import Encrypted

pytestmark = pytest.mark.postgres

KEY_A = "first-key-3f9c1e7a-never-printed"
KEY_B = "second-key-b81d44c2-never-printed"
KEY_C = "third-key-77aa0910-never-printed"
SEED_KEY = os.environ.get("SOVREN_DB_ENCRYPTION_KEY") or tomllib.loads(
    (Path(__file__).resolve().parents[2] / "seeds" / "ci.toml").read_text())["encryption_key"]


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def keys(monkeypatch):
    for name, value in (("KEY_A", KEY_A), ("KEY_B", KEY_B), ("KEY_C", KEY_C), ("KEY_SEED", SEED_KEY)):
        monkeypatch.setenv(name, value)


@pytest.fixture
def tokens(migrated) -> dict[str, str]:
    """The seeded provider tokens in clear (the seed encrypts them with the profile's key)."""
    clear = decrypted(migrated.pg_url, SEED_KEY)
    assert clear and None not in clear.values()
    return clear


def decrypt_in_place(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE payments SET provider_token = pgp_sym_decrypt(dearmor(provider_token), %s)", (SEED_KEY,))


def decrypted(pg_url: str, key: str) -> dict[str, str | None]:
    """payment_id -> plaintext under ``key`` (None where it does not decrypt)."""
    name, ddl = decrypt_function(Encrypted("payments", "provider_token"), armored=True)
    with psycopg.connect(pg_url) as conn:
        conn.execute(ddl)
        query = "SELECT payment_id::text, " + name.as_string(conn) + "(provider_token, %s) FROM payments"
        return dict(conn.execute(query, (key,)).fetchall())


def ledger_text(pg_url: str) -> str:
    with psycopg.connect(pg_url) as conn:
        return conn.execute("SELECT COALESCE(string_agg(row_to_json(r)::text, ''), '') "
                            "FROM sovren_db.key_rotations r").fetchone()[0]


def no_key_in(*texts: str) -> bool:
    return not any(key in text for text in texts for key in (KEY_A, KEY_B, KEY_C))


def test_first_encryption_then_rotation_round_trips(migrated, tokens, keys, tmp_path):
    decrypt_in_place(migrated.pg_url)
    first = run("rotate-key", "--new-key-env", "KEY_A")
    assert first.exit_code == 0, first.output
    assert decrypted(migrated.pg_url, KEY_A) == tokens
    with psycopg.connect(migrated.pg_url) as conn:
        armored = conn.execute("SELECT bool_and(provider_token LIKE '-----BEGIN PGP MESSAGE-----%') FROM payments"
                               ).fetchone()[0]
    assert armored is True
    key_file = tmp_path / "new.key"
    key_file.write_text(KEY_B + "\n")
    second = run("rotate-key", "--old-key-env", "KEY_A", "--new-key-file", str(key_file), "--batch-size", "7",
                 "--format", "json")
    assert second.exit_code == 0, second.output
    column = json.loads(second.output)["columns"][0]
    assert column["rotated"] == len(tokens) and column["values"] == len(tokens) and column["not_decrypting"] == 0
    assert decrypted(migrated.pg_url, KEY_B) == tokens
    assert set(decrypted(migrated.pg_url, KEY_A).values()) == {None}
    assert no_key_in(first.output, second.output, ledger_text(migrated.pg_url))


def test_rotation_resumes_after_an_interruption(migrated, tokens, keys):
    env = lambda var: KeySource("old" if var == "KEY_A" else "new", env=var)  # noqa: E731
    decrypt_in_place(migrated.pg_url)
    assert rotate(migrated.settings, old=None, new=env("KEY_A")).exit_code == 0
    batches = []

    def interrupt_after_three(target: str, rotated: int) -> None:
        batches.append(rotated)
        if len(batches) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        rotate(migrated.settings, old=env("KEY_A"), new=env("KEY_B"), batch_size=10, after_batch=interrupt_after_three)
    halfway_b, halfway_a = decrypted(migrated.pg_url, KEY_B), decrypted(migrated.pg_url, KEY_A)
    assert sum(v is not None for v in halfway_b.values()) == 30
    assert sum(v is not None for v in halfway_a.values()) == len(tokens) - 30
    rerun = rotate(migrated.settings, old=env("KEY_A"), new=env("KEY_B"), batch_size=10)
    column = rerun.data["columns"][0]
    assert rerun.exit_code == 0 and column["resumed"] is True
    assert column["rotated"] == len(tokens) - 30 and column["skipped"] == 0
    assert decrypted(migrated.pg_url, KEY_B) == tokens
    again = rotate(migrated.settings, old=env("KEY_A"), new=env("KEY_B"))
    assert again.exit_code == 0 and again.data["columns"][0]["rotated_earlier"] is True


def test_a_value_that_does_not_decrypt_is_left_alone_and_reported(migrated, tokens, keys):
    victim = sorted(tokens)[3]
    with psycopg.connect(migrated.pg_url, autocommit=True) as conn:
        conn.execute("UPDATE payments SET provider_token = armor(pgp_sym_encrypt('x', %s)) WHERE payment_id = %s",
                     (KEY_C, victim))
    result = run("rotate-key", "--old-key-env", "KEY_SEED", "--new-key-env", "KEY_B")
    assert result.exit_code == 1
    assert f"1 of {len(tokens):,} values do not decrypt with the new key (first: {victim})" in result.output
    after = decrypted(migrated.pg_url, KEY_B)
    assert after[victim] is None and all(after[p] == t for p, t in tokens.items() if p != victim)
    assert decrypted(migrated.pg_url, KEY_C)[victim] == "x"  # untouched
    assert no_key_in(result.output)


def test_verify_only_checks_every_value_with_the_given_key(migrated, tokens, keys):
    assert run("rotate-key", "--new-key-env", "KEY_SEED", "--verify-only").exit_code == 0
    wrong = run("rotate-key", "--new-key-env", "KEY_B", "--verify-only")
    assert wrong.exit_code == 1 and "column payments.provider_token" in wrong.output
    assert decrypted(migrated.pg_url, SEED_KEY) == tokens


@pytest.mark.parametrize("args, says", [
    (("--new-key-env", "KEY_A", "--new-key-file", "/tmp/k"), "not both"),
    (("--new-key-env", "NO_SUCH_VARIABLE"), "NO_SUCH_VARIABLE (--new-key-env) is not set"),
    (("--old-key-env", "KEY_A", "--new-key-env", "KEY_A"), "are the same"),
    (("--old-key-env", "KEY_A",), "Name the new key"),
    (("--new-key-file", "/nonexistent/key"), "cannot be read"),
    (("--new-key-env", "EMPTY_KEY"), "is empty"),
])
def test_bad_input_is_one_sentence_exit_2_and_no_key(migrated, keys, monkeypatch, args, says):
    monkeypatch.setenv("EMPTY_KEY", "\n")
    result = run("rotate-key", *args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0] and no_key_in(result.output)


def test_the_ledger_fingerprint_names_a_key_pair_without_holding_it():
    from sovren_db.compliance.rotate import key_pair_fingerprint

    pair = key_pair_fingerprint(KEY_A, KEY_B)
    assert pair == key_pair_fingerprint(KEY_A, KEY_B) and len(pair) == 32
    assert pair not in (key_pair_fingerprint(KEY_B, KEY_A), key_pair_fingerprint(None, KEY_B),
                        key_pair_fingerprint(KEY_A + KEY_B[:1], KEY_B[1:]))
    assert no_key_in(pair)
