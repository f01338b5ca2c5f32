"""snapshot and verify-restore: a pg_dump + RDB restore verifies clean; a restore missing data is caught."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
import redis
from click.testing import CliRunner

from sovren_db import services
from sovren_db.cli.main import cli
from sovren_db.compliance.restore import compare_entry
from sovren_db.compliance.snapshot import Digest, canonical_value
from sovren_db.core.urls import with_database
from sovren_db.redis.declared import load_declarations
from sovren_db.services.local import find_pg_bin

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def restore_postgres(source_url: str) -> str:
    """pg_dump -Fc of the source into a second, fresh database via pg_restore; its URL."""
    name = f"r_{uuid.uuid4().hex[:12]}"
    admin = with_database(source_url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    target = with_database(source_url, name)
    dump = subprocess.run([find_pg_bin("pg_dump"), "-Fc", "-d", source_url], capture_output=True, check=True).stdout
    subprocess.run([find_pg_bin("pg_restore"), "--exit-on-error", "-d", target], input=dump, capture_output=True,
                   check=True)
    return target


def drop_database(url: str) -> None:
    with psycopg.connect(with_database(url, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def restore_redis(source_url: str, folder: Path, project: Path):
    """SAVE, copy dump.rdb, start a second redis-server on it with the declared server configuration
    (what its redis.conf would hold: CONFIG SET is not in an RDB file)."""
    client = redis.Redis.from_url(source_url)
    try:
        client.save()
        where = Path(client.config_get("dir")["dir"]) / client.config_get("dbfilename")["dbfilename"]
    finally:
        client.close()
    if not where.is_file():
        pytest.skip(f"the Redis server's dump file {where} is not on this machine")
    folder.mkdir(parents=True)
    shutil.copy(where, folder / "dump.rdb")
    server = services.start_redis(folder)
    restored = redis.Redis.from_url(server.url)
    for name, value in load_declarations(project / "redis").server.items():
        restored.config_set(name, value)
    restored.close()
    return server


@pytest.fixture
def restored(triad, tmp_path, monkeypatch):
    """A manifest of the seeded triad, and the triad restored from pg_dump and the RDB file (env pointed at it)."""
    manifest = tmp_path / "manifest.json"
    taken = run("snapshot", "--out", str(manifest))
    assert taken.exit_code == 0, taken.output
    target = restore_postgres(triad.pg_url)
    server = restore_redis(triad.redis_url, tmp_path / "redis-restored", triad.root)
    monkeypatch.setenv("POSTGRES_URL", target)
    monkeypatch.setenv("REDIS_URL", server.url)
    yield manifest, target, server.url
    services.stop(server)
    drop_database(target)


def test_the_manifest_covers_every_table_and_family_with_the_revision(triad, tmp_path):
    manifest = tmp_path / "m.json"
    assert run("snapshot", "--out", str(manifest)).exit_code == 0
    body = json.loads(manifest.read_text())
    with psycopg.connect(triad.pg_url) as conn:
        users = conn.execute("SELECT count(*) FROM users").fetchone()[0]
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert body["revision"]["postgres"] == [revision]
    assert body["stores"]["postgres"]["users"]["count"] == users
    assert set(body["stores"]["postgres"]) >= {"users", "operations", "audit_log", "payments"}
    assert body["stores"]["redis"]["session"]["count"] > 0 and "(undeclared)" in body["stores"]["redis"]


def test_a_restore_from_pg_dump_and_rdb_verifies_clean(restored):
    manifest, _, _ = restored
    result = run("verify-restore", "--manifest", str(manifest))
    assert result.exit_code == 0, result.output
    assert "restore verified" in result.output


def test_a_restore_missing_rows_and_keys_is_caught_and_named(restored):
    manifest, target, redis_url = restored
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")   # no triggers: only operations loses rows
        conn.execute("DELETE FROM operations WHERE operation_id IN (SELECT operation_id FROM operations LIMIT 3)")
    client = redis.Redis.from_url(redis_url)
    client.delete(next(client.scan_iter(match="session:devices:*")))
    client.close()
    result = run("verify-restore", "--manifest", str(manifest), "--format", "json")
    assert result.exit_code == 1
    findings = {f["object"]: f["message"] for f in json.loads(result.output)["findings"]}
    assert set(findings) == {"table operations", "key family session_devices"}
    assert "rows, the snapshot had" in findings["table operations"]
    only_users = run("verify-restore", "--manifest", str(manifest), "--check", "users", "--check", "session")
    assert only_users.exit_code == 0, only_users.output
    named = run("verify-restore", "--manifest", str(manifest), "--check", "operations")
    assert named.exit_code == 1 and "postgres: table operations: has" in named.output


def test_changed_contents_with_the_same_count_are_caught(restored):
    manifest, target, _ = restored
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute("UPDATE users SET email = 'changed-' || email "
                     "WHERE user_id = (SELECT user_id FROM users ORDER BY user_id LIMIT 1)")
    result = run("verify-restore", "--manifest", str(manifest), "--check", "users")
    assert result.exit_code == 1 and "checksum differs" in result.output


def test_bad_manifest_or_name_is_one_sentence_and_exit_2(triad, tmp_path):
    missing = run("verify-restore", "--manifest", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "cannot be read" in missing.output
    (tmp_path / "other.json").write_text('{"format": "something else"}')
    foreign = run("verify-restore", "--manifest", str(tmp_path / "other.json"))
    assert foreign.exit_code == 2 and "not a manifest" in foreign.output
    manifest = tmp_path / "m.json"
    run("snapshot", "--out", str(manifest))
    unknown = run("verify-restore", "--manifest", str(manifest), "--check", "userz")
    assert unknown.exit_code == 2 and "--check userz" in unknown.output


@pytest.mark.mongo
def test_mongo_collections_restored_by_mongodump_verify(project, pg_url, mongo_url, monkeypatch, tmp_path):
    if not (shutil.which("mongodump") and shutil.which("mongorestore")):
        pytest.skip("no mongodump/mongorestore here")
    import pymongo

    from sovren_db import commands
    from sovren_db.core.config import load_settings

    from .conftest import seed_ci

    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,mongo")
    monkeypatch.setenv("MONGO_URL", mongo_url)
    commands.migrate(load_settings(project))
    seed_ci(load_settings(project))
    database = mongo_url.rsplit("/", 1)[1].split("?")[0]
    assert load_settings(project).mongo_database == database  # the test's own database, not sovren_ai
    manifest = tmp_path / "m.json"
    assert run("snapshot", "--out", str(manifest)).exit_code == 0
    restored_db = f"{database}_r"
    subprocess.run(["mongodump", f"--uri={mongo_url}", f"--out={tmp_path / 'dump'}"], check=True, capture_output=True)
    subprocess.run(["mongorestore", f"--uri={with_database(mongo_url, '')}", f"--nsFrom={database}.*",
                    f"--nsTo={restored_db}.*", str(tmp_path / "dump")], check=True, capture_output=True)
    monkeypatch.setenv("MONGO_URL", with_database(mongo_url, restored_db))  # the URL's database is the one read
    try:
        clean = run("verify-restore", "--manifest", str(manifest), "--check", "communications",
                    "--check", "executives")
        assert clean.exit_code == 0, clean.output
        assert load_settings(project).mongo_database == restored_db
        with pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000) as client:
            client[restored_db]["communications"].delete_one({})
        damaged = run("verify-restore", "--manifest", str(manifest), "--check", "communications")
        assert damaged.exit_code == 1 and "communications" in damaged.output
    finally:
        with pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000) as client:
            client.drop_database(restored_db)


# -- pure ------------------------------------------------------------------------------

def test_digests_do_not_depend_on_order_or_internal_encoding():
    a, b = Digest(), Digest()
    for item in (b"x", b"y", b"z"):
        a.add(item)
    for item in (b"z", b"x", b"y"):
        b.add(item)
    assert a.to_json() == b.to_json() and a.count == 3
    assert canonical_value(b"hash", {b"b": b"2", b"a": b"1"}) == canonical_value(b"hash", {b"a": b"1", b"b": b"2"})
    assert canonical_value(b"set", {b"q", b"p"}) == canonical_value(b"set", {b"p", b"q"})
    assert canonical_value(b"list", [b"p", b"q"]) != canonical_value(b"list", [b"q", b"p"])


def test_volatile_redis_keys_past_their_first_expiry_are_compared_by_count():
    snap = {"count": 10, "checksum": "a", "volatile": {"count": 6, "checksum": "b"}, "expires_from": 1000, "now": 0}
    notes: list[str] = []
    expired = {"count": 7, "checksum": "c", "volatile": {"count": 3, "checksum": "d"}, "expires_from": 2000,
               "now": 1500}
    assert compare_entry("redis", "session", snap, expired, notes) == [] and notes
    lost_durable = {**expired, "count": 6}
    assert "keys without a TTL" in compare_entry("redis", "session", snap, lost_durable, [])[0].message
    early = {**expired, "now": 900}
    assert "has 7 keys, the snapshot had 10" in compare_entry("redis", "session", snap, early, [])[0].message


def test_mongo_digests_hash_raw_documents_in_any_order():
    import bson
    from bson.raw_bson import RawBSONDocument

    from sovren_db.compliance.snapshot import mongo_entries

    class Collection:
        def __init__(self, documents):
            self.documents = documents

        def find(self, query, batch_size):
            assert query == {}
            return iter([RawBSONDocument(bson.encode(d)) for d in self.documents])

    class Database:
        def __init__(self, collections):
            self.collections = collections

        def list_collection_names(self):
            return list(self.collections)

        def get_collection(self, name, codec_options):
            assert codec_options.document_class is RawBSONDocument
            return Collection(self.collections[name])

    docs = [{"_id": i, "userId": f"u{i}"} for i in range(3)]
    forward = mongo_entries(Database({"executives": docs}), ["executives", "communications"])
    backward = mongo_entries(Database({"executives": docs[::-1]}), ["executives", "communications"])
    changed = mongo_entries(Database({"executives": [*docs[:2], {"_id": 2, "userId": "u9"}]}), ["executives"])
    assert forward == backward and forward["executives"]["count"] == 3
    assert forward["communications"] == {"missing": True}
    assert changed["executives"]["checksum"] != forward["executives"]["checksum"]
