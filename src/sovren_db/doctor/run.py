"""One examination of every configured store, in collections that the exporter can schedule apart.

``postgres``, ``redis`` and ``mongo`` read their servers (cheap: a few
statistics queries and commands); ``schema`` runs the chain's checks (drift,
the audit chain, the keyspace sample), the expensive part. A store that
cannot be reached is one finding and ``store_up 0``; every other store is
still examined.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..core.config import URL_VARS
from ..core.errors import SovrenError
from . import postgres as pg
from . import schema
from .model import UNEXAMINED, Examination, timed
from .thresholds import Thresholds

if TYPE_CHECKING:
    from ..core.config import Settings

SERVER_COLLECTIONS = ("postgres", "redis", "mongo")
COLLECTIONS = (*SERVER_COLLECTIONS, "schema")


def collect(name: str, settings: "Settings", limits: Thresholds, down: set[str] = frozenset()) -> Examination:
    """Run one collection; ``down`` names the stores found unreachable (the schema skips them)."""
    exam = Examination(name)
    with timed(exam):
        COLLECTORS[name](settings, limits, exam, down)
    return exam


def examine_all(settings: "Settings", limits: Thresholds) -> list[Examination]:
    exams = [collect(store, settings, limits) for store in SERVER_COLLECTIONS if _declared(settings, store)]
    down = {e.store for e in exams if not e.up}
    return exams + [collect("schema", settings, limits, down)]


def _declared(settings: "Settings", store: str) -> bool:
    return store in settings.stores


def _unconfigured(settings: "Settings", exam: Examination) -> bool:
    if settings.configured(exam.store):
        return False
    exam.up = False
    if settings.strict:
        exam.unexamined("server", f"it is declared but {URL_VARS[exam.store]} is not set (--strict).")
    return True


def _postgres(settings: "Settings", limits: Thresholds, exam: Examination, down: set[str]) -> None:
    if _unconfigured(settings, exam):
        return
    try:
        conn = pg.examine(settings, limits, exam)
    except SovrenError as exc:
        _down(exam, "postgres", exc)
        return
    exam.sample("store_up", 1, store="postgres")
    with conn:
        with exam.probe("declared partitions"):
            schema.partitions(conn, settings, exam)
        with exam.probe("the revision chain"):
            schema.pending_revisions(conn, settings, exam)


def _redis(settings: "Settings", limits: Thresholds, exam: Examination, down: set[str]) -> None:
    from ..redis.backend import RedisBackend
    from . import redis as rd
    from . import sentinel

    if _unconfigured(settings, exam):
        return
    sentinel.examine(limits, exam, settings.redis_url)  # even with the master down: that is when it matters
    backend = RedisBackend(settings)
    try:
        backend.connect()
    except SovrenError as exc:
        _down(exam, "redis", exc)
        return
    try:
        exam.sample("store_up", 1, store="redis")
        rd.examine_masters(backend, exam, limits, _redis_declarations(settings, exam))
    finally:
        backend.close()


def _redis_declarations(settings: "Settings", exam: Examination):
    from ..redis.declared import load_declarations

    with exam.probe("redis declarations"):
        return load_declarations(settings.redis_dir)
    return None


def _mongo(settings: "Settings", limits: Thresholds, exam: Examination, down: set[str]) -> None:
    from . import mongo as mg

    if _unconfigured(settings, exam):
        return
    try:
        backend = mg.connect(settings)
    except SovrenError as exc:
        _down(exam, "mongo", exc)
        return
    try:
        exam.sample("store_up", 1, store="mongo")
        mg.examine(backend, settings, limits, exam)
    finally:
        backend.close()


def _down(exam: Examination, store: str, exc: Exception) -> None:
    """The store is reported down (its error names the server, password-free); the others go on."""
    exam.up = False
    exam.sample("store_up", 0, store=store)
    exam.unexamined("server", str(exc))


def _schema(settings: "Settings", limits: Thresholds, exam: Examination, down: set[str]) -> None:
    if "postgres" in down or not settings.configured("postgres"):
        return  # the chain lives in Postgres: without it there is nothing to compare
    with exam.probe("drift (check)"):
        schema.drift(settings, exam, down)
    with exam.probe("the audit chain"):
        schema.audit_chain(settings, exam)
    with exam.probe("the audit checkpoint", settings.redis_url):
        schema.audit_checkpoint(settings, limits, exam)
    with exam.probe("row security"):
        with pg.connect(settings.postgres_url) as conn:
            schema.forced_rls(conn, settings, exam)
    if "redis" in settings.stores and settings.configured("redis") and "redis" not in down:
        _redis_keys(settings, limits, exam)


def _redis_keys(settings: "Settings", limits: Thresholds, exam: Examination) -> None:
    from ..redis.backend import RedisBackend
    from ..redis.declared import load_declarations

    backend = RedisBackend(settings)
    with exam.probe("the keyspace sample"):
        backend.connect()
        try:
            schema.redis_keys(backend, load_declarations(settings.redis_dir), limits, exam)
        finally:
            backend.close()


COLLECTORS: dict[str, Callable[["Settings", Thresholds, Examination, set[str]], None]] = {
    "postgres": _postgres, "redis": _redis, "mongo": _mongo, "schema": _schema,
}


def exit_code(exams: list[Examination]) -> int:
    findings = [f for e in exams for f in e.findings]
    if any(f.code == UNEXAMINED for f in findings):
        return 2
    return 1 if any(f.severity == "error" for f in findings) else 0
