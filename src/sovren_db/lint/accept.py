"""Findings accepted in the revision file: ``# sovren-db: accept CODE[, CODE...] because REASON``.

Only comments count (a string that happens to contain the words does not).
An acceptance covers its codes for the whole revision; it needs a reason,
and one that matches nothing is reported so that stale ones get removed.
"""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass
from pathlib import Path

from ..core.findings import Finding
from .facts import RevisionFacts

_MARK = re.compile(r"#\s*sovren-db:\s*accept\b(?P<rest>.*)$", re.IGNORECASE)
_BECAUSE = re.compile(r"\s+because\s+", re.IGNORECASE)
FORM = "# sovren-db: accept <CODE>[, <CODE>...] because <reason>"


@dataclass(frozen=True)
class Acceptance:
    codes: tuple[str, ...]
    reason: str
    line: int

    def covers(self, code: str) -> bool:
        return code.lower() in (c.lower() for c in self.codes)


def _comments(path: Path) -> list[tuple[int, str]]:
    try:
        source = path.read_text(encoding="utf-8")
        tokens = tokenize.generate_tokens(io.StringIO(source).readline)
        return [(t.start[0], t.string) for t in tokens if t.type == tokenize.COMMENT]
    except (OSError, UnicodeDecodeError, tokenize.TokenError, SyntaxError):
        return []


def read_acceptances(facts: RevisionFacts) -> tuple[list[Acceptance], list[Finding]]:
    """The acceptances of one revision file, and an LN001 finding for each malformed one."""
    accepted: list[Acceptance] = []
    problems: list[Finding] = []
    for line, comment in _comments(facts.path):
        mark = _MARK.search(comment)
        if not mark:
            continue
        parts = _BECAUSE.split(" " + mark["rest"].strip(), maxsplit=1)
        codes = tuple(c for c in re.split(r"[\s,]+", parts[0]) if c)
        reason = parts[1].strip() if len(parts) == 2 else ""
        if not codes or not reason:
            problems.append(Finding("lint", facts.where(line), f"an acceptance needs codes and a reason: {FORM}",
                                    code="LN001", file=facts.display, line=line))
            continue
        accepted.append(Acceptance(codes, reason, line))
    return accepted, problems


def apply_acceptances(facts: RevisionFacts, findings: list[Finding]) -> tuple[list[Finding], list[dict]]:
    """Split one revision's findings into those still standing and those accepted (with their reasons)."""
    acceptances, standing = read_acceptances(facts)
    accepted: list[dict] = []
    used: set[tuple[int, str]] = set()
    for finding in findings:
        match = next((a for a in acceptances if a.covers(finding.code)), None)
        if match is None:
            standing.append(finding)
            continue
        used.add((match.line, finding.code.lower()))
        accepted.append({"code": finding.code, "store": finding.store, "file": finding.file,
                         "line": finding.line, "message": finding.message, "reason": match.reason,
                         "accepted_at": match.line})
    for acceptance in acceptances:
        for code in acceptance.codes:
            if (acceptance.line, code.lower()) not in used:
                standing.append(Finding("lint", facts.where(acceptance.line),
                                        f"accepts {code}, which no finding of this revision has; remove it",
                                        code="LN002", severity="warning", file=facts.display,
                                        line=acceptance.line))
    return standing, accepted
