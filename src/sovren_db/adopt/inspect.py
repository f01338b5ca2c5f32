"""``sovren-db inspect``: write declarations from the live servers."""

from __future__ import annotations

import tomllib
from pathlib import Path

from ..core.config import Settings
from ..core.errors import Refused
from ..env import connected
from .personal import mongo_candidates, personal_data_candidates, redis_candidates
from .postgres_read import Inspected, read_postgres
from .postgres_write import write_postgres


def refuse_to_overwrite(settings: Settings, out: Path | None, stores: list[str]) -> None:
    """Before any server is read: inspect writes into folders that hold no declarations yet."""
    globs = {"postgres": ("*.py", "*.sql"), "mongo": ("*.toml", "*.json"), "redis": ("*.toml",)}
    for store in stores:
        folder = (out / store) if out is not None else getattr(settings, f"{store}_dir")
        found = sorted(p.name for pattern in globs[store] for p in folder.glob(pattern)) if folder.is_dir() else []
        if found:
            raise Refused(f"{folder} already holds declarations ({', '.join(found[:3])}): inspect into an "
                          "empty folder with --out DIR, or pass --force to overwrite them.")


def inspect_postgres(settings: Settings, out: Path | None = None) -> tuple[Inspected, list[Path], list]:
    """Read the configured Postgres and write ``tables.py``, ``schema.py`` (and ``baseline.sql``)."""
    folder = (out / "postgres") if out is not None else settings.postgres_dir
    with connected(settings) as connection:
        inspected = read_postgres(connection)
        connection.rollback()
    written = write_postgres(inspected, folder)
    return inspected, written, personal_data_candidates(inspected.metadata, str(folder / "tables.py"))


def inspect_redis(settings: Settings, out: Path | None = None, *, fraction: float = 1.0,
                  rate: float | None = None) -> tuple[Path, str, list]:
    """Infer the key families of the configured Redis into ``redis/inspected.toml``; returns it and a summary."""
    from ..redis.backend import RedisBackend
    from .redis_infer import KeyspaceInference, render_toml

    backend = RedisBackend(settings)
    backend.connect()
    try:
        with backend.reporting_errors():
            result = KeyspaceInference(fraction, rate).run(backend.masters())
    finally:
        backend.close()
    folder = (out / "redis") if out is not None else settings.redis_dir
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "inspected.toml"
    path.write_text(render_toml(result))
    families = tomllib.loads(path.read_text()).get("families", {})
    findings = redis_candidates({name: body["pattern"] for name, body in families.items()}, str(path))
    rate_seen = result.scanned / result.elapsed if result.elapsed else 0.0
    return path, (f"redis: {result.scanned:,} keys scanned, {result.sampled:,} sampled in {result.elapsed:.1f} s "
                  f"({rate_seen:,.0f} keys/s)"), findings


def inspect_mongo(settings: Settings, out: Path | None = None, *, infer: int = 0) -> tuple[list[Path], list]:
    """Write each collection of the configured MongoDB database; ``infer`` > 0 samples that many
    documents of each collection without a validator and writes a ``$jsonSchema`` for it."""
    from ..mongo.backend import MongoBackend
    from ..mongo.live import introspect
    from .mongo_write import write_mongo

    backend = MongoBackend(settings)
    backend.connect()
    try:
        db = backend.db
        state = introspect(db)
        notes = {}
        if infer > 0:
            state, notes = with_inferred_validators(state, lambda name: _sample(db[name], infer),
                                                    lambda name: db[name].estimated_document_count())
    finally:
        backend.close()
    folder = (out / "mongo") if out is not None else settings.mongo_dir
    findings = [f for name, spec in sorted(state.collections.items()) if spec.validator
                for f in mongo_candidates(name, spec.validator.get("$jsonSchema") or {},
                                          str(folder / f"{name}.schema.json"))]
    return write_mongo(state, folder, notes), findings


def _sample(collection, size: int) -> list[dict]:
    return list(collection.aggregate([{"$sample": {"size": size}}]))


def with_inferred_validators(state, sample, count):
    """``state`` with a ``$jsonSchema`` validator inferred for each collection that has none and
    holds documents (time series excepted: MongoDB refuses validators there)."""
    from dataclasses import replace

    from ..mongo.extjson import canonical
    from ..mongo.state import DatabaseState
    from .mongo_infer import infer_schema

    collections, notes = dict(state.collections), {}
    for name, spec in state.collections.items():
        if spec.validator is not None or "timeseries" in spec.options:
            continue
        documents = sample(name)
        schema = infer_schema(documents, name, total=count(name))
        if schema is not None:
            collections[name] = replace(spec, validator={"$jsonSchema": canonical(schema)})
            notes[name] = f"Validator inferred from {len(documents)} sampled documents: review it before applying."
    return DatabaseState(collections=collections, sharded=state.sharded), notes
