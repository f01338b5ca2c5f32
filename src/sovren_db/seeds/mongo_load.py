"""MongoDB: unordered ``insert_many`` batches; seeded documents found again by their ``userId``.

Documents have deterministic ``_id``s, so loading a seed a second time (to
finish an interrupted run) inserts only what is missing: duplicate-key errors
(code 11000) are expected then and ignored; any other write error stops the
seed with the server's reason. The server validates each document too.

That is only sound when the documents already there are this seed's: when
Postgres is loaded afresh (or with ``--reset``) the engine first deletes every
seeded document (:func:`delete_seeded`), since an earlier seed's would collide
on unique keys and be kept, or, their ``_id`` holding another anchor's
creation time, be loaded beside the new ones.
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import BulkWriteError, PyMongoError

from .draws import SEEDED_UUID
from .prevalidate import SeedFailed

BATCH = 2000
DUPLICATE_KEY = 11000
SEEDED_USER_ID = {"$regex": "^" + SEEDED_UUID.pattern + "$"}  # the seeded ids' own shape, anchored


def insert_documents(db: Any, collection: str, documents: list[dict]) -> int:
    """Insert in unordered batches; returns how many were inserted (already present ones are not)."""
    inserted = 0
    for start in range(0, len(documents), BATCH):
        batch = documents[start:start + BATCH]
        try:
            inserted += len(db[collection].insert_many(batch, ordered=False).inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            fatal = next((e for e in errors if e.get("code") != DUPLICATE_KEY), None)
            if fatal is not None:
                index = start + fatal.get("index", 0)
                raise SeedFailed(f"MongoDB refused seeded document {index} of {collection}: "
                                 f"{fatal.get('errmsg', 'write error')}.") from None
            inserted += exc.details.get("nInserted", 0)
        except PyMongoError as exc:
            raise SeedFailed(f"MongoDB failed while seeding {collection}: {exc}.") from None
    return inserted


def seeded_documents(collection: str, filters: dict[str, dict] | None = None) -> dict:
    """The filter of a collection's seeded documents: a seeded ``userId``, unless ``filters`` says."""
    return (filters or {}).get(collection, {"userId": SEEDED_USER_ID})


def delete_seeded(db: Any, collections: list[str], filters: dict[str, dict] | None = None) -> dict[str, int]:
    """Delete the documents of seeded users (or of the seeded rows ``filters`` names per collection) from
    each collection; returns how many per collection."""
    try:
        return {name: db[name].delete_many(seeded_documents(name, filters)).deleted_count for name in collections}
    except PyMongoError as exc:
        raise SeedFailed(f"MongoDB failed while deleting seeded documents: {exc}.") from None
