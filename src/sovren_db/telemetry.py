"""Runs as OpenTelemetry traces (Datadog, New Relic and Grafana Tempo all take OTLP).

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set and the ``otel`` extra installed
(``pip install 'sovren-db[otel]'``), ``migrate``, ``seed`` and ``erase`` each
emit one trace: a root span for the command, a span per revision and per store
step, carrying lock waits, rows touched and the outcome. Attributes are
revision ids, store and object names, counts and durations: never SQL, a
literal, a subject id or a URL. Without the variable or the extra nothing is
imported and every call below is a no-op costing one context-variable read.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import os
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

ENDPOINT_VAR = "OTEL_EXPORTER_OTLP_ENDPOINT"
_provider: Any = None            # a TracerProvider given by configure() (tests) or built from the environment
_run: contextvars.ContextVar["_Run | None"] = contextvars.ContextVar("sovren_db_trace", default=None)


class _Run:
    def __init__(self, tracer: Any, root: Any):
        self.tracer, self.root = tracer, root
        self.mark = time.time_ns()   # where the next revision span starts: the end of the one before
        self.lock_wait = 0.0


def configure(provider: Any) -> None:
    """Use ``provider`` (an SDK TracerProvider) for every trace; None goes back to the environment."""
    global _provider
    _provider = provider


def _environment_provider() -> Any:
    if not os.environ.get(ENDPOINT_VAR):
        return None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        import sys

        print(f"sovren-db: {ENDPOINT_VAR} is set but the otel extra is not installed "
              "(pip install 'sovren-db[otel]'); no trace is sent.", file=sys.stderr)
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME",
                                                                                       "sovren-db")}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


@contextmanager
def trace(command: str, **attributes: Any) -> Iterator[None]:
    """The root span of one command; its outcome is ok, or the error's type (never its message)."""
    provider = _provider or _environment_provider()
    if provider is None:
        yield
        return
    tracer = provider.get_tracer("sovren-db")
    with tracer.start_as_current_span(f"sovren-db {command}", attributes=_clean(attributes),
                                      record_exception=False, set_status_on_exception=False) as root:
        run = _Run(tracer, root)
        token = _run.set(run)
        try:
            yield
            root.set_attribute("sovren_db.outcome", "ok")
        except BaseException as exc:
            _failed(root, exc)
            raise
        finally:
            root.set_attribute("sovren_db.lock_wait_seconds", round(run.lock_wait, 6))
            _run.reset(token)
    provider.force_flush()


def traced(command: str, *recorded: str) -> Callable:
    """Run the decorated command function inside ``trace(command)``; ``recorded`` names the arguments
    kept as attributes (never a subject, a key or a URL)."""
    def decorate(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            with trace(command, **{name: bound.arguments.get(name) for name in recorded}):
                return fn(*args, **kwargs)

        return run

    return decorate


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A child span of the running trace (a no-op outside one); yields it for ``set_attribute``."""
    run = _run.get()
    if run is None:
        yield _NO_SPAN
        return
    with _child(run, name, attributes, None) as current:
        yield current


@contextmanager
def revision(revision_id: str, direction: str) -> Iterator[None]:
    """A revision's span: from the end of the previous one (its Postgres part ran since) to the end of its
    store steps, which run inside it (Alembic gives a hook after a revision, not before)."""
    run = _run.get()
    if run is None:
        yield
        return
    with _child(run, f"revision {revision_id}", {"sovren_db.revision": revision_id,
                                                  "sovren_db.direction": direction}, run.mark):
        yield
    run.mark = time.time_ns()


def lock_waited(seconds: float) -> None:
    run = _run.get()
    if run is not None:
        run.lock_wait += seconds


@contextmanager
def _child(run: _Run, name: str, attributes: dict, start: int | None) -> Iterator[Any]:
    with run.tracer.start_as_current_span(name, attributes=_clean(attributes), start_time=start,
                                          record_exception=False, set_status_on_exception=False) as current:
        try:
            yield current
            current.set_attribute("sovren_db.outcome", "ok")
        except BaseException as exc:
            _failed(current, exc)
            raise


def _failed(current: Any, exc: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    current.set_attribute("sovren_db.outcome", "error")
    current.set_attribute("error.type", type(exc).__name__)
    current.set_status(Status(StatusCode.ERROR))  # no description: messages may quote values


def _clean(attributes: dict) -> dict:
    return {f"sovren_db.{key}": value for key, value in attributes.items() if value is not None}


class _NoSpan:
    def set_attribute(self, key: str, value: Any) -> None:
        return None


_NO_SPAN = _NoSpan()
