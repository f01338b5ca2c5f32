"""``sovren-db erase --subject ID``: the right to erasure (Appendix G.1) across the triad.

What goes is what the declarations link to the subject (:mod:`.pii`), in an
order that never leaves a dangling reference: Redis keys first (the
sessions go before anything else), then Mongo documents, then the Postgres
tables children first, the subject's own ``users`` row last. Until that last
step everything that remains still refers to an existing user.

- Each step (one key family, one collection, one table) is recorded in
  ``sovren_db.erasures`` under a salted hash of the subject, in the same
  transaction as a Postgres step's own work; a rerun skips the steps done.
- Postgres steps run as the declared BYPASSRLS role (``SET LOCAL ROLE``) with
  the subject as a bind parameter, so no statement text holds it.
- Retained tables (``erase="retain"``: the immutable ``audit_log``) are counted,
  never touched: audit rows hold keys and changed column names only.
- Once every step is done and a recount finds nothing left, one ``ERASE`` audit
  event is appended through ``sovren_audit_erasure`` holding the subject hash
  and the counts, never the id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import psycopg
from psycopg import sql

from .. import telemetry
from ..commands import Outcome
from ..core.errors import Refused, SovrenError, first_line
from ..core.findings import Finding
from ..core.runtime import Runtime
from ..postgres.declared import load_schema
from ..postgres.state import Function
from ..redis.state import RedisState
from .coverage import blocking, pii_findings
from .ledger import (
    ERASURES, SALT, act_as, ensure_tables, erasure_steps, forget_steps, postgres_session, record_step,
    subject_hash,
)
from .pii import NoPersonalData, PiiMap, bypass_role, load_pii_map

if TYPE_CHECKING:
    from ..core.config import Settings

UNITS = {"postgres": "rows", "mongo": "documents", "redis": "keys"}
AUDIT_STEP = "audit"
AUDIT_FUNCTION = "sovren_audit_erasure"  # postgres/audit.py: ERASE events only, callable by the bypass role
ERASE_LOCK = 7_301_007


class ErasureFailed(SovrenError):
    """A step failed; the steps done before it stay done and a rerun finishes the erasure."""


@dataclass(frozen=True)
class Step:
    store: str
    location: str
    action: str               # delete | anonymise

    @property
    def name(self) -> str:
        return f"{self.store}:{self.location}"


@dataclass
class StepResult:
    step: Step
    count: int
    state: str                # erased | erased earlier | would erase | not configured | retained

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step.name, "store": self.step.store, "location": self.step.location,
                "action": self.step.action, "count": self.count, "state": self.state}


def plan_steps(pii: PiiMap) -> list[Step]:
    return [*(Step("redis", f.name, "delete") for f in pii.families),
            *(Step("mongo", c.collection, c.erase) for c in pii.collections),
            *(Step("postgres", t.table, t.erase) for t in pii.tables)]


@telemetry.traced("erase", "dry_run")  # never the subject
def erase(settings: "Settings", subject: str, *, dry_run: bool = False, allow_protected: bool = False,
          after_step: Callable[[str], None] | None = None) -> Outcome:
    """Erase (or with ``dry_run`` only count) everything of ``subject``; see the module docstring."""
    if settings.protected and not dry_run and not allow_protected:
        raise Refused(f"Erasure refused: environment {settings.environment!r} is protected "
                      "(pass --allow-protected to erase there).")
    schema = load_schema(settings.postgres_dir)
    try:
        pii = load_pii_map(settings, schema)
    except NoPersonalData as nothing:
        return Outcome(lines=[nothing.message], data={"status": "nothing declared", "dry_run": dry_run,
                                                      "steps": [], "retained": []})
    value = pii.parse_subject(subject)
    problems = blocking(pii_findings(settings))
    if problems:
        raise Refused(f"Erasure refused: {len(problems)} place(s) holding personal data have no erasure rule, "
                      f"first {problems[0].store} {problems[0].sentence()} (see 'sovren-db check').")
    runtime = Runtime(settings)
    try:
        with postgres_session(settings) as conn:
            eraser = Eraser(settings, runtime, conn, pii, value, bypass_role(schema),
                            any(f.name == AUDIT_FUNCTION for f in schema.of(Function)))
            eraser.connect(dry_run)
            out = eraser.dry_run() if dry_run else eraser.erase(after_step)
    finally:
        runtime.close()
    out.notes += [n for n in runtime.notes if n not in out.notes]
    return out


class Eraser:
    def __init__(self, settings: "Settings", runtime: Runtime, conn: psycopg.Connection, pii: PiiMap, value: str,
                 role: str, audited: bool):
        self.settings, self.runtime, self.conn, self.pii, self.value = settings, runtime, conn, pii, value
        self.role, self.audited = role, audited
        self.steps = plan_steps(pii)
        self.backends: dict[str, Any] = {}
        self.hash: str | None = None
        self.notes: list[str] = []
        self._retained: dict[str, int] | None = None

    # -- set-up -------------------------------------------------------------
    def connect(self, dry_run: bool) -> None:
        act_as(self.conn, self.role, "Erasure")  # fail before anything when the login may not act as the role
        self.conn.rollback()
        for store, rules in (("redis", self.pii.families), ("mongo", self.pii.collections)):
            if not rules:
                continue
            backend = self.runtime.backend(store)
            if backend is None and not dry_run:
                raise Refused(f"Erasure refused: {store} holds personal data ({len(rules)} declared places) but "
                              "is not configured; an erasure must reach every store.")
            self.backends[store] = backend
        if dry_run and not self._ledger_exists():
            return
        if not dry_run:
            ensure_tables(self.conn)
        self.hash = subject_hash(self.conn, self.value)
        self.conn.commit()
        if not dry_run:  # one erasure of a subject at a time: one audit event
            self.conn.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", (ERASE_LOCK, self.hash))
            self.conn.commit()

    def _ledger_exists(self) -> bool:
        found = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL",
                                  (ERASURES, SALT)).fetchone()[0]
        self.conn.rollback()
        return bool(found)

    # -- the two entry points ------------------------------------------------
    def dry_run(self) -> Outcome:
        done = erasure_steps(self.conn, self.hash) if self.hash else {}
        self.conn.rollback()
        results = [StepResult(s, self.count(s), "would erase") if self._reachable(s) else
                   StepResult(s, 0, "not configured") for s in self.steps]
        pending = sum(r.count for r in results)
        if AUDIT_STEP in done and not pending:
            return self._outcome("already erased", results, 0, dry_run=True,
                                 lines=[f"already erased on {done[AUDIT_STEP][1]:%Y-%m-%d %H:%M:%S %Z}"])
        return self._outcome("would erase", results, 1 if pending else 0, dry_run=True)

    def erase(self, after_step: Callable[[str], None] | None) -> Outcome:
        done = erasure_steps(self.conn, self.hash)
        self.conn.commit()
        if AUDIT_STEP in done:
            if not any(self.count(s) for s in self.steps):
                earlier = [StepResult(s, done.get(s.name, ({}, None))[0].get("count", 0), "erased earlier")
                           for s in self.steps]
                return self._outcome("already erased", earlier, 0, event=done[AUDIT_STEP][0].get("event_id"),
                                     lines=[f"already erased on {done[AUDIT_STEP][1]:%Y-%m-%d %H:%M:%S %Z}"])
            forget_steps(self.conn, self.hash)  # data of the subject appeared since: a new erasure
            done = {}
        self._remember_identifiers()
        results = []
        for step in self.steps:
            if step.name in done:
                results.append(StepResult(step, done[step.name][0].get("count", 0), "erased earlier"))
                continue
            results.append(StepResult(step, self.run(step), "erased"))
            if after_step is not None:
                after_step(step.name)
        if not any(r.count for r in results):
            self.notes.append("nothing of this subject was found in any store: is the id right?")
        left = self._leftovers(results)
        if left:
            forget_steps(self.conn, self.hash, [s.name for s in left])
            findings = [Finding(s.store, f"{s.store} {s.location}", f"{n} {UNITS[s.store]} of the subject remain "
                                "(written during the erasure?): run erase again", code="erase-incomplete")
                        for s, n in left.items()]
            return self._outcome("incomplete", results, 1, findings=findings)
        event = self._record_audit()
        lines = [f"audit event {event} records the erasure" if event is not None else
                 f"no {AUDIT_FUNCTION} function is declared: the erasure is recorded in the ledger only"]
        return self._outcome("erased", results, 0, lines=lines, event=event)

    def _remember_identifiers(self) -> None:
        """Salted hashes of the subject's identifying values, for 'erase --verify' once the row is gone."""
        from .sweep import IDENTIFIERS_STEP, identifying_values, remember_identifiers

        values = identifying_values(self.conn, self.pii, self.role, self.value)
        if values:
            record_step(self.conn, self.hash, IDENTIFIERS_STEP, remember_identifiers(self.conn, values))
            self.conn.commit()

    def _leftovers(self, results: list[StepResult]) -> dict[Step, int]:
        """Steps with subject data after the pass, each run once more (data written meanwhile)."""
        left = {}
        for result in results:
            if self.count(result.step):
                result.count += self.run(result.step)
                remaining = self.count(result.step)
                if remaining:
                    left[result.step] = remaining
        return left

    # -- one step -----------------------------------------------------------
    def _reachable(self, step: Step) -> bool:
        return step.store == "postgres" or self.backends.get(step.store) is not None

    def count(self, step: Step) -> int:
        if step.store == "redis":
            return self._redis_step(step, dry_run=True) if self.backends.get("redis") else 0
        if step.store == "mongo":
            backend = self.backends.get("mongo")
            return backend.db[step.location].count_documents({self._mongo_field(step): self.value}) if backend else 0
        return self._postgres_count(step.location)

    def run(self, step: Step) -> int:
        """Do the step and record it (in the same transaction for Postgres); returns how many went."""
        try:
            with telemetry.span(f"erase {step.store}", store=step.store, object=step.location,
                                action=step.action) as span:
                count = self._erase(step)
                span.set_attribute("sovren_db.rows", count)
            record_step(self.conn, self.hash, step.name, {"count": count})
            self.conn.commit()
            return count
        except SovrenError:
            raise
        except Exception as exc:
            self.conn.rollback()
            reason = first_line(exc)
            raise ErasureFailed(f"Erasure step {step.name} failed and was not recorded ({reason.rstrip('.')}); "
                                "the steps done before it are kept: run erase again to finish.") from None

    def _erase(self, step: Step) -> int:
        if step.store == "postgres":
            return self._postgres_step(step)
        if step.store == "mongo":
            return self.backends["mongo"].db[step.location].delete_many(
                {self._mongo_field(step): self.value}).deleted_count
        erased = self._redis_step(step, dry_run=False)
        self.backends["redis"].await_replicas(f"the erasure of {step.location}")   # before the step is recorded
        return erased

    def _redis_step(self, step: Step, *, dry_run: bool) -> int:
        """Keys of the subject's own, or entries and values naming it in shared keys (subject_field)."""
        from ..redis.erase import by_field, erase_field_entries, erase_subject

        family = next(f for f in self.pii.families if f.name == step.location)
        if by_field(family, self.pii.subject_name):
            return erase_field_entries(self.backends["redis"], family, self.value, dry_run=dry_run)
        return len(erase_subject(self.backends["redis"], RedisState(families={family.name: family}),
                                 self.pii.subject_name, self.value, dry_run=dry_run))

    def _mongo_field(self, step: Step) -> str:
        return next(c.subject for c in self.pii.collections if c.collection == step.location)

    def _rule(self, table: str):
        return next(r for r in (*self.pii.tables, *self.pii.retained) if r.table == table)

    def _postgres_count(self, table: str) -> int:
        rule = self._rule(table)
        act_as(self.conn, self.role, "Erasure")
        query = sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
            sql.Identifier(table), sql.Identifier(rule.subject_column))
        try:
            found = self.conn.execute(query, (self.value,)).fetchone()[0]
        except psycopg.Error as exc:
            reason = first_line(exc)
            raise ErasureFailed(f"Erasure cannot read {table} as {self.role} ({reason.rstrip('.')}).") from None
        finally:
            self.conn.rollback()
        return found

    def _postgres_step(self, step: Step) -> int:
        rule = self._rule(step.location)
        where = sql.SQL("WHERE {} = %s").format(sql.Identifier(rule.subject_column))
        if rule.erase == "anonymise":
            changes = sql.SQL(", ").join(sql.SQL("{} = {}").format(sql.Identifier(column), sql.SQL(expression))
                                         for column, expression in rule.anonymise)
            statement = sql.SQL("UPDATE {} SET {} {}").format(sql.Identifier(rule.table), changes, where)
        else:
            statement = sql.SQL("DELETE FROM {} {}").format(sql.Identifier(rule.table), where)
        act_as(self.conn, self.role, "Erasure")
        count = self.conn.execute(statement, (self.value,)).rowcount
        self.conn.execute("RESET ROLE")
        return count

    def _retained_counts(self) -> dict[str, int]:
        """The subject's rows in each retained table, counted once (erasure leaves them as they are)."""
        if self._retained is None:
            self._retained = {r.table: self._postgres_count(r.table) for r in self.pii.retained}
        return self._retained

    # -- the audit event ------------------------------------------------------
    def _record_audit(self) -> int | None:
        done = erasure_steps(self.conn, self.hash)
        details = {"subject_hash": self.hash, "by": "sovren-db erase",
                   "erased": {step: counts.get("count", 0) for step, (counts, _) in sorted(done.items())
                              if "count" in counts},
                   "retained": {f"postgres:{table}": n for table, n in self._retained_counts().items()}}
        event = None
        if self.audited:
            event = self.conn.execute(f"SELECT {AUDIT_FUNCTION}(%s, %s::jsonb)",
                                      (self.pii.root.table, json.dumps(details))).fetchone()[0]
        record_step(self.conn, self.hash, AUDIT_STEP, {"event_id": event, **details})
        self.conn.commit()
        return event

    # -- report ----------------------------------------------------------------
    def _outcome(self, status: str, results: list[StepResult], exit_code: int, *, dry_run: bool = False,
                 lines: list[str] = (), findings: list[Finding] = (), event: int | None = None) -> Outcome:
        retained = [StepResult(Step("postgres", table, "retain"), n, "retained")
                    for table, n in self._retained_counts().items()]
        shown = self.hash[:16] if self.hash else "(no erasure recorded yet)"
        head = f"{'dry run: ' if dry_run else ''}erasure of subject {shown}: {status}"
        table = [_line(r, self.pii) for r in [*results, *retained]]
        return Outcome(exit_code=exit_code, lines=[head, *table, *lines], findings=list(findings),
                       notes=self.notes,
                       data={"status": status, "dry_run": dry_run, "subject_hash": self.hash, "audit_event": event,
                             "steps": [r.to_json() for r in results], "retained": [r.to_json() for r in retained]})


def _unit(step: Step, pii: PiiMap) -> str:
    """Keys of a Redis family, or entries naming the subject in a shared stream (subject_field)."""
    from ..redis.erase import by_field

    if step.store == "redis" and any(by_field(f, pii.subject_name) and f.type == "stream"
                                     for f in pii.families if f.name == step.location):
        return "entries"
    return UNITS[step.store]


def _line(result: StepResult, pii: PiiMap) -> str:
    step = result.step
    unit = _unit(step, pii)
    unit = unit if result.count != 1 else unit[:-1].replace("entrie", "entry")
    count = f"{result.count:>8}"
    how = {"delete": "deleted", "anonymise": "anonymised", "retain": "retained"}[step.action]
    if result.state == "would erase":
        how = {"delete": "would be deleted", "anonymise": "would be anonymised"}[step.action]
    elif result.state == "not configured":
        count, unit, how = f"{'?':>8}", UNITS[step.store], f"not counted: {step.store} is not configured"
    elif result.state == "erased earlier":
        how += " (by an earlier run)"
    if step.action == "retain":
        how += ": " + next(r.reason for r in pii.retained if r.table == step.location)
    return f"  {step.store:<9} {step.location:<22} {count} {unit:<9} {how}"
