"""Findings (drift, lint, audit) and their three output formats.

``text`` for people, ``json`` for programs, ``github`` for workflow
annotations (``::error file=...,title=...::message``).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Iterable


@dataclass(frozen=True)
class Finding:
    store: str            # postgres | mongo | redis
    object: str           # "policy users_tenant_isolation on users"
    message: str          # "missing in database"
    code: str = "drift"   # stable rule or finding code
    severity: str = "error"
    file: str | None = None
    line: int | None = None

    def sentence(self) -> str:
        return f"{self.object}: {self.message}"


FORMATS = ("text", "json", "github")


def _escape_github(value: str, *, prop: bool = False) -> str:
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        value = value.replace(":", "%3A").replace(",", "%2C")
    return value


def render_findings(findings: Iterable[Finding], fmt: str, *, notes: Iterable[str] = (),
                    summary: dict | None = None) -> str:
    findings = list(findings)
    notes = list(notes)
    if fmt == "json":
        payload = {"findings": [asdict(f) for f in findings], "notes": notes}
        payload.update(summary or {})
        return json.dumps(payload, indent=2, sort_keys=True)
    if fmt == "github":
        lines = []
        for f in findings:
            level = "error" if f.severity == "error" else "warning"
            props = [f"title={_escape_github(f'{f.store} {f.code}', prop=True)}"]
            if f.file:
                props.insert(0, f"file={_escape_github(f.file, prop=True)}")
                if f.line:
                    props.insert(1, f"line={f.line}")
            lines.append(f"::{level} {','.join(props)}::{_escape_github(f.sentence())}")
        lines.extend(f"::notice::{_escape_github(n)}" for n in notes)
        return "\n".join(lines)
    lines = [f"{f.store}: {f.sentence()}" + (f" [{f.code}]" if f.code not in ("drift",) else "")
             for f in findings]
    lines.extend(notes)
    return "\n".join(lines)


def _workspace_path(path: str) -> str:
    """A file under the current folder (a workflow's checkout) as the relative path annotations need."""
    absolute = os.path.abspath(path)
    inside = absolute.startswith(os.getcwd() + os.sep)
    return os.path.relpath(absolute) if inside else path


def render_error(error: dict, fmt: str, notes: Iterable[str] = ()) -> str:
    """One error (``{"kind", "message", "store", "file", "line"}``) as the format wants it: a JSON
    document with exit code 2, an ``::error`` annotation, or the ``error:`` sentence."""
    if fmt == "json":
        return json.dumps({"error": error, "exit_code": 2, "notes": list(notes)}, indent=2, sort_keys=True)
    if fmt == "github":
        props = [f"title={_escape_github('sovren-db ' + (error.get('store') or error['kind']), prop=True)}"]
        if error.get("file"):
            props.insert(0, f"file={_escape_github(_workspace_path(error['file']), prop=True)}")
            if error.get("line"):
                props.insert(1, f"line={error['line']}")
        return f"::error {','.join(props)}::{_escape_github(error['message'])}"
    return f"error: {error['message']}"
