"""Offline $jsonSchema validation of Sovren communications: cost of MongoDB's semantics.

Seeding and tests validate documents with ``DocumentValidator`` where no
server is available. This prints its throughput and its ratio to plain
jsonschema Draft 4 validating the same documents as plain JSON (which cannot
tell a date from a string or an int from a long), on the same schema.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from bson import ObjectId, json_util
from jsonschema import Draft4Validator

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))

from smoke import parse_with_smoke  # noqa: E402

from sovren_db.mongo.declared import load_declared  # noqa: E402
from sovren_db.mongo.validate import DocumentValidator  # noqa: E402

DOCUMENTS = 20_000
STATUSES = ("sent", "delivered", "failed", "bounced")  # one in four is rejected


def documents(count: int) -> list[dict]:
    start = datetime.datetime(2024, 1, 1)
    return [
        {
            "_id": ObjectId(),
            "messageId": f"{i:08x}-0000-4000-8000-000000000000",
            "userId": f"{i % 997:08x}-1111-4111-8111-111111111111",
            "recipient": f"user{i}@example.com",
            "message": "x" * (i % 200),
            "status": STATUSES[i % 4],
            "timestamp": start + datetime.timedelta(seconds=i),
        }
        for i in range(count)
    ]


def timed(check, items) -> tuple[float, int]:
    began = time.perf_counter()
    rejected = sum(1 for item in items if not check(item))
    return time.perf_counter() - began, rejected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=DOCUMENTS, help="a multiple of 4")
    count = parse_with_smoke(parser, documents=200).documents
    schema = load_declared(REPO / "mongo").collections["communications"].validator["$jsonSchema"]
    bson_docs = documents(count)
    json_docs = [json.loads(json_util.dumps(d)) for d in bson_docs]
    untyped = {
        name: {k: v for k, v in rule.items() if k != "bsonType"}
        for name, rule in schema["properties"].items()
    }
    plain_schema = {**schema, "properties": untyped}
    mongo = DocumentValidator(schema)
    plain = Draft4Validator(plain_schema)
    mongo_time, mongo_rejected = timed(mongo.accepts, bson_docs)
    plain_time, plain_rejected = timed(plain.is_valid, json_docs)
    assert mongo_rejected == plain_rejected == count // 4, (mongo_rejected, plain_rejected)
    print(f"DocumentValidator: {count / mongo_time:,.0f} documents/s, {mongo_rejected} rejected")
    print(f"plain jsonschema Draft 4 (no BSON types): {count / plain_time:,.0f} documents/s")
    print(f"ratio (MongoDB semantics / plain): {mongo_time / plain_time:.2f}x")


if __name__ == "__main__":
    main()
