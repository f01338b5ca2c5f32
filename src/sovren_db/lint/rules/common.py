"""Lookups several rules share: a property in a $jsonSchema, a placeholder in a Redis pattern."""

from __future__ import annotations

from typing import Any

from ..facts import RevisionFacts


def property_schema(validator: dict | None, path: str) -> dict | None:
    """The $jsonSchema of property ``path`` (``a.b`` walks nested objects), or None if undeclared."""
    schema = (validator or {}).get("$jsonSchema")
    for part in path.split("."):
        if not isinstance(schema, dict):
            return None
        if schema.get("bsonType") == "array" or schema.get("type") == "array":
            schema = schema.get("items")
            if not isinstance(schema, dict):
                return None
        schema = (schema.get("properties") or {}).get(part)
    return schema if isinstance(schema, dict) else None


def bson_types(schema: dict) -> set[str]:
    kinds = schema.get("bsonType", schema.get("type"))
    if kinds is None:
        return set()
    return {kinds} if isinstance(kinds, str) else {str(k) for k in kinds}


def revision_validator(facts: RevisionFacts, collection: str) -> tuple[bool, dict | None]:
    """(found, validator) as this revision leaves ``collection``, if the revision sets it."""
    from ...mongo.ops import CreateCollectionOp, SetValidatorOp

    found, validator = False, None
    for op, _ in facts.steps_of(CreateCollectionOp, SetValidatorOp):
        if op.collection == collection:
            found, validator = True, op.validator
    return found, validator


def declared_validator(context: Any, collection: str) -> dict | None:
    declared = context.mongo_declared
    spec = declared.collections.get(collection) if declared else None
    return spec.validator if spec else None


def redis_placeholders(context: Any, name: str) -> set[str] | None:
    """The placeholders of the declared family or channel ``name`` (None when neither is declared)."""
    declared = context.redis_declared
    if declared is None:
        return None
    entry = declared.families.get(name) or declared.channels.get(name)
    return set(entry.parsed.placeholders) if entry is not None else None


def shown_seconds(seconds: int | None) -> str:
    from ...redis.state import format_duration

    return "never" if seconds is None else format_duration(int(seconds))
