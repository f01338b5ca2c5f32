"""Which revisions to lint, the offline run, the rules, the acceptances: one LintResult."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from alembic.util import CommandError

from .. import commands
from ..core.config import Settings
from ..core.errors import RevisionError
from ..core.findings import Finding
from .accept import apply_acceptances
from .config import load_config
from .facts import RevisionFacts
from .record import record
from .rules import LintContext, run_rules
from .rules.cross_store import undeclared_link_targets
from .squawk import squawk_findings


@dataclass
class LintResult:
    revisions: list[RevisionFacts] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    accepted: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    @property
    def exit_code(self) -> int:
        return 1 if self.errors else 0

    def summary(self) -> dict:
        return {"revisions": [r.revision for r in self.revisions], "accepted": self.accepted,
                "exit_code": self.exit_code}


def select_revisions(settings: Settings, base: str | None) -> tuple[str, list]:
    """(start, scripts oldest first): after ``base``, or what the database has not applied."""
    script = commands._script(settings)
    if base is None:
        heads = commands.current_heads(settings)  # one connection, one read
        return (heads[0] if heads else "base"), commands._between(script, heads, "heads")
    try:
        scripts = list(script.iterate_revisions("heads", base))
    except CommandError:
        raise RevisionError(f"Revision {base!r} is not in the revision chain.") from None
    return base, list(reversed(scripts))


def lint_revisions(settings: Settings, base: str | None = None) -> LintResult:
    """Lint the revisions after ``base`` (default: those not applied to the configured database)."""
    config = load_config(settings.root)
    start, scripts = select_revisions(settings, base)
    revisions = [RevisionFacts(s.revision, s.doc or "", Path(s.path), commands.display_path(settings, s.path))
                 for s in scripts]
    result = LintResult(revisions=revisions)
    context = LintContext(settings, config)
    if config.links:
        result.findings += undeclared_link_targets(context)
    if not revisions:
        result.notes.append("no revisions to lint" + (f" after {base}" if base else ": the database is at head"))
        return result
    record(settings, start, revisions)
    by_revision: dict[str, list[Finding]] = {r.display: [] for r in revisions}
    for finding in squawk_findings(revisions, settings, config):
        by_revision[finding.file].append(finding)
    for facts in revisions:
        found = by_revision[facts.display] + list(run_rules(facts, context))
        standing, accepted = apply_acceptances(facts, found)
        result.findings += sorted(standing, key=lambda f: (f.line or 0, f.code))
        result.accepted += accepted
    errors = len(result.errors)
    result.notes.append(f"linted {len(revisions)} revision(s) ({', '.join(r.revision for r in revisions)}): "
                        f"{errors} finding(s), {len(result.findings) - errors} warning(s), "
                        f"{len(result.accepted)} accepted")
    return result
