"""Findings that are not operations: documents violating their collection's current validator.

``sovren-db check --data`` calls :func:`check_findings`. Drift itself comes
from the comparator's operations (``op.drift()``), not from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..core.findings import Finding
from .execute import count_violations
from .extjson import show_id
from .live import managed

if TYPE_CHECKING:
    from ..core.config import Settings

INVALID_DOCUMENTS = "invalid-documents"


def check_findings(settings: "Settings", backend: Any, *, data: bool) -> list[Finding]:
    """With ``data``: per collection with a validator, how many documents violate it (server-side)."""
    if not data or backend is None:
        return []
    findings = []
    for info in backend.db.list_collections():
        validator = (info.get("options") or {}).get("validator")
        if not validator or not managed(info):
            continue
        count, sample = count_violations(backend.db, info["name"], validator)
        if count:
            findings.append(violation_finding(info["name"], count, sample))
    return findings


def violation_finding(collection: str, count: int, sample: list) -> Finding:
    shown = ", ".join(show_id(i) for i in sample)
    return Finding(
        store="mongo",
        object=f"collection {collection}",
        message=f"{count} document(s) violate the current validator (e.g. _id {shown})",
        code=INVALID_DOCUMENTS,
    )
