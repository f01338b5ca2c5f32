"""Lint rules with stable codes, one module per family (Atlas' analyzers):

- :mod:`.destructive` (x1xx): data is lost;
- :mod:`.incompatible` (x2xx): code written for the old shape breaks;
- :mod:`.safety` (x3xx): the change can fail or leave data behind its declaration;
- :mod:`.performance` (x4xx): ordinary statements become slow on large tables;
- :mod:`.cross_store` (XSxxx): a change in one store that another store's declarations still rely on.

A rule is a function ``check(facts, context)`` yielding :class:`Hit`; registering
it with :func:`rule` gives it its code, name, store and summary. Codes never
change meaning: a retired rule's code is not reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Iterable, Iterator

from ...core.config import Settings
from ...core.findings import Finding
from ..config import LintConfig
from ..facts import RevisionFacts


@dataclass(frozen=True)
class Hit:
    line: int | None
    object: str
    message: str


@dataclass(frozen=True)
class Rule:
    code: str
    name: str
    store: str
    family: str
    summary: str
    check: Callable[[RevisionFacts, "LintContext"], Iterable[Hit]] | None  # None: reported by the engine
    severity: str = "error"


RULES: dict[str, Rule] = {}


def _add(entry: Rule) -> None:
    if entry.code in RULES:
        raise ValueError(f"lint rule code {entry.code} is registered twice")
    RULES[entry.code] = entry


def reported_elsewhere(code: str, name: str, store: str, family: str, summary: str, severity: str = "error") -> None:
    """List a code that the engine reports itself (acceptances, lint.toml), so --list-rules shows it."""
    _add(Rule(code, name, store, family, summary, None, severity))


def rule(code: str, name: str, store: str, summary: str, severity: str = "error"):
    """Register ``check`` as rule ``code``; its family is the module it lives in."""

    def register(check: Callable[[RevisionFacts, "LintContext"], Iterable[Hit]]):
        _add(Rule(code, name, store, check.__module__.rsplit(".", 1)[-1], summary, check, severity))
        return check

    return register


@dataclass
class LintContext:
    """What rules may consult besides the revision: settings, lint.toml, current declarations."""

    settings: Settings
    config: LintConfig = field(default_factory=LintConfig)

    @cached_property
    def mongo_declared(self):
        """The collections declared in mongo/ (None without declarations)."""
        from ...mongo.declared import has_declarations, load_declared

        if not has_declarations(self.settings.mongo_dir):
            return None
        return load_declared(self.settings.mongo_dir, display_root=self.settings.root)

    @cached_property
    def redis_declared(self):
        """The key families and channels declared in redis/ (None without the folder)."""
        from ...redis.declared import load_declarations

        if not self.settings.redis_dir.is_dir():
            return None
        return load_declarations(self.settings.redis_dir)


def all_rules() -> list[Rule]:
    _load_families()
    return [RULES[code] for code in sorted(RULES)]


def run_rules(facts: RevisionFacts, context: LintContext) -> Iterator[Finding]:
    for current in all_rules():
        if current.check is None:
            continue
        for hit in current.check(facts, context):
            yield Finding(current.store, facts.where(hit.line), f"{hit.object}: {hit.message}", code=current.code,
                          severity=current.severity, file=facts.display, line=hit.line)


def _load_families() -> None:
    from . import cross_store, destructive, incompatible, performance, safety  # noqa: F401  (they register their rules)

    if "LN001" not in RULES:
        reported_elsewhere("LN001", "acceptance-without-reason", "lint", "acceptance",
                           "an acceptance comment lacks codes or a reason")
        reported_elsewhere("LN002", "acceptance-unused", "lint", "acceptance",
                           "an acceptance matches no finding of its revision", "warning")
