"""Loader logic without servers: MongoDB's documented bulk-write replies, Redis commands as RESP."""

from __future__ import annotations

import pytest
from pymongo.errors import BulkWriteError

from sovren_db.redis.state import KeyFamily, TtlRule
from sovren_db.seeds.mongo_load import insert_documents
from sovren_db.seeds.prevalidate import SeedFailed
from sovren_db.seeds.redis_keys import KeyBatch
from sovren_db.seeds.redis_load import encode_commands


class Collection:
    """Raises what insert_many raises for the reply ``details`` (the server's writeErrors shape)."""

    def __init__(self, details: dict | None):
        self.details = details
        self.batches: list[int] = []

    def insert_many(self, documents, ordered=True):
        assert ordered is False
        self.batches.append(len(documents))
        if self.details:
            raise BulkWriteError(self.details)
        return type("Result", (), {"inserted_ids": [d["_id"] for d in documents]})()


def test_documents_go_in_unordered_batches():
    collection = Collection(None)
    assert insert_documents({"c": collection}, "c", [{"_id": i} for i in range(4500)]) == 4500
    assert collection.batches == [2000, 2000, 500]


def test_documents_already_there_are_not_an_error():
    duplicate = {"index": 3, "code": 11000, "errmsg": "E11000 duplicate key error collection: db.c index: _id_"}
    collection = Collection({"writeErrors": [duplicate], "nInserted": 9, "writeConcernErrors": []})
    assert insert_documents({"c": collection}, "c", [{"_id": i} for i in range(10)]) == 9


def test_any_other_write_error_stops_the_seed_naming_the_document():
    errors = [{"index": 1, "code": 11000, "errmsg": "E11000 duplicate key"},
              {"index": 4, "code": 121, "errmsg": "Document failed validation"}]
    collection = Collection({"writeErrors": errors, "nInserted": 0})
    with pytest.raises(SeedFailed, match=r"MongoDB refused seeded document 4 of c: Document failed validation"):
        insert_documents({"c": collection}, "c", [{"_id": i} for i in range(2010)])


def family(kind: str, ttl: TtlRule) -> KeyFamily:
    return KeyFamily("f", "f:{id}", kind, ttl)


def test_strings_are_one_set_with_their_ttl():
    batch = KeyBatch(family("string", TtlRule("required", default=60)), "string", [b"f:1"], [b"v"], 60)
    assert encode_commands(batch) == [(b"f:1", b"*5\r\n$3\r\nSET\r\n$3\r\nf:1\r\n$1\r\nv\r\n$2\r\nEX\r\n$2\r\n60\r\n", 1)]
    no_ttl = KeyBatch(family("string", TtlRule("none")), "string", [b"f:1"], [b"v"], None)
    assert encode_commands(no_ttl)[0][1] == b"*3\r\n$3\r\nSET\r\n$3\r\nf:1\r\n$1\r\nv\r\n"


def test_collections_are_written_whole_so_that_a_second_load_converges():
    batch = KeyBatch(family("hash", TtlRule("required", default=600)), "hash", [b"f:1"], [{"a": "1", "b": 2}], 600)
    (key, commands, replies), = encode_commands(batch)
    assert replies == 3
    assert commands == (b"*2\r\n$3\r\nDEL\r\n$3\r\nf:1\r\n"
                        b"*6\r\n$4\r\nHSET\r\n$3\r\nf:1\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n"
                        b"*3\r\n$6\r\nEXPIRE\r\n$3\r\nf:1\r\n$3\r\n600\r\n")
    zset = KeyBatch(family("zset", TtlRule("none")), "zset", [b"f:2"], [[("m", 1.5)]], None)
    assert encode_commands(zset)[0][1].endswith(b"$4\r\nZADD\r\n$3\r\nf:2\r\n$3\r\n1.5\r\n$1\r\nm\r\n")
