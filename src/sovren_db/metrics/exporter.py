"""The exporter: doctor's collections cached, served to Prometheus without waiting on any of them.

Each collection (``postgres``, ``redis``, ``mongo``, ``schema``) runs in its own
background thread on its own interval and replaces its cached examination
when it finishes; a scrape only turns the cache into metric families. A slow
or hung store therefore delays its own collection, never a scrape nor the
other stores. The expensive ``schema`` collection (drift, the audit chain)
is Python-heavy: ``metrics serve`` runs it in a worker process so that it
does not hold the interpreter lock the scrapes need (bench/doctor.py: scrape
p99 2.2x prometheus_client alone with it in a thread).
"""

from __future__ import annotations

import multiprocessing
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import TYPE_CHECKING, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import CollectorRegistry

from ..core.errors import first_line
from ..doctor import UNEXAMINED, Examination, Thresholds, collect
from ..doctor.run import COLLECTIONS, SERVER_COLLECTIONS
from .catalog import METRICS, full_name

if TYPE_CHECKING:
    from ..core.config import Settings


class Exporter:
    """The cache of the last examination of each collection, and the Prometheus collector over it."""

    def __init__(self, settings: "Settings", limits: Thresholds):
        self.settings = settings
        self.limits = limits
        self.collections = [c for c in COLLECTIONS if c == "schema" or c in settings.stores]
        self._cache: dict[str, Examination] = {}
        self._finished: dict[str, float] = {}
        self._lock = threading.Lock()
        self._worker: ProcessPoolExecutor | None = None

    def isolate(self) -> None:
        """Run the schema collection in a worker process from now on (spawned: no inherited threads)."""
        self._worker = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    def close(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
            self._worker = None

    def run(self, name: str) -> Examination:
        """Run one collection now (the schema's in the worker process, once ``isolate`` made one) and cache it."""
        if name == "schema" and self._worker is not None:
            exam = self._worker.submit(collect, name, self.settings, self.limits, self.down()).result()
        else:
            exam = collect(name, self.settings, self.limits, self.down())
        with self._lock:
            self._cache[name] = exam
            self._finished[name] = time.time()
        return exam

    def run_all(self) -> None:
        for name in self.collections:
            self.run(name)

    def down(self) -> set[str]:
        with self._lock:
            return {name for name, exam in self._cache.items() if name in SERVER_COLLECTIONS and not exam.up}

    def registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)
        return registry

    def collect(self) -> Iterator[Metric]:
        """prometheus_client's Collector protocol: the cached samples as metric families."""
        with self._lock:
            cached = list(self._cache.items())
            finished = dict(self._finished)
        yield from families(cached, finished)


def families(cached: list[tuple[str, Examination]], finished: dict[str, float]) -> Iterator[Metric]:
    made: dict[str, Metric] = {}
    for name, exam in cached:
        for sample in exam.samples:
            _add(made, sample.name, dict(sample.labels), sample.value)
        _add(made, "collection_duration_seconds", {"collection": name}, exam.seconds)
        _add(made, "collection_last_success_timestamp_seconds", {"collection": name}, finished.get(name, 0))
        _add(made, "collection_errors", {"collection": name}, sum(f.code == UNEXAMINED for f in exam.findings))
        tally = Counter((f.store, f.code, f.severity) for f in exam.findings)
        for (store, code, severity), count in sorted(tally.items()):
            _add(made, "findings", {"store": store, "code": code, "severity": severity}, count)
    yield from made.values()


def _add(made: dict[str, Metric], name: str, labels: dict[str, str], value: float) -> None:
    kind, help_text, label_names = METRICS[name]  # a sample the catalog does not name is a bug: fail loudly
    family = made.get(name)
    if family is None:
        cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
        family = made[name] = cls(full_name(name), help_text, labels=list(label_names))
    family.add_metric([labels[label] for label in label_names], value)


class Scheduler:
    """One daemon thread per collection, each on its interval; ``stop`` ends them at their next wait."""

    def __init__(self, exporter: Exporter, interval: float, expensive_interval: float):
        self.exporter = exporter
        self.intervals = {name: expensive_interval if name == "schema" else interval for name in exporter.collections}
        self._stop = threading.Event()
        self.threads = [threading.Thread(target=self._loop, args=(name,), name=f"sovren-db {name}", daemon=True)
                        for name in self.intervals]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self, name: str) -> None:
        while not self._stop.is_set():
            try:
                self.exporter.run(name)
            except Exception as exc:  # a broken declaration or a bug: say it, keep serving the rest
                print(f"sovren-db metrics: collection {name} failed: {first_line(exc)}", file=sys.stderr)
            self._stop.wait(self.intervals[name])


def render(exams: Iterable[tuple[str, Examination]]) -> bytes:
    """The Prometheus text format of examinations already made (``sovren-db metrics``)."""
    from prometheus_client import generate_latest

    now = time.time()
    exams = list(exams)
    registry = CollectorRegistry(auto_describe=False)

    class Once:
        def collect(self) -> Iterator[Metric]:
            yield from families(exams, {name: now for name, _ in exams})

    registry.register(Once())
    return generate_latest(registry)
