"""Postgres lint: each revision's SQL, as it runs, through squawk (PyPI ``squawk-cli``).

The SQL squawk reads is the revision's offline output wrapped the way
``migrate`` runs it: ``lock_timeout`` and ``statement_timeout`` set first (env.py
sets both on every migration), the revision in one transaction, its
``autocommit_block()`` parts outside. Each violation keeps squawk's rule name
as its code and points at the revision file line that emitted the statement.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..core.config import Settings
from ..core.errors import ConfigError, SovrenError
from ..core.findings import Finding
from .config import LintConfig
from .facts import RevisionFacts

SQUAWK_TIMEOUT = 120


def squawk_binary() -> str:
    """The squawk installed next to this Python (the virtualenv), else the one on PATH."""
    beside = Path(sys.executable).parent / "squawk"
    if beside.is_file():
        return str(beside)
    found = shutil.which("squawk")
    if not found:
        raise ConfigError("squawk is not installed: pip install squawk-cli (or sovren-db[lint]) "
                          "to lint the Postgres part of revisions.")
    return found


@dataclass(frozen=True)
class Span:
    """Lines ``first``..``last`` (1-based) of the SQL file came from ``line`` of the revision file."""

    first: int
    last: int
    line: int | None


def revision_sql(facts: RevisionFacts, settings: Settings) -> tuple[str, list[Span]]:
    """The SQL squawk reads for one revision, and where each of its lines came from."""
    chunks: list[tuple[str, int | None]] = [
        (f"SET lock_timeout = '{settings.lock_timeout}';", None),
        (f"SET statement_timeout = '{settings.statement_timeout}';", None),
        ("BEGIN;", None),
        *((s.sql, s.line) for s in facts.statements),
        ("COMMIT;", None),
    ]
    lines: list[str] = []
    spans: list[Span] = []
    for sql, line in chunks:
        first = len(lines) + 1
        lines.extend(sql.splitlines() or [""])
        spans.append(Span(first, len(lines), line))
    return "\n".join(lines) + "\n", spans


def squawk_findings(revisions: list[RevisionFacts], settings: Settings, config: LintConfig) -> list[Finding]:
    """Run squawk once over every revision's SQL; one Finding per violation."""
    revisions = [r for r in revisions if r.statements]
    if not revisions:
        return []
    with tempfile.TemporaryDirectory(prefix="sovren-lint-") as folder:
        spans: dict[str, tuple[RevisionFacts, list[Span], list[str]]] = {}
        paths = []
        for facts in revisions:
            sql, spans_of = revision_sql(facts, settings)
            path = Path(folder) / f"{facts.revision}.sql"
            path.write_text(sql)
            spans[path.name] = (facts, spans_of, sql.splitlines())
            paths.append(str(path))
        violations = _run(paths, config, cwd=folder)
    return [_finding(v, *spans[Path(v.get("file", "")).name]) for v in violations
            if Path(v.get("file", "")).name in spans]


def _run(paths: list[str], config: LintConfig, cwd: str) -> list[dict]:
    command = [squawk_binary(), "--reporter", "json", "--no-error-on-unmatched-pattern"]
    if config.pg_version:
        command.append(f"--pg-version={config.pg_version}")
    if config.exclude:
        command.append(f"--exclude={','.join(config.exclude)}")
    try:
        done = subprocess.run(command + paths, capture_output=True, text=True, timeout=SQUAWK_TIMEOUT, cwd=cwd)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SovrenError(f"squawk could not run: {exc}.") from None
    try:
        violations = json.loads(done.stdout or "[]")
    except ValueError:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise SovrenError(f"squawk failed (exit {done.returncode}): {reason[0] if reason else 'no output'}.") from None
    if not isinstance(violations, list):
        raise SovrenError("squawk's JSON report is not a list of violations.")
    return violations


def _excerpt(sql_line: str, limit: int = 80) -> str:
    text = " ".join(sql_line.split()).rstrip(",;")
    return text if len(text) <= limit else text[:limit - 3] + "..."


# squawk names these two without advice; the online path for them is sovren_db.postgres.expand.
ONLINE_PATH = {
    "changing-column-type": (
        "Change it by expand/contract instead (autogenerate writes it): op.expand_column(table, column, type_=...) "
        "adds the new column, keeps both in step with a trigger and backfills it in throttled batches, while old "
        "clients keep the table and new ones see their version (search_path sovren_<version>); "
        "op.contract_column, in a later revision once every client moved, swaps them in one brief lock."),
    "renaming-column": (
        "Rename it by expand/contract instead: op.expand_column(table, column, new_name=...) shows the new name "
        "to new clients through a view (search_path sovren_<version>) while old ones keep the old; "
        "op.contract_column, in a later revision once every client moved, renames the column."),
}


def _finding(violation: dict, facts: RevisionFacts, spans: list[Span], sql_lines: list[str]) -> Finding:
    index = int(violation.get("line", 0))  # squawk counts lines from 0
    line = next((s.line for s in spans if s.first <= index + 1 <= s.last), None)
    message = str(violation.get("message", "")).strip()
    advice = str(violation.get("help") or ONLINE_PATH.get(str(violation.get("rule_name")), "")).strip()
    statement = _excerpt(sql_lines[index]) if 0 <= index < len(sql_lines) else ""
    return Finding(store="postgres", object=facts.where(line), code=str(violation.get("rule_name", "squawk")),
                   message=f"`{statement}`: {message} {advice}".strip() if statement else f"{message} {advice}".strip(),
                   file=facts.display, line=line)
