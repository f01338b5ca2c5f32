"""The plugin's Triad keeps one MongoDB client per test and closes it at teardown (no server needed:
a MongoClient connects in the background, and nothing here sends it a command)."""

from __future__ import annotations

import gc
import warnings

import pytest
from pymongo.errors import InvalidOperation

from sovren_db.testing.plugin import Triad

NOWHERE = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=100"


def triad() -> Triad:
    return Triad(settings=None, seed=None, postgres_url="postgresql:///x", mongo_url=NOWHERE, mongo_database="s")


def test_every_call_gets_the_same_client_and_close_closes_it():
    this = triad()
    first, second = this.mongo(), this.mongo()
    assert first.client is second.client and first.name == "s"
    this.close()
    with pytest.raises(InvalidOperation, match="after close"):
        first.command("ping")
    this.close()                                   # twice is fine
    third = this.mongo()                           # a new one after close, closed again below
    assert third.client is not first.client
    this.close()


def test_a_closed_triad_leaves_no_unclosed_client_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        this = triad()
        this.mongo()
        this.mongo()
        this.close()
        del this
        gc.collect()
    assert not [w for w in caught if "Unclosed MongoClient" in str(w.message)]


def test_without_mongodb_mongo_skips():
    with pytest.raises(pytest.skip.Exception):
        Triad(settings=None, seed=None, postgres_url="postgresql:///x").mongo()


def test_redis_is_one_client_per_test_too(redis_url):
    this = Triad(settings=None, seed=None, postgres_url="postgresql:///x", redis_url=redis_url)
    first = this.redis()
    assert this.redis() is first and first.ping()
    this.close()
    assert this.redis() is not first
    this.close()
