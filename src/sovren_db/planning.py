"""``plan``'s structured list: every step ``migrate`` would run, of every store, in order.

The plan runs the chain offline (``alembic upgrade --sql``). Alembic writes each statement with one
``static_output`` call, so a buffer that keeps its writes apart has the statements one by one, and the
``-- Running upgrade A -> B`` lines say which revision each belongs to; the runtime logs each Mongo and
Redis step as it is collected. The list gives each revision's Postgres statements, then its store steps
store by store: the order ``migrate`` runs them in.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from typing import Any

from .core.runtime import STORE_ORDER, Runtime
from .core.storeops import StoreOp

_RUNNING = re.compile(r"-- Running upgrade (?P<start>\S*) -> (?P<revision>\S+)")
_STATEMENT = re.compile(r"\s*(?P<verb>[A-Za-z]+(?:\s+(?:TABLE|INDEX|UNIQUE INDEX|VIEW|FUNCTION|TRIGGER|POLICY|"
                        r"TYPE|EXTENSION|ROLE|SCHEMA|SEQUENCE|CONSTRAINT|OR REPLACE FUNCTION|INTO|FROM))?)"
                        r"(?:\s+(?:CONCURRENTLY|IF NOT EXISTS|IF EXISTS))*\s*(?P<target>[\w.\"]+)?", re.IGNORECASE)
_TARGET_KEYS = ("collection", "family", "channel", "new", "name", "key", "pattern")


class StatementLog(io.StringIO):
    """An output buffer that also keeps each write (one statement or one comment) apart."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[str | StoreOp] = []

    def write(self, text: str) -> int:
        self.entries.append(text)
        return super().write(text)


@dataclass
class PlanRuntime(Runtime):
    """The offline runtime of ``plan``: store steps printed as comments, as always, and logged in order."""

    log: StatementLog = field(default_factory=StatementLog)

    def collect(self, operation: StoreOp, operations: Any) -> None:
        self.log.entries.append(operation)
        super().collect(operation, operations)


def plan_steps(log: StatementLog) -> list[dict[str, Any]]:
    """Every step in order: ``{store, revision, op, target, sql | command}``."""
    steps: list[dict[str, Any]] = []
    revision = None
    for entry in log.entries:
        if isinstance(entry, StoreOp):
            steps.append({"store": entry.store, "revision": revision, "op": entry.op_name,
                          "target": _store_target(entry), "command": entry.arguments(),
                          "description": entry.describe()})
            continue
        text = entry.strip()
        if (running := _RUNNING.match(text)) is not None:
            revision = running["revision"]
        elif text and not text.startswith("--"):
            steps.append({"store": "postgres", "revision": revision, **_statement(text)})
    order = {store: rank for rank, store in enumerate(("postgres", *STORE_ORDER))}
    revisions = list(dict.fromkeys(step["revision"] for step in steps))
    return sorted(steps, key=lambda step: (revisions.index(step["revision"]), order[step["store"]]))


def _statement(sql: str) -> dict[str, Any]:
    match = _STATEMENT.match(sql)
    verb = " ".join(match["verb"].upper().split()) if match else sql.split(None, 1)[0].upper()
    target = match["target"] if match and " " in verb else None  # GRANT, DO, COMMENT...: no one object
    return {"op": verb, "target": target.strip('"') if target else None, "sql": sql}


def _store_target(op: StoreOp) -> str | None:
    arguments = op.arguments()
    value = next((arguments[k] for k in _TARGET_KEYS if arguments.get(k)), None)
    if isinstance(value, dict):  # a family or channel document: its name
        value = value.get("name")
    return None if value is None else str(value)
