"""``audit seal`` and ``audit verify --checkpoint``: the chain's head anchored outside Postgres (issue 13.3)."""

from __future__ import annotations

import json

import psycopg
import pytest
from click.testing import CliRunner

from sovren_db import commands
from sovren_db.cli.main import cli
from sovren_db.compliance import audit_seal
from sovren_db.compliance.audit_format import CHAINS
from sovren_db.core.config import load_settings

pytestmark = pytest.mark.postgres
KEY = "k3y-for-the-audit-checkpoints"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def sealed_log(project, pg_url, monkeypatch, tmp_path):
    monkeypatch.setenv("SOVREN_AUDIT_SEAL_KEY", KEY)
    commands.migrate(load_settings(project))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
                     "SELECT gen_random_uuid(), 'u' || i, 'x', i || '@x.io', 'pro' FROM generate_series(1, 5) i")
    checkpoints = tmp_path / "checkpoints.jsonl"
    result = run("audit", "seal", "--to", str(checkpoints))
    assert result.exit_code == 0, result.output
    return pg_url, checkpoints


def chain_ids(pg_url) -> list[int]:
    """The fixture's five events: one transaction, so one chain, ids CHAINS apart."""
    with psycopg.connect(pg_url) as conn:
        return [r[0] for r in conn.execute("SELECT event_id FROM audit_log ORDER BY event_id")]


def guards_off(conn) -> None:
    """What a superuser bent on rewriting the log does first."""
    conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_drop DISABLE")
    conn.execute("ALTER EVENT TRIGGER sovren_audit_guard_alter DISABLE")
    conn.execute("SET session_replication_role = replica")


def test_a_sealed_log_verifies_against_its_checkpoint_and_may_grow(sealed_log):
    pg_url, checkpoints = sealed_log
    line = json.loads(checkpoints.read_text().splitlines()[-1])
    ids = chain_ids(pg_url)
    assert (line["events"], line["last_event_id"]) == (5, ids[-1]) and len(line["hmac"]) == 64
    assert [ids[i + 1] - ids[i] for i in range(4)] == [CHAINS] * 4
    k = str(ids[0] % CHAINS or CHAINS)
    assert line["chains"][k] == {"events": 5, "last_event_id": ids[-1], "head_hash": line["head_hash"]}
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE users SET last_login = now()")
    result = run("audit", "verify", "--checkpoint", str(checkpoints))
    assert result.exit_code == 0, result.output
    assert "matches the checkpoint sealed" in result.output and "10 events" in result.output


def test_a_truncated_tail_is_reported(sealed_log):
    pg_url, checkpoints = sealed_log
    with psycopg.connect(pg_url, autocommit=True) as conn:
        guards_off(conn)
    ids = chain_ids(pg_url)
    k = ids[0] % CHAINS or CHAINS
    with psycopg.connect(pg_url, autocommit=True) as conn:
        guards_off(conn)
        conn.execute("DELETE FROM audit_log WHERE event_id >= %s", (ids[3],))
        conn.execute("UPDATE audit_chain_head SET next_id = %s, hash = (SELECT hash FROM audit_log WHERE event_id = %s) "
                     "WHERE chain = %s", (ids[3], ids[2], k))
    assert run("audit", "verify").exit_code == 0   # the chain alone cannot tell
    result = run("audit", "verify", "--checkpoint", str(checkpoints), "--format", "json")
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["intact"] is False
    assert (f"chain {k}: truncated tail: the checkpoint sealed 5 events up to event {ids[4]}, and that event is gone"
            in result.output)


def test_a_rewritten_tail_with_recomputed_hashes_is_reported(sealed_log):
    pg_url, checkpoints = sealed_log
    last = chain_ids(pg_url)[-1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        guards_off(conn)
        conn.execute("""UPDATE audit_log SET actor = 'nobody',
                               event_payload = replace(event_payload, '"actor": "' || actor || '"', '"actor": "nobody"')
                         WHERE event_id = %s""", (last,))
        conn.execute("UPDATE audit_log SET hash = encode(digest(event_payload || event_id::text, 'sha256'), 'hex') "
                     "WHERE event_id = %s", (last,))
    assert run("audit", "verify").exit_code == 0   # the last row re-hashed: nothing after it to break
    result = run("audit", "verify", "--checkpoint", str(checkpoints))
    assert result.exit_code == 1 and f"rewritten tail: event {last}'s hash is" in result.output


def test_a_forged_checkpoint_or_another_key_is_a_finding(sealed_log, monkeypatch):
    _, checkpoints = sealed_log
    line = json.loads(checkpoints.read_text())
    line["events"] = 3
    checkpoints.write_text(json.dumps(line) + "\n")
    result = run("audit", "verify", "--checkpoint", str(checkpoints))
    assert result.exit_code == 1 and "does not carry a valid signature" in result.output


@pytest.mark.parametrize("env, says", [("", "is not set"), ("short", "too short")])
def test_a_missing_or_weak_key_is_one_sentence_and_exit_2(sealed_log, monkeypatch, env, says):
    _, checkpoints = sealed_log
    monkeypatch.setenv("SOVREN_AUDIT_SEAL_KEY", env)
    for args in (("audit", "seal"), ("audit", "verify", "--checkpoint", str(checkpoints))):
        result = run(*args)
        assert result.exit_code == 2 and says in result.output and "Traceback" not in result.output


def test_an_unreadable_checkpoint_file_is_exit_2(sealed_log, tmp_path):
    result = run("audit", "verify", "--checkpoint", str(tmp_path / "none.jsonl"))
    assert result.exit_code == 2 and "none.jsonl: cannot read checkpoints" in result.output
    (tmp_path / "junk").write_text("not json\n")
    result = run("audit", "verify", "--checkpoint", str(tmp_path / "junk"))
    assert result.exit_code == 2 and "is not a sovren-db audit checkpoint" in result.output


def test_seal_to_stdout_and_to_a_redis_list(sealed_log, redis_url, monkeypatch):
    printed = run("audit", "seal", "--to", "-")
    assert printed.exit_code == 0 and json.loads(printed.output)["events"] == 5
    monkeypatch.setenv("REDIS_URL", redis_url)
    pushed = run("audit", "seal", "--to", "redis:audit:test:checkpoints")
    assert pushed.exit_code == 0 and "Redis list audit:test:checkpoints" in pushed.output
    result = run("audit", "verify", "--checkpoint", "redis:audit:test:checkpoints")
    assert result.exit_code == 0, result.output


def test_a_broken_chain_is_not_sealed(sealed_log, tmp_path):
    pg_url, _ = sealed_log
    with psycopg.connect(pg_url, autocommit=True) as conn:
        guards_off(conn)
        conn.execute("DELETE FROM audit_log WHERE event_id = %s", (chain_ids(pg_url)[1],))
    target = tmp_path / "new.jsonl"
    result = run("audit", "seal", "--to", str(target))
    assert result.exit_code == 1 and not target.exists()


USERS = ("INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
         "SELECT gen_random_uuid(), %s || i, 'x', %s || i || '@x.io', 'pro' FROM generate_series(1, 3) i")


def on_another_chain(pg_url, name: str) -> int:
    """Three events written while the fixture's chain is held by another transaction: they go to another head."""
    k = chain_ids(pg_url)[0] % CHAINS or CHAINS
    with psycopg.connect(pg_url) as holder, psycopg.connect(pg_url, autocommit=True) as writer:
        holder.execute("SELECT 1 FROM audit_chain_head WHERE chain = %s FOR UPDATE", (k,))
        writer.execute(USERS, (name, name))
        holder.rollback()
    return k


def test_one_chain_cut_while_the_others_are_intact_is_reported(sealed_log, tmp_path):
    pg_url, _ = sealed_log
    k = on_another_chain(pg_url, "other")
    checkpoints = tmp_path / "two.jsonl"
    assert run("audit", "seal", "--to", str(checkpoints)).exit_code == 0
    sealed = json.loads(checkpoints.read_text())["chains"]
    assert len(sealed) == 3 and sealed["0"]["events"] == 0   # the empty chain before the fork, and two chains
    other = next(key for key in sealed if key not in ("0", str(k)))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        guards_off(conn)
        conn.execute("DELETE FROM audit_log WHERE event_id = %s", (sealed[other]["last_event_id"],))
    result = run("audit", "verify", "--checkpoint", str(checkpoints))
    assert result.exit_code == 1
    assert f"chain {other}: truncated tail: the checkpoint sealed 3 events" in result.output
    assert f"chain {k}:" not in result.output


def test_a_checkpoint_written_before_the_split_still_verifies(project, pg_url, monkeypatch, tmp_path):
    monkeypatch.setenv("SOVREN_AUDIT_SEAL_KEY", KEY)
    settings = load_settings(project)
    commands.migrate(settings, "5e1c0a7b9d21")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(USERS, ("old", "old"))
        last, digest = conn.execute("SELECT event_id, hash FROM audit_log ORDER BY event_id DESC LIMIT 1").fetchone()
    old = audit_seal.seal_now(3, last, digest)   # as the seal of before the split wrote it: no chains
    checkpoints = tmp_path / "old.jsonl"
    checkpoints.write_text(old.line(KEY.encode()) + "\n")
    assert "chains" not in json.loads(checkpoints.read_text())
    commands.migrate(settings)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(USERS, ("new", "new"))
    result = run("audit", "verify", "--checkpoint", str(checkpoints))
    assert result.exit_code == 0 and "matches the checkpoint sealed" in result.output, result.output
    with psycopg.connect(pg_url, autocommit=True) as conn:
        guards_off(conn)
        conn.execute("DELETE FROM audit_log WHERE event_id = %s", (last,))
    result = run("audit", "verify", "--checkpoint", str(checkpoints))
    assert result.exit_code == 1
