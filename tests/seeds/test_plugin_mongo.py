"""The pytest plugin puts MongoDB back between tests, definitions and indexes included (a pytest
subprocess over a real mongod; skipped, saying why, where there is none)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from tests.integration.conftest import copy_project

from .test_plugin import plugin_is_installed

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.mongo, pytest.mark.slow]

SAMPLE = '''
    from sovren_db import commands

    SEEDED = {}


    def collections(db):
        return sorted(n for n in db.list_collection_names() if not n.startswith("system."))


    def test_a_test_that_reshapes_mongodb(sovren_triad):
        db = sovren_triad.mongo()
        assert sovren_triad.mongo().client is db.client                  # one client per test
        SEEDED["names"] = collections(db)
        SEEDED["counts"] = {n: db[n].count_documents({}) for n in SEEDED["names"]}
        SEEDED["indexes"] = {n: sorted(db[n].index_information()) for n in SEEDED["names"]}
        SEEDED["options"] = {n: db[n].options() for n in SEEDED["names"]}
        assert SEEDED["counts"]["executives"] > 0 and "validator" in SEEDED["options"]["communications"]
        db.drop_collection("executives")
        db.command({"collMod": "communications", "validator": {"$jsonSchema": {"bsonType": "object"}},
                    "validationLevel": "off"})
        db.communications.create_index("message")
        db.analytics_payloads.drop_index([("operationId", 1)])
        db.communications.insert_one({"anything": True})
        db.create_collection("scratch")
        db.create_collection("recent", viewOn="communications", pipeline=[{"$limit": 1}])


    def test_the_next_test_gets_mongodb_back(sovren_triad):
        db = sovren_triad.mongo()
        assert collections(db) == SEEDED["names"]
        counts = {n: db[n].count_documents({}) for n in SEEDED["names"]}
        ttl = "analytics_payloads"       # the TTL monitor may delete a payload of the month's first day
        assert 0 < counts.pop(ttl) <= SEEDED["counts"][ttl]
        assert counts == {n: c for n, c in SEEDED["counts"].items() if n != ttl}
        assert {n: sorted(db[n].index_information()) for n in SEEDED["names"]} == SEEDED["indexes"]
        assert {n: db[n].options() for n in SEEDED["names"]} == SEEDED["options"]
        status = commands.status(sovren_triad.settings).data
        assert status["stores"]["mongo"]["revision"] == status["head"]     # the ledger came back too


    def test_and_the_one_after_that_too(sovren_triad):
        assert collections(sovren_triad.mongo()) == SEEDED["names"]
'''


def test_the_plugin_restores_mongodb_collections_options_and_indexes(tmp_path, repo_root, postgres_server_url,
                                                                    redis_server_url, mongo_server_url):
    root = copy_project(repo_root, tmp_path / "app")
    (root / "tests").mkdir()
    (root / "tests" / "test_sample.py").write_text(textwrap.dedent(SAMPLE))
    env = {k: v for k, v in os.environ.items()
           if k not in ("CI", "SOVREN_ENV", "SOVREN_DB_STORES", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    env.update(POSTGRES_URL=postgres_server_url, REDIS_URL=redis_server_url.rsplit("/", 1)[0] + "/12",
               MONGO_URL=mongo_server_url)
    plugin = [] if plugin_is_installed() else ["-p", "sovren_db.testing.plugin"]
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-W", "always::ResourceWarning", *plugin, "tests/test_sample.py"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 passed" in done.stdout
    assert "Unclosed MongoClient" not in done.stdout + done.stderr
