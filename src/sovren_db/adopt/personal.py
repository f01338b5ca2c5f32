"""Personal data cannot be inferred from a catalog: name the columns a person should look at."""

from __future__ import annotations

import re

from sqlalchemy import MetaData
from sqlalchemy.types import JSON, String

from ..core.findings import Finding

# Column names (whole words between underscores) that usually hold data about a person.
_NAMES = re.compile(
    r"(?:^|_)(e?mail|email_address|phone|phone_number|mobile|telephone|address|street|city|postcode|"
    r"postal_code|zip|zipcode|birth|birthday|birthdate|dob|date_of_birth|ssn|passport|first_name|"
    r"last_name|full_name|surname|given_name|family_name|username|user_name|display_name|ip_address|"
    r"name)(?:$|_)", re.I)
_NOT_PERSONAL = re.compile(r"(?:^|_)(table|schema|file|host|type|class|column|index|provider|tier|role)_name$", re.I)


def looks_personal(name: str) -> bool:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)  # FullName -> Full_Name
    return bool(_NAMES.search(words)) and not _NOT_PERSONAL.search(words)


def personal_data_candidates(metadata: MetaData, file: str) -> list[Finding]:
    found = []
    for table in metadata.sorted_tables:
        for column in table.columns:
            if not looks_personal(column.name):
                continue
            if not isinstance(column.type, (String, JSON)) and "date" not in str(column.type).lower():
                continue
            found.append(Finding(
                "postgres", f"column {table.fullname}.{column.name}",
                f"may hold personal data ({column.type}): declare it with PersonalData in postgres/ "
                "or leave it as it is", code="personal-data-candidate", severity="warning", file=file))
    return found


def mongo_candidates(collection: str, schema: dict, file: str, path: str = "") -> list[Finding]:
    """Fields of a $jsonSchema whose names suggest personal data, at any depth."""
    found = []
    for name, sub in (schema.get("properties") or {}).items():
        where = f"{path}.{name}" if path else name
        if looks_personal(name):
            found.append(Finding("mongo", f"field {collection}.{where}", "may hold personal data: mark it in "
                                 "mongo/privacy.cfg or leave it as it is", code="personal-data-candidate",
                                 severity="warning", file=file))
        found += mongo_candidates(collection, sub, file, where) if isinstance(sub, dict) else []
    return found


_REDIS_WORDS = re.compile(r"(?:^|[^a-z])(user|users|session|sessions|email|phone|profile|account)(?:$|[^a-z])", re.I)


def redis_candidates(patterns: dict[str, str], file: str) -> list[Finding]:
    """Key families whose names suggest they are about one person (family name -> pattern)."""
    return [Finding("redis", f"key family {name}", f"{pattern} may hold personal data: declare pii = true and "
                    "its subject placeholder, or leave it as it is", code="personal-data-candidate",
                    severity="warning", file=file)
            for name, pattern in patterns.items() if _REDIS_WORDS.search(pattern)]
