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


def personal_data_candidates(metadata: MetaData, file: str) -> list[Finding]:
    found = []
    for table in metadata.sorted_tables:
        for column in table.columns:
            words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", column.name)  # FullName -> Full_Name
            if not _NAMES.search(words) or _NOT_PERSONAL.search(words):
                continue
            if not isinstance(column.type, (String, JSON)) and "date" not in str(column.type).lower():
                continue
            found.append(Finding(
                "postgres", f"column {table.fullname}.{column.name}",
                f"may hold personal data ({column.type}): declare it with PersonalData in postgres/ "
                "or leave it as it is", code="personal-data-candidate", severity="warning", file=file))
    return found
