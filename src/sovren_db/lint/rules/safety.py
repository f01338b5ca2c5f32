"""x3xx: changes that can fail on live data or let data escape its declaration."""

from __future__ import annotations

import json
from typing import Iterator

from ...mongo.ops import CreateCollectionOp, CreateIndexOp, SetValidatorOp
from ...redis.ops import DeclareKeyFamilyOp
from ..facts import RevisionFacts
from . import Hit, LintContext, rule
from .common import bson_types, declared_validator, property_schema, revision_validator

ENFORCING_ACTIONS = ("error", "errorAndLog")
LEVELS = {"off": 0, "moderate": 1, "strict": 2}


def _tightens(op: SetValidatorOp) -> bool:
    prior = op.prior or {}
    if not prior.get("validator"):
        return True
    if json.dumps(prior["validator"], sort_keys=True) != json.dumps(op.validator, sort_keys=True):
        return True
    looser_level = LEVELS.get(prior.get("validation_level") or "strict", 2) < LEVELS["strict"]
    return looser_level or (prior.get("validation_action") or "error") not in ENFORCING_ACTIONS


@rule("MG301", "validator-unchecked", "mongo", "a strict/error validator is set without a data check")
def validator_unchecked(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    for op, line in facts.steps_of(SetValidatorOp):
        enforcing = op.validation_level == "strict" and op.validation_action in ENFORCING_ACTIONS
        if op.validator is None or not enforcing or op.allow_violations or not _tightens(op):
            continue
        yield Hit(line, f"validator of {op.collection}",
                  "tightened to strict/error with no data check: the step is refused while any stored document "
                  "breaks it; check the documents first ('sovren-db check --data'), then pass "
                  "validation_level='moderate' or validation_action='warn' for the transition, "
                  "or allow_violations=True once they are known")


def _ttl_indexes(facts: RevisionFacts) -> Iterator[tuple[str, dict, int | None]]:
    for op, line in facts.steps_of(CreateIndexOp):
        yield op.collection, op.index, line
    for op, line in facts.steps_of(CreateCollectionOp):
        for index in op.indexes:
            yield op.collection, index, line


def _date_typed(schema: dict | None) -> bool:
    if schema is None:
        return False
    kinds = bson_types(schema)
    if kinds == {"array"}:
        return _date_typed(schema.get("items") if isinstance(schema.get("items"), dict) else None)
    return bool(kinds) and "date" in kinds and kinds <= {"date", "null"}


@rule("MG302", "ttl-not-date", "mongo", "a TTL index on a field the collection's $jsonSchema does not type as date")
def ttl_not_date(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    for collection, index, line in _ttl_indexes(facts):
        if index.get("expireAfterSeconds") is None or len(index.get("key") or []) != 1:
            continue
        field = index["key"][0][0]
        found, validator = revision_validator(facts, collection)
        if not found:
            validator = declared_validator(context, collection)
        schema = property_schema(validator, field)
        if _date_typed(schema):
            continue
        why = ("the collection declares no $jsonSchema" if not validator else
               f"$jsonSchema does not declare {field}" if schema is None else
               f"$jsonSchema types {field} as {', '.join(sorted(bson_types(schema))) or 'anything'}")
        yield Hit(line, f"TTL index {collection}.{index.get('name')}",
                  f"{why}: documents whose {field} is not a date never expire; type it bsonType 'date'")


@rule("RD301", "family-without-ttl", "redis", "a new family declares no TTL rule")
def family_without_ttl(facts: RevisionFacts, context: LintContext) -> Iterator[Hit]:
    for op, line in facts.steps_of(DeclareKeyFamilyOp):
        ttl = (op.family.get("ttl") or {}).get("policy", "optional")
        if op.previous is None and ttl == "optional" and not op.family.get("foreign"):
            yield Hit(line, f"key family {op.family['name']}",
                      "declared with no TTL rule: its keys may live forever unnoticed; declare "
                      "ttl = { policy = 'required', max = ... } or ttl = 'none' for keys that must persist")
