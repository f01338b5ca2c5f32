"""``seed``: lockstep check, manifest, validation of everything, then COPY, insert_many, pipelines.

The order is what makes a seed safe to run anywhere and twice:

1. refuse in a protected environment (unless allowed) and unless every
   configured store is at the head revision (:mod:`.lockstep`);
2. read the manifest: the same seed already loaded in every configured store
   is a no-op; a different one needs ``--reset``;
3. generate and validate every MongoDB document and Redis key of the
   configured stores (with ``validate_all``, of every declared store: a
   generator bug is a bug on every machine, and CI may check it without them);
4. with ``--reset``, delete seeded rows, documents and keys (by their ids);
   without it, when Postgres holds no seed yet, delete MongoDB documents an
   earlier seed left (they would be kept, or doubled, beside the new ones);
5. COPY the Postgres tables and write the manifest in one transaction, then
   MongoDB, then Redis, each recorded in the manifest once loaded, so an
   interrupted seed is finished by the next run.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

from .. import telemetry
from ..core.errors import ConfigError, Refused
from ..core.runtime import Runtime
from ..env import connect, lock_and_limit, unlock
from . import manifest as manifests
from . import presence
from .bounds import refuse_beyond_machine
from .lockstep import check_lockstep, refuse_protected
from .partitions import partition_ranges
from .plan import Plan, normal_scale, seed_identity
from .postgres_load import act_as, copy_tables, delete_seeded as delete_rows
from .prevalidate import check_blocks
from .profiles import Profile, load_profile
from .residency import for_region
from .targets import Targets

if TYPE_CHECKING:
    import psycopg

    from ..core.config import Settings

STORE_ORDER = ("postgres", "mongo", "redis")
UNITS = {"postgres": "rows", "mongo": "documents", "redis": "keys"}


class Progress(Protocol):
    def task(self, label: str, total: int) -> Callable[[int], None]:
        """Start a task of ``total`` steps; the callable advances it."""


class NoProgress:
    def task(self, label: str, total: int) -> Callable[[int], None]:
        return lambda steps=1: None


@dataclass
class StoreResult:
    state: str                                   # seeded | already seeded | not configured | not declared
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    deleted: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class SeedReport:
    profile: str
    scale: int | float
    seed: int
    anchor: str
    status: str                                  # seeded | already seeded
    stores: dict[str, StoreResult] = field(default_factory=dict)
    validated: dict[str, int] = field(default_factory=dict)
    validation_seconds: float = 0.0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)   # stores the manifest records whose seeded data is gone

    def to_json(self) -> dict:
        return {"profile": self.profile, "scale": self.scale, "seed": self.seed, "anchor": self.anchor,
                "status": self.status, "seconds": round(self.seconds, 3),
                "validated": dict(self.validated), "validation_seconds": round(self.validation_seconds, 3),
                "stores": {name: {"state": r.state, UNITS[name]: r.total, "counts": dict(r.counts),
                                  "deleted": dict(r.deleted), "seconds": round(r.seconds, 3)}
                           for name, r in self.stores.items()}}


@telemetry.traced("seed", "profile_name", "scale", "reset")
def seed(settings: "Settings", profile_name: str, *, scale: float = 1, seed: int | None = None, reset: bool = False,
         allow_protected: bool = False, progress: Progress | None = None, validate_all: bool = False) -> SeedReport:
    """Seed every configured store with ``profile_name`` at ``scale``; see the module docstring."""
    started = time.perf_counter()
    refuse_protected(settings, allow_protected)
    if not scale > 0:
        raise ConfigError(f"--scale must be more than 0, not {scale}.")
    scale = normal_scale(scale)
    profile = for_region(load_profile(settings.seeds_dir, profile_name), settings.region)
    loaded = tuple(s for s in settings.stores if s == "postgres" or settings.configured(s))
    targets = Targets.of(settings, profile, validate_all)
    refuse_beyond_machine(Plan(profile, scale, profile.seed, dt.date.today(), graph=targets.graph), loaded,
                          settings.root)
    runtime = Runtime(settings)
    engine, connection = connect(settings)
    raw = connection.connection.driver_connection
    try:
        lock_and_limit(connection, settings)
        check_lockstep(settings, connection, runtime)
        connection.commit()
        seeder = Seeder(settings, runtime, raw, targets, progress or NoProgress())
        report = seeder.run(profile, scale, profile.seed if seed is None else seed, reset)
    finally:
        raw.rollback()
        try:
            unlock(connection)
        finally:
            connection.close()
            engine.dispose()
            runtime.close()
    report.notes = list(dict.fromkeys(targets.notes + runtime.notes + report.notes))
    report.seconds = time.perf_counter() - started
    return report


class Seeder:
    """One seed run over an open, locked Postgres connection and the connected backends."""

    def __init__(self, settings: "Settings", runtime: Runtime, conn: "psycopg.Connection", targets: Targets,
                 progress: Progress):
        self.settings, self.runtime, self.conn, self.targets, self.progress = settings, runtime, conn, targets, progress
        self.found = None
        self.backends = {store: runtime.backend(store) for store in runtime.stores}

    def run(self, profile: Profile, scale: int, seed: int, reset: bool) -> SeedReport:
        found = self.found = manifests.read(self.conn)
        self.conn.rollback()
        anchor = self._anchor(found, profile, scale, seed, reset)
        plan = Plan(profile, scale, seed, anchor, graph=self.targets.graph, declarations=self.targets.declarations)
        if self.targets.graph is not None:
            plan.partitions = partition_ranges(self.conn, self.targets.graph, anchor, plan.window)
        if found and not reset and found.identity() != plan.identity():
            raise Refused(f"Seeding refused: the database holds the seed of {found.describe()}; "
                          "pass --reset to replace it with this one.")
        report = SeedReport(profile.name, scale, seed, plan.anchor.isoformat(), "seeded")
        todo = self._todo(found if not reset else None, report)
        if not todo and not reset:
            report.status = "already seeded"
            report.stores = {s: report.stores[s] for s in STORE_ORDER if s in report.stores}
            return report
        self._validate(plan, report)
        if reset:
            self._reset(report)
        elif "postgres" in todo:
            if "postgres" in report.lost:  # the manifest outlived the rows (a downgrade dropped the tables)
                self._delete_postgres_rows(report)
            self._forget_stale_seed(todo, report)
        else:
            for store in report.lost:  # a store whose seed is gone: whatever is left of it goes first
                self._delete_seeded(store)
        for store in STORE_ORDER:
            if store in todo:
                began = time.perf_counter()
                with telemetry.span(f"seed {store}", store=store) as span:
                    counts = getattr(self, f"_load_{store}")(plan)
                    span.set_attribute("sovren_db.rows", sum(counts.values()))
                report.stores[store] = StoreResult("seeded", counts, time.perf_counter() - began,
                                                   report.stores.get(store, StoreResult("")).deleted)
        report.stores = {s: report.stores[s] for s in STORE_ORDER if s in report.stores}
        return report

    def _anchor(self, found, profile: Profile, scale: int, seed: int, reset: bool):
        """The manifest's month when finishing the same seed, else the database's current month."""
        if found and not reset and found.identity() == seed_identity(profile, scale, seed):
            return found.anchor
        anchor = self.conn.execute("SELECT date_trunc('month', current_date)::date").fetchone()[0]
        self.conn.rollback()
        return anchor

    def _todo(self, found, report: SeedReport) -> list[str]:
        if found is not None and self._gone(found, "postgres", report):
            found = None   # every store is loaded again, as over a database that held no seed
        todo = []
        for store in STORE_ORDER:
            if store != "postgres" and store not in self.backends:
                continue
            if store != "postgres" and self.backends[store] is None:
                report.stores[store] = StoreResult("not configured")
            elif found is not None and store in found.stores and not self._gone(found, store, report):
                loaded = found.stores[store]
                order = self.targets.names(store)
                counts = {n: loaded[n] for n in sorted(loaded, key=lambda n: (order.index(n) if n in order else 99, n))}
                report.stores[store] = StoreResult("already seeded", counts)
            else:
                todo.append(store)
        return todo

    def _gone(self, found, store: str, report: SeedReport) -> bool:
        """Whether a target of ``store`` the manifest counts lost every seeded item (:mod:`.presence`)."""
        if store not in found.stores:
            return False
        counts = found.stores[store]
        if store == "postgres":
            act_as(self.conn, self.targets.role)   # row security: seeded rows are every tenant's
            missing = presence.missing_tables(self.conn, counts, self.targets.graph)
            self.conn.rollback()
        elif store == "mongo":
            missing = presence.missing_collections(self.backends["mongo"].db, counts, self.targets.document_keys)
        else:
            missing = presence.missing_families(self.backends["redis"], counts, self.targets.families)
        if missing:
            report.lost.append(store)
            report.notes.append(f"{store}: the seed the manifest records is no longer there (none left in "
                                f"{', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); loading it again")
        return bool(missing)

    # -- validation -------------------------------------------------------
    def _validate(self, plan: Plan, report: SeedReport) -> None:
        """Every document and key of the declared stores, before anything is written."""
        began = time.perf_counter()
        advance = self.progress.task("validating documents and keys", plan.block_count)
        seen = check_blocks(plan, self.targets.collections, self.targets.families, advance)
        report.validated = {name: seen[name] for name in [*self.targets.collections, *self.targets.families]}
        report.validation_seconds = time.perf_counter() - began

    # -- reset --------------------------------------------------------------
    def _reset(self, report: SeedReport) -> None:
        self._delete_postgres_rows(report, forget=True)
        for store in ("mongo", "redis"):
            if self.backends.get(store) is not None:
                report.stores[store] = StoreResult("", deleted=self._delete_seeded(store))

    def _delete_postgres_rows(self, report: SeedReport, forget: bool = False) -> None:
        conn = self.conn
        graph = self.targets.graph
        named = set(graph.names()) | set((getattr(self, "found", None) or manifests.Manifest("", "", 1, 0, None)).stores.get("postgres", {}))
        tables = [t for t in graph.declared if t.name in named]
        advance = self.progress.task("reset: deleting the seeded rows", len(tables))
        act_as(conn, self.targets.role)
        conn.execute("SET LOCAL statement_timeout = 0")
        deleted = delete_rows(conn, tables, graph, lambda rows: advance(1))
        conn.execute("RESET ROLE")
        if forget:
            manifests.forget(conn)
        conn.commit()
        report.stores["postgres"] = StoreResult("", deleted=deleted)

    def _delete_seeded(self, store: str) -> dict[str, int]:
        """Delete the seeded documents (mongo) or keys and stream entries (redis); counts by target."""
        if store == "mongo":
            from .mongo_load import delete_seeded as delete_documents

            return delete_documents(self.backends["mongo"].db, self.targets.all_collections, self.targets.document_keys)
        from .redis_load import delete_seeded as delete_keys

        return delete_keys(self.backends["redis"], self.targets.all_families)

    def _forget_stale_seed(self, todo: list[str], report: SeedReport) -> None:
        """Postgres is loaded afresh (it had no manifest): what an earlier seed (another run, anchor
        month, seed or profile) left in MongoDB and Redis is deleted first. Seeded documents would
        be kept as "already there" (duplicate keys) or doubled (their ``_id`` holds the anchored
        creation time); seeded keys of other users or sessions would outlive their Postgres rows."""
        for store, what in (("mongo", "documents"), ("redis", "keys or stream entries")):
            if store in todo and self.backends.get(store) is not None:
                self._note_stale(report, store, sum(self._delete_seeded(store).values()), what)

    @staticmethod
    def _note_stale(report: SeedReport, store: str, count: int, what: str) -> None:
        if count:   # a note, not StoreResult.deleted: that one is what --reset removed
            report.notes.append(f"{store}: {count:,} seeded {what} of an earlier seed were deleted "
                                "before loading (Postgres held no seed)")

    # -- loading ----------------------------------------------------------
    def _load_postgres(self, plan: Plan) -> dict[str, int]:
        conn = self.conn
        advance = self.progress.task("postgres", plan.block_count * len(self.targets.tables))
        act_as(conn, self.targets.role)
        conn.execute("SET LOCAL statement_timeout = 0")
        counts = copy_tables(conn, plan, self.targets.tables, lambda rows: advance(1), self.targets.encrypted)
        conn.execute("RESET ROLE")
        manifests.write(conn, manifests.Manifest(plan.profile.name, plan.profile.fingerprint, plan.scale, plan.seed,
                                                 plan.anchor, {"postgres": counts}))
        conn.commit()
        return counts

    def _load_mongo(self, plan: Plan) -> dict[str, int]:
        from .mongo_load import insert_documents

        db = self.backends["mongo"].db
        counts = dict.fromkeys(self.targets.collections, 0)
        advance = self.progress.task("mongo", plan.block_count)
        for block in plan.blocks():
            for name in self.targets.collections:
                documents = self.targets.documents(name, block)
                insert_documents(db, name, documents)
                counts[name] += len(documents)
            advance(1)
        self._record("mongo", counts)
        return counts

    def _load_redis(self, plan: Plan) -> dict[str, int]:
        from .redis_load import KeyWriter

        writer = KeyWriter(self.backends["redis"])
        counts = dict.fromkeys(self.targets.families, 0)
        advance = self.progress.task("redis", plan.block_count)
        try:
            with self.backends["redis"].reporting_errors():  # a refused or dropped connection names Redis
                for block in plan.blocks():
                    for name, family in self.targets.families.items():
                        counts[name] += writer.write(self.targets.keys(name, block, family))
                    advance(1)
                writer.finish()
            self.backends["redis"].await_replicas("the seed's keys")   # before the manifest records them
        finally:
            writer.close()
        self._record("redis", counts)
        return counts

    def _record(self, store: str, counts: dict[str, int]) -> None:
        manifests.record_store(self.conn, store, counts)
        self.conn.commit()
