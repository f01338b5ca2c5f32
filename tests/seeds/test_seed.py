"""``sovren-db seed`` on real servers: lockstep, protection, idempotence, determinism, audit chain, RLS."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest
import redis

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.core.runtime import ensure_deferred_table
from sovren_db.core.urls import with_database
from sovren_db.env import connect
from sovren_db.seeds.engine import seed
from sovren_db.seeds.manifest import TABLE as MANIFEST

from .conftest import mongo_available
from .helpers import G2, count, postgres_checksums, redis_checksum, redis_snapshot, run, settings_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
TENANT_TABLES = ("users", "operations", "transactions", "payments")


def seeded(*extra: str):
    result = run("seed", "--profile", "ci", *extra)
    assert result.exit_code == 0, result.output
    return result


def only_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("note:")]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]


def manifest_exists(url: str) -> bool:
    return count(url, "SELECT count(*) FROM pg_class WHERE oid = to_regclass('sovren_db.seed_manifest')") == 1


def test_seed_loads_postgres_and_redis_and_records_them(triad, pg_url, redis_url):
    result = seeded()
    assert "seeded in" in result.output and "postgres" in result.output
    if not mongo_available():
        assert "note: mongo: not configured, skipped (MONGO_URL is not set)." in result.output
    with psycopg.connect(pg_url) as conn:
        profile, stores = conn.execute(f"SELECT profile, stores FROM {MANIFEST}").fetchone()
        assert profile == "ci"
        for table, rows in stores["postgres"].items():
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == rows > 0
        assert conn.execute("SELECT count(*) FROM payments WHERE raw_card_number IS NOT NULL").fetchone()[0] == 0
        # the year up to now (the default window), never in the future: past months are in the default partition
        future, oldest = conn.execute("SELECT count(*) FILTER (WHERE executed_at > now()), "
                                      "min(executed_at) > now() - interval '13 months' FROM operations").fetchone()
        assert future == 0 and oldest
        assert conn.execute("SELECT count(*) FROM operations_default").fetchone()[0] == stores["postgres"]["operations"]
    keys = redis_snapshot(redis_url)
    assert sum(1 for k in keys if k.startswith(b"session:") and not k.startswith(b"session:devices:")) \
        == stores["redis"]["session"]
    client = redis.Redis.from_url(redis_url)
    some_session = next(k for k in keys if k.startswith(b"session:5eed"))
    assert 0 < client.ttl(some_session) <= 86400 and client.ttl(b"{comms}:outbox") == -1
    assert client.xlen(b"{comms}:outbox") == stores["redis"]["comms_outbox"]


def test_the_audit_chain_stays_valid_and_records_every_seeded_row(triad, pg_url):
    seeded()
    with psycopg.connect(pg_url) as conn:
        assert conn.execute(G2).fetchall() == []
        chain = conn.execute("SELECT prev_hash, hash FROM audit_log ORDER BY event_id").fetchall()
        assert all(chain[i][0] == chain[i - 1][1] for i in range(1, len(chain)))
        for table in ("users", "operations", "payments"):
            audited = conn.execute(  # row triggers of a partitioned table name the partition; a COPY of
                # 1,000 rows or more is bulk events, each naming its rows (revision a4d8c1e6f2b3)
                "SELECT COALESCE(sum(COALESCE(jsonb_array_length(event_payload::jsonb -> 'details' -> 'rows'), 1)), 0) "
                "FROM audit_log WHERE action = 'INSERT' "
                "AND table_name ~ ('^' || %s || '(_p[0-9]{4}_[0-9]{2}|_default)?$')", (table,)).fetchone()[0]
            assert audited == conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] > 0


def test_rls_still_isolates_tenants_after_seeding(triad, pg_url):
    seeded()
    with psycopg.connect(pg_url) as conn:
        tenant = conn.execute("SELECT user_id FROM operations GROUP BY user_id ORDER BY count(*) DESC LIMIT 1"
                              ).fetchone()[0]
        own = {t: conn.execute(f"SELECT count(*) FROM {t} WHERE user_id = %s", (tenant,)).fetchone()[0]
               for t in TENANT_TABLES}
        assert conn.execute("SELECT bool_and(relrowsecurity AND relforcerowsecurity) FROM pg_class "
                            "WHERE relname = ANY(%s)", (list(TENANT_TABLES),)).fetchone()[0]
        conn.execute("SET ROLE sovren_app")
        conn.execute("SELECT set_config('app.user_id', %s, false)", (str(tenant),))
        for table in TENANT_TABLES:
            owners = {r[0] for r in conn.execute(f"SELECT DISTINCT user_id FROM {table}")}
            assert owners <= {tenant}, table
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == own[table], table
        conn.execute("RESET app.user_id")
        assert all(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] == 0 for t in TENANT_TABLES)


def test_seeding_writes_as_the_migrator_role(triad, pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("REVOKE INSERT ON operations FROM sovren_migrator")
    result = run("seed", "--profile", "ci")
    assert result.exit_code == 2
    assert "permission denied for table operations" in only_line(result)
    assert count(pg_url, "SELECT count(*) FROM users") == 0  # one transaction: nothing kept


def test_running_twice_leaves_the_same_data_as_once(triad, pg_url, redis_url):
    seeded()
    before = (postgres_checksums(pg_url), redis_checksum(redis_url), count(pg_url, "SELECT count(*) FROM audit_log"))
    again = seeded()
    assert "nothing to do: this seed is already loaded" in again.output
    assert (postgres_checksums(pg_url), redis_checksum(redis_url),
            count(pg_url, "SELECT count(*) FROM audit_log")) == before


def test_an_interrupted_seed_is_finished_without_duplicates(triad, pg_url, redis_url):
    seeded()
    complete = redis_snapshot(redis_url)
    client = redis.Redis.from_url(redis_url)
    for key in complete:
        if not key.startswith(b"{comms}"):
            client.delete(key)   # as if the run died after the streams, before the other keys
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"UPDATE {MANIFEST} SET stores = stores - 'redis'")
    result = seeded("--format", "json")
    report = json.loads(result.output)
    assert report["stores"]["postgres"]["state"] == "already seeded"
    assert report["stores"]["redis"]["state"] == "seeded"
    assert redis_snapshot(redis_url) == complete


def test_two_fresh_triads_get_identical_data(triad, pg_url, redis_url, postgres_server_url):
    seeded()
    other_db = f"t_{uuid.uuid4().hex[:12]}"
    admin = with_database(postgres_server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{other_db}"')
    other_redis = redis_url.rsplit("/", 1)[0] + "/7"
    redis.Redis.from_url(other_redis).flushdb()
    try:
        other_pg = with_database(postgres_server_url, other_db)
        settings = settings_for(triad, other_pg, other_redis)
        commands.migrate(settings)
        seed(settings, "ci")
        assert postgres_checksums(other_pg) == postgres_checksums(pg_url)
        assert redis_checksum(other_redis) == redis_checksum(redis_url)
        assert redis_checksum(redis_url).split(":")[0] != "0"
    finally:
        redis.Redis.from_url(other_redis).flushdb()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{other_db}" WITH (FORCE)')


def test_another_seed_needs_reset_which_keeps_application_data(triad, pg_url, redis_url):
    app_user = uuid.uuid4()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO users (user_id, username, password_hash, email, subscription_tier) "
                     "VALUES (%s, 'app.user', 'x', 'app@example.com', 'pro')", (app_user,))
    client = redis.Redis.from_url(redis_url)
    client.set(f"session:{app_user}", "app-token", ex=600)
    seeded()
    first = postgres_checksums(pg_url)

    refused = run("seed", "--profile", "ci", "--seed", "2")
    assert refused.exit_code == 2
    assert only_line(refused) == ("error: Seeding refused: the database holds the seed of profile 'ci' (scale 1, "
                                  "seed 1); pass --reset to replace it with this one.")
    assert postgres_checksums(pg_url) == first

    replaced = seeded("--seed", "2", "--reset")
    assert "reset removed" in replaced.output
    with psycopg.connect(pg_url) as conn:
        seeds = conn.execute(f"SELECT seed FROM {MANIFEST}").fetchall()
        assert seeds == [(2,)]
        users = [r[0] for r in conn.execute("SELECT user_id FROM users")]
        assert app_user in users and len(users) == 120 + 1  # the application user survives the reset
        assert conn.execute(G2).fetchall() == []
    assert postgres_checksums(pg_url) != first
    assert client.get(f"session:{app_user}") == b"app-token"
    sessions = [k for k in redis_snapshot(redis_url) if k.startswith(b"session:5eed")]
    assert sessions and client.get(sessions[0]) is not None


def test_refused_while_postgres_is_not_at_head(project, redis_url, monkeypatch, pg_url):
    monkeypatch.setenv("REDIS_URL", redis_url)
    result = run("seed", "--profile", "ci")
    assert result.exit_code == 2
    assert only_line(result).startswith("error: Seeding refused: Postgres is at revision base, not at the head ")
    assert not manifest_exists(pg_url)


def test_refused_while_redis_is_behind(triad, pg_url, redis_url):
    redis.Redis.from_url(redis_url).set("{sovren-db}:position", "0000older")
    result = run("seed", "--profile", "ci")
    assert result.exit_code == 2
    assert "error: Seeding refused: redis is at revision 0000older, not at the head" in only_line(result)
    assert count(pg_url, "SELECT count(*) FROM users") == 0


def test_refused_while_steps_are_deferred(triad, pg_url):
    engine, connection = connect(load_settings(triad))
    try:
        ensure_deferred_table(connection)
        connection.exec_driver_sql(
            "INSERT INTO sovren_db_deferred (revision, direction, seq, store, op_name, arguments, description) "
            "VALUES ('c9be5f0adae1', 'up', 0, 'redis', 'redis_declare_family', '{}', 'declare a family')")
        connection.commit()
    finally:
        connection.close()
        engine.dispose()
    result = run("seed", "--profile", "ci")
    assert result.exit_code == 2 and "redis has revision steps deferred" in only_line(result)


def test_refused_in_a_protected_environment_unless_allowed(triad, pg_url, monkeypatch):
    monkeypatch.setenv("SOVREN_ENV", "production")
    refused = run("seed", "--profile", "ci")
    assert refused.exit_code == 2
    assert only_line(refused) == ("error: Seeding refused: environment 'production' is protected "
                                  "(pass --allow-protected to seed it anyway).")
    assert count(pg_url, "SELECT count(*) FROM users") == 0
    seeded("--allow-protected")
    assert count(pg_url, "SELECT count(*) FROM users") == 120


@pytest.mark.parametrize("store", ["mongo", "redis"])
def test_a_generator_bug_is_reported_and_nothing_is_written(triad, pg_url, redis_url, monkeypatch, store):
    from sovren_db.seeds import documents, families

    if store == "mongo":
        original = documents.documents_of

        def broken(name, block):
            found = original(name, block)
            if name == "executives":
                found[4] = {**found[4], "active": "yes"}
            return found
        monkeypatch.setattr(documents, "documents_of", broken)
        expected = "mongo collection executives, record 4: (executiveId 5eed"
        extra = () if mongo_available() else ("--validate-all",)
    else:
        original = families.keys_of

        def broken(name, block):
            batch = original(name, block)
            if name == "session_devices":
                batch.keys[9] = b"session:" + batch.keys[9].rsplit(b":", 1)[1]
            return batch
        monkeypatch.setattr(families, "keys_of", broken)
        expected = "redis family session_devices, record 9: key 'session:5eed"
        extra = ()
    before = redis_snapshot(redis_url)
    result = run("seed", "--profile", "ci", *extra)
    assert result.exit_code == 2
    line = only_line(result)
    assert line.startswith("error: Seed data rejected before anything was written: " + expected), line
    assert count(pg_url, "SELECT count(*) FROM users") == 0
    assert not manifest_exists(pg_url)
    assert redis_snapshot(redis_url) == before


def test_json_output_has_counts_per_store_and_no_progress(triad, pg_url):
    report = json.loads(seeded("--format", "json", "--validate-all").output)
    assert report["status"] == "seeded" and report["exit_code"] == 0
    postgres = report["stores"]["postgres"]
    assert postgres["rows"] == sum(postgres["counts"].values()) == count(
        pg_url, "SELECT (SELECT count(*) FROM users) + (SELECT count(*) FROM subscriptions) + "
                "(SELECT count(*) FROM transactions) + (SELECT count(*) FROM payments) + "
                "(SELECT count(*) FROM operations)")
    assert report["stores"]["redis"]["keys"] > 0
    assert report["anchor"].endswith("-01") and report["validated"]["executives"] > 0


@pytest.mark.skipif(mongo_available(), reason="MongoDB is configured here")
def test_an_unconfigured_store_is_neither_generated_nor_validated(triad, monkeypatch):
    from sovren_db.seeds import prevalidate

    built = []
    original = prevalidate.DocumentCheck.__init__
    monkeypatch.setattr(prevalidate.DocumentCheck, "__init__",
                        lambda self, collections: built.append(dict(collections)) or original(self, collections))
    report = json.loads(seeded("--format", "json").output)
    assert not any(built), built   # no validator was built for any collection: none was generated
    assert set(report["validated"]) == {"session", "session_devices", "executive_cache", "simulation_cache",
                                        "analytics_cache", "comms_outbox", "comms_status", "comms_dead"}
    assert any(note.startswith("mongo: not configured, so its seeded data was neither generated nor validated")
               for note in report["notes"])
    again = json.loads(seeded("--format", "json", "--validate-all", "--reset").output)
    assert again["validated"]["executives"] > 0 and again["validated"]["communications"] > 0


@pytest.mark.skipif(mongo_available(), reason="MongoDB is configured here")
def test_strict_mode_requires_every_declared_store(triad, monkeypatch):
    monkeypatch.setenv("CI", "1")
    result = run("seed", "--profile", "ci")
    assert result.exit_code == 2
    assert "mongo is declared but not configured and --strict is in force" in only_line(result)


def test_declared_encrypted_columns_are_encrypted_with_the_key_never_logged(triad, pg_url, monkeypatch):
    seeded()
    with psycopg.connect(pg_url) as conn:
        tokens = conn.execute("SELECT provider_token, pgp_sym_decrypt(dearmor(provider_token), %s) FROM payments",
                              ("sovren-ci-seed-key",)).fetchall()
        assert tokens and all(c.startswith("-----BEGIN PGP MESSAGE-----") and p.startswith("tok_") for c, p in tokens)
        assert conn.execute("SELECT count(*) FROM audit_log WHERE query LIKE '%sovren-ci-seed-key%'").fetchone()[0] == 0
    monkeypatch.setenv("SOVREN_DB_ENCRYPTION_KEY", "the-environment-key")
    seeded("--reset")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM payments WHERE "
                            "pgp_sym_decrypt(dearmor(provider_token), 'the-environment-key') LIKE 'tok_%'"
                            ).fetchone()[0] == len(tokens)


def test_what_postgres_stored_is_exactly_the_generated_rows(triad, pg_url):
    """The loader sends binary COPY; the database must hold what the readable text form says."""
    from sovren_db.core.config import load_settings
    from sovren_db.seeds.plan import Plan
    from sovren_db.seeds.postgres_rows import JSONB
    from sovren_db.seeds.profiles import load_profile
    from sovren_db.seeds.targets import Targets

    seeded()
    profile = load_profile(triad / "seeds", "ci")
    targets = Targets.of(load_settings(triad), profile)
    with psycopg.connect(pg_url) as conn:
        anchor = conn.execute(f"SELECT anchor FROM {MANIFEST}").fetchone()[0]
        plan = Plan(profile, 1, 1, anchor, graph=targets.graph)
        assert [t.table for t in targets.tables] == ["users", "operations", "subscriptions", "transactions",
                                                     "payments"]
        for table in targets.tables:
            expected = sorted([None if v == "\\N" else json.loads(v) if kind == JSONB else v
                               for v, (_, kind) in zip(line.split("\t"), table.columns)]
                              for block in plan.blocks() for line in table.lines(block))
            selected = ", ".join(
                "pgp_sym_decrypt(dearmor(provider_token), 'sovren-ci-seed-key')" if name == "provider_token"
                else name if kind == JSONB else f"{name}::text" for name, kind in table.columns)
            stored = sorted(list(r) for r in conn.execute(f"SELECT {selected} FROM {table.table}"))
            assert stored == expected, table.table


def test_reset_also_cleans_what_the_new_profile_does_not_seed(triad, redis_url):
    seeded()
    (triad / "seeds" / "lean.toml").write_text('users = 5\npassword = "x"\nencryption_key = "k"\n[redis]\n'
                                               'session = { per = "users", share = 1.0 }\n')
    result = run("seed", "--profile", "lean", "--reset")
    assert result.exit_code == 0, result.output
    left = [k for k in redis_snapshot(redis_url) if b"5eed" in k]   # keys named by a seeded id
    assert len(left) == 5 and all(k.startswith(b"session:5eed") for k in left)
    assert redis.Redis.from_url(redis_url).xlen(b"{comms}:outbox") == 0   # seeded entries gone too


def test_a_redis_refusal_stops_the_seed_and_the_next_run_finishes_it(triad, pg_url, redis_url):
    client = redis.Redis.from_url(redis_url)
    before = {k: client.config_get(k)[k] for k in ("maxmemory", "maxmemory-policy")}
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", max(client.info("memory")["used_memory"] + 20_000, 1_000_000))
    try:
        result = run("seed", "--profile", "ci")
    finally:
        client.config_set("maxmemory", before["maxmemory"])
        client.config_set("maxmemory-policy", before["maxmemory-policy"])
    assert result.exit_code == 2
    assert "error: Redis refused a seeded key of family " in only_line(result)
    assert "used memory > 'maxmemory'." in result.output
    with psycopg.connect(pg_url) as conn:
        assert set(conn.execute(f"SELECT stores FROM {MANIFEST}").fetchone()[0]) == {"postgres"}
    finished = json.loads(seeded("--format", "json").output)
    assert finished["stores"]["postgres"]["state"] == "already seeded"
    assert finished["stores"]["redis"]["state"] == "seeded" and finished["stores"]["redis"]["keys"] > 0


def test_a_fresh_postgres_seed_first_removes_redis_keys_an_earlier_seed_left(triad, pg_url, redis_url,
                                                                              postgres_server_url):
    seeded()
    client = redis.Redis.from_url(redis_url)
    client.set("session:00000000-0000-4000-8000-000000000001", "app-token", ex=600)  # not seeded: kept
    earlier = {k for k in redis_snapshot(redis_url) if k.startswith(b"session:5eed")}
    assert earlier
    fresh_db = f"t_{uuid.uuid4().hex[:12]}"
    admin = with_database(postgres_server_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{fresh_db}"')
    try:   # the same Redis, a Postgres with no seed: seed 2 must not sit beside seed 1's sessions
        settings = settings_for(triad, with_database(postgres_server_url, fresh_db), redis_url)
        commands.migrate(settings)
        report = seed(settings, "ci", seed=2)
        later = {k for k in redis_snapshot(redis_url) if k.startswith(b"session:5eed")}
        assert later and not (earlier & later)
        assert any(note.startswith("redis: ") and "of an earlier seed were deleted" in note for note in report.notes)
        assert client.get("session:00000000-0000-4000-8000-000000000001") == b"app-token"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{fresh_db}" WITH (FORCE)')


@pytest.mark.parametrize("profile, where", [
    ("users = 5\n[postgres.users.columns]\nnickname = 'word'\n", "postgres.users.columns.nickname"),
    ("users = 5\n[postgres.users.columns]\nemail = 'nowhere.module:nothing'\n", "nowhere.module:nothing"),
    ("users = 5\n[postgres.users.columns]\nemail = 'faker:no_such_provider'\n", "no_such_provider"),
    ("users = 5\n[postgres]\napi_keys = 1\n", "postgres.api_keys"),
])
def test_a_profile_naming_what_is_not_there_is_one_sentence_and_nothing_written(triad, pg_url, profile, where):
    (triad / "seeds" / "bad.toml").write_text(profile)
    result = run("seed", "--profile", "bad")
    assert result.exit_code == 2
    line = only_line(result)
    assert line.startswith("error: ") and "bad.toml" in line and where in line, line
    assert count(pg_url, "SELECT count(*) FROM users") == 0 and not manifest_exists(pg_url)
