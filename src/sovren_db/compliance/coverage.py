"""``pii_findings``: places that hold personal data without an erasure rule (for ``sovren-db check``).

Errors (code ``pii-uncovered``, ``pii-no-erasure``) are places erasure would
miss or be blocked by; ``sovren-db erase`` refuses to run while one exists.
Warnings (``pii-undeclared``) are columns and fields named like personal data
in a table or collection that declares none: a person should look.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.findings import Finding
from ..postgres.declared import load_schema
from ..postgres.state import PersonalData, Schema
from .mongo_marks import DEFAULT_SUBJECT, marks_path
from .pii import declares_personal_data, load_pii_map, mongo_collections, mongo_rules, redis_declarations

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..redis.state import RedisState

PERSONAL_NAMES = frozenset({
    "name", "username", "user_name", "first_name", "last_name", "full_name", "display_name", "given_name",
    "family_name", "surname", "email", "phone", "mobile", "address", "street", "postcode", "postal_code",
    "zip", "zip_code", "ip", "ip_address", "birthday", "birth_date", "date_of_birth", "dob", "ssn",
    "passport", "national_id", "tax_id", "iban", "recipient", "card_number", "raw_card_number",
})
PERSONAL_SUFFIXES = ("_email", "_phone", "_address", "_ip", "_name_full", "_birth_date")


@lru_cache(maxsize=8192)  # check asks again for every column of every table on each run
def looks_personal(name: str) -> bool:
    """Whether a column or field is named like personal data (``email``, ``homeAddress``, ``user_phone``)."""
    snake = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    return snake in PERSONAL_NAMES or snake.endswith(PERSONAL_SUFFIXES)


def pii_findings(settings: "Settings") -> list[Finding]:
    """Every place holding personal data that erasure does not cover, in the declared stores."""
    schema = load_schema(settings.postgres_dir)
    if not declares_personal_data(schema):  # a valid project: only names that look personal are worth a look
        return postgres_findings(schema, _shown(settings, settings.postgres_dir), None)
    pii = load_pii_map(settings, schema)   # an inconsistent declaration raises (exit 2), as check does
    findings = postgres_findings(schema, _shown(settings, settings.postgres_dir), pii.subject_name)
    if "mongo" in settings.stores:
        findings += mongo_findings(settings)
    if "redis" in settings.stores:
        findings += redis_findings(redis_declarations(settings), pii.subject_name, settings)
    return findings


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def _shown(settings: "Settings", path: Path) -> str:
    try:
        return str(path.relative_to(settings.root))
    except ValueError:
        return str(path)


# -- Postgres -----------------------------------------------------------------

def postgres_findings(schema: Schema, where: str, subject: str | None) -> list[Finding]:
    rules = {r.table: r for r in schema.of(PersonalData)}
    erased = {name for name, r in rules.items() if r.erase == "delete"}
    findings = [f for r in rules.values() for f in _rule_findings(r, where)]
    for name, table in sorted(schema.metadata.tables.items()):
        if name in rules:
            continue
        parents = sorted({fk.column.table.name for fk in table.foreign_keys} & erased)
        if parents:
            findings.append(_finding("postgres", f"table {name}", f"references {', '.join(parents)} (erased by "
                                     "deletion) but declares no PersonalData: its rows would block or outlive "
                                     "an erasure", "pii-uncovered", where))
        elif subject is not None and subject in table.c:
            findings.append(_finding("postgres", f"table {name}", f"has a {subject} column but declares no "
                                     "PersonalData: erasure would not reach it", "pii-uncovered", where))
        findings += [_finding("postgres", f"column {name}.{c.name}", "is named like personal data but the table "
                              "declares no PersonalData", "pii-undeclared", where, "warning")
                     for c in table.c if looks_personal(c.name)]
    return findings


def _rule_findings(rule: PersonalData, where: str) -> list[Finding]:
    if rule.erase == "retain":
        return [_finding("postgres", f"column {rule.table}.{c}", f"is personal data but {rule.table} is retained "
                         "by erasure: it has no erasure rule", "pii-no-erasure", where) for c in rule.columns]
    if rule.erase == "anonymise":
        cleared = dict(rule.anonymise)
        return [_finding("postgres", f"column {rule.table}.{c}", "is personal data but anonymising "
                         f"{rule.table} leaves it: it has no erasure rule", "pii-no-erasure", where)
                for c in rule.columns if c not in cleared]
    return []


# -- MongoDB ------------------------------------------------------------------

def mongo_findings(settings: "Settings") -> list[Finding]:
    collections = mongo_collections(settings)
    rules = mongo_rules(settings, collections)
    where = _shown(settings, marks_path(settings.mongo_dir))
    findings = []
    for name, spec in sorted(collections.items()):
        if name in rules:
            continue
        properties = set(((spec.validator or {}).get("$jsonSchema") or {}).get("properties", {}))
        if DEFAULT_SUBJECT in properties:
            findings.append(_finding("mongo", f"collection {name}", f"documents name a user ({DEFAULT_SUBJECT}) but "
                                     f"{where} gives no erasure rule for it", "pii-uncovered", where))
        findings += [_finding("mongo", f"field {name}.{p}", "is named like personal data but the collection has "
                              f"no entry in {where}", "pii-undeclared", where, "warning")
                     for p in sorted(properties) if looks_personal(p)]
    return findings


# -- Redis --------------------------------------------------------------------

def redis_findings(declared: "RedisState", subject: str, settings: "Settings") -> list[Finding]:
    findings = []
    for name, family in sorted(declared.families.items()):
        where = _shown(settings, Path(str(declared.sources.get(f"families.{name}", settings.redis_dir))))
        if family.pii and family.subject != subject and family.ttl.policy != "required":
            findings.append(_finding("redis", f"key family {name}", f"holds personal data of {{{family.subject}}}, "
                                     "which erasure of a user does not reach, and its keys do not expire",
                                     "pii-no-erasure", where))
        elif not family.pii and subject in family.parsed.placeholders:
            findings.append(_finding("redis", f"key family {name}", f"is keyed by {{{subject}}} but not marked "
                                     "pii = true with that subject: erasure would not reach it",
                                     "pii-uncovered", where))
    return findings


def _finding(store: str, obj: str, message: str, code: str, where: str, severity: str = "error") -> Finding:
    return Finding(store, obj, message, code=code, severity=severity, file=where)
