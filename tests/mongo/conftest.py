"""Fixtures of the Mongo tests.

Real-server tests use ``mongo_db``: a fresh database on the mongod named by
``MONGO_URL`` or started from a ``mongod`` on PATH, dropped after the test
(the harness' ``mongo_url`` fixture, ``sovren_db.testing.fixtures``), or a skip
saying "no MongoDB here: set MONGO_URL or put a mongod binary on PATH".
Never a fake server: fakes ignore validators.

``mongo_support.RecordingDatabase`` is not a server either: it records
command documents; tests using it check command construction only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mongo_support import REPO, SOVREN_MONGO_DIR, make_settings

from sovren_db.mongo.declared import load_declared
from sovren_db.mongo.state import DatabaseState


@pytest.fixture(scope="session")
def sovren_declared() -> DatabaseState:
    return load_declared(SOVREN_MONGO_DIR, display_root=REPO)


@pytest.fixture
def mongo_db(mongo_url: str):
    """A pymongo Database of its own on a real mongod, dropped after the test."""
    import pymongo

    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    yield client.get_default_database()
    client.close()


@pytest.fixture
def mongo_backend(mongo_url: str, tmp_path: Path, mongo_db):
    from sovren_db.mongo.backend import MongoBackend

    backend = MongoBackend(make_settings(tmp_path, mongo_url, mongo_db.name))
    backend.connect()
    yield backend
    backend.close()
