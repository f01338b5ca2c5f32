"""What one examination of a store gives: findings for people, samples for Prometheus.

A probe reads a server once and says both: a ``Finding`` when a threshold is
crossed (naming the measured value, the threshold and the step that fixes
it) and ``Sample`` values that ``sovren-db metrics`` exports whatever they are.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from ..core.errors import first_line
from ..core.findings import Finding
from ..core.urls import redact_text

UNEXAMINED = "unexamined"  # the finding code of a store or probe that could not be read (exit 2)


@dataclass(frozen=True)
class Sample:
    name: str                               # metric name without the sovren_db_ prefix
    value: float
    labels: tuple[tuple[str, str], ...] = ()


@dataclass
class Examination:
    """One store (or the schema) examined: up or not, findings, samples, how long it took."""

    store: str
    up: bool = True
    findings: list[Finding] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    seconds: float = 0.0

    def sample(self, name: str, value: float, **labels: str) -> None:
        self.samples.append(Sample(name, float(value), tuple(sorted(labels.items()))))

    def finding(self, obj: str, message: str, code: str, severity: str = "error", store: str | None = None) -> None:
        self.findings.append(Finding(store or self.store, obj, message, code=code, severity=severity))

    def unexamined(self, what: str, reason: str) -> None:
        self.findings.append(Finding(self.store, what, reason, code=UNEXAMINED))

    @contextmanager
    def probe(self, what: str, *urls: str | None) -> Iterator[None]:
        """Run one probe; its failure becomes one sentence (password-free) and the next probe runs."""
        try:
            yield
        except Exception as exc:  # a probe that fails must not hide the others
            reason = redact_text(first_line(exc), *urls).rstrip(".")
            self.unexamined(what, f"could not be read: {reason}.")


@contextmanager
def timed(examination: Examination) -> Iterator[Examination]:
    began = time.perf_counter()
    try:
        yield examination
    finally:
        examination.seconds = time.perf_counter() - began


def percentile(values: list[float], fraction: float) -> float:
    """The nearest-rank percentile (what latency tools report); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, -(-int(fraction * 1000) * len(ordered) // 1000))
    return ordered[min(rank, len(ordered)) - 1]
