"""Bring every reachable store to where Postgres stands, before a run moves them together.

Each store records its position (the revision through which its steps ran) and
a ledger of the steps it ran, each kept with the step that undoes it (read from
the store before the step ran). Before every online upgrade or downgrade, on the
migration's connection and under its advisory lock, :func:`reconcile`:

1. undoes, newest first, the steps the position does not account for: those of
   a revision that failed or was killed half-way (its ``up`` steps while the
   position is below it, its ``down`` steps while the position is at or above it);
2. moves the store along the chain from its own position to Postgres's revision,
   down to their common ancestor and up from there (the net path: whatever
   Postgres did while the store was away cancels out), with the revisions'
   store steps collected by running them offline;
3. converges what the store's server may lose on its own (Redis: server
   configuration after a restart, consumer groups, the published registry) to
   what the chain says at that revision, one read per kind.

So a store that was absent, restarted empty, or left mid-revision ends where
Postgres stands, whatever happened meanwhile. ``sovren_db_deferred`` only tells
``status`` that a store is behind; its rows go once the store caught up.
"""

from __future__ import annotations

import io
from contextlib import nullcontext
from typing import TYPE_CHECKING, ContextManager

from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError as UnknownRevision
from alembic.util import CommandError
from sqlalchemy import text

from .core.config import Settings
from .core.errors import MigrationFailed, RevisionError, SovrenError, first_line
from .core.guard import refuse_if_protected
from .core.runtime import DEFERRED_TABLE, CollectingRuntime, Runtime
from .core.storeops import StoreOp
from .offline import offline_failure, run_offline

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from .core.stores import StoreBackend

Chain = list[tuple[str, list[StoreOp]]]
Move = tuple[str, str, "str | None"]   # (revision, "up" | "down", the store's position after it)


def chain_steps(settings: Settings, target: str) -> Chain:
    """(revision, store steps) from base to ``target``, collected by running the chain offline."""
    collector = CollectingRuntime(settings)
    run_offline(settings, collector, target)
    return list(collector.steps.items())


# -- the chain as a graph (pure) ----------------------------------------------
def lineage(script: ScriptDirectory, revision: str | None, store: str = "") -> list[str]:
    """``revision`` and its ancestors, newest first (nothing for base)."""
    if revision is None:
        return []
    try:
        return [r.revision for r in script.iterate_revisions(revision, "base")]
    except (CommandError, UnknownRevision):
        whose = f"{store} records" if store else "Postgres is at"
        raise RevisionError(f"{whose} revision {revision}, which is not in the revision chain"
                            + (f"; run 'sovren-db migrate --resync {store}' to rebuild it from the chain."
                               if store else ".")) from None


def net_path(source: list[str], target: list[str]) -> list[Move]:
    """The moves from the revision whose lineage is ``source`` to the one of ``target``:
    down what only ``source`` has (newest first), then up what only ``target`` has (oldest first)."""
    shared = set(source) & set(target)
    mine = [r for r in source if r not in shared]
    common = next((r for r in source if r in shared), None)
    downs = [(r, "down", after) for r, after in zip(mine, [*mine[1:], common])]
    return downs + [(r, "up", r) for r in reversed(target) if r not in shared]


def _parts(key: str) -> tuple[str, str, int]:
    revision, direction, seq = key.rsplit(":", 2)
    return revision, direction, int(seq)


def unaccounted(keys: list[str], applied: set[str], order: dict[str, int]) -> list[str]:
    """Ledger keys the position does not account for, in the order to undo them (newest first).

    A revision's ``up`` steps belong in the ledger while the position is at or above it,
    its ``down`` steps while it is below; the others are what a failed or killed run left.
    Revisions no longer in the chain count as the newest.
    """
    stray = [k for k in keys if (_parts(k)[1] == "up") != (_parts(k)[0] in applied)]
    return sorted(stray, key=lambda k: (order.get(_parts(k)[0], -1), -_parts(k)[2]))


# -- collecting steps offline -------------------------------------------------
def collect_steps(settings: Settings, script: ScriptDirectory,
                  moves: set[tuple[str, str]]) -> dict[tuple[str, str], list[StoreOp]]:
    """Each (revision, direction)'s store steps, from its ``upgrade()``/``downgrade()`` run offline.

    The revision functions run under Alembic's ``Operations`` on an offline migration context
    rather than through ``alembic upgrade --sql``: that reruns ``env.py`` inside the run that
    asked, and Alembic keeps one environment at a time.
    """
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    from .plugin import install

    if not moves:
        return {}
    install(settings.stores)
    collector = CollectingRuntime(settings)
    context = MigrationContext.configure(dialect_name="postgresql", opts={
        "as_sql": True, "output_buffer": io.StringIO(), "literal_binds": True, Runtime.OPTS_KEY: collector})
    steps: dict[tuple[str, str], list[StoreOp]] = {}
    with Operations.context(context):
        for revision, direction in sorted(moves):
            module = script.get_revision(revision).module
            try:
                getattr(module, "upgrade" if direction == "up" else "downgrade")()
            except SovrenError:
                raise
            except Exception as exc:  # the revision's own code
                raise RevisionError(offline_failure(settings, exc)) from None
            steps[revision, direction] = collector.take_pending()
    return steps


# -- bringing stores in line ---------------------------------------------------
def undo_unaccounted(backend: "StoreBackend", script: ScriptDirectory) -> int:
    """Undo the steps ``backend``'s position does not account for; returns how many."""
    applied = set(lineage(script, backend.position(), backend.store))
    order = {r.revision: i for i, r in enumerate(script.walk_revisions())}
    entries = backend.ledger_undo_steps("")
    stray = unaccounted(list(entries), applied, order)
    for key in stray:
        undo = entries[key]
        if undo is not None:
            try:
                backend.execute(undo)
            except SovrenError:
                raise
            except Exception as exc:  # the driver's own error
                raise MigrationFailed(f"Undoing {backend.store} step {key} ({undo.describe()}) failed: "
                                      f"{first_line(exc)}") from exc
        backend.ledger_forget(key)
    return len(stray)


def undo_failed_revision(runtime: Runtime, script: ScriptDirectory) -> None:
    """After a revision failed: undo its store steps that already ran, in every connected store."""
    for store in runtime.stores:
        backend = runtime._backends.get(store)
        if backend is None:
            continue
        try:
            with reporting(backend):
                undone = undo_unaccounted(backend, script)
        except Exception as exc:  # never in place of the revision's own error, which is being raised
            runtime.note(f"{store}: the failed revision's steps could not all be undone ({first_line(exc)}); "
                         "the next migrate or downgrade undoes them first.")
            continue
        if undone:
            runtime.note(f"{store}: undid the {undone} step(s) the failed revision had run; "
                         f"{store} is as it was before it.")


def reconcile(runtime: Runtime, connection: "Connection", script: ScriptDirectory) -> None:
    """Bring every reachable store to Postgres's revision (see the module docstring)."""
    from .env import current_heads

    heads = current_heads(connection)
    requested, runtime.resync = runtime.resync, ()
    if len(heads) > 1 or (requested and not heads):
        where = "at no revision" if not heads else f"at {len(heads)} heads"
        if requested:
            raise SovrenError(f"Cannot resync {', '.join(requested)}: Postgres is {where}; migrate it first")
        runtime.note(f"postgres is {where}: stores were not brought in line with it first.")
        return
    target = heads[0] if heads else None
    plans = {}
    for store in runtime.stores:
        if runtime.backend(store) is not None:
            with reporting(runtime.backend(store)):
                plans[store] = _plan(runtime, script, store, target, store in requested)
    wanted = {(r, d) for position, moves in plans.values() for r, d, _ in moves}
    wanted |= {(r, "up") for r in lineage(script, target)} if _converging(runtime, plans) else set()
    steps = collect_steps(runtime.settings, script, wanted)
    for store, (position, moves) in plans.items():   # before anything moves: nothing half applied
        for op in (op for r, d, _ in moves for op in steps[r, d] if op.store == store and op.destructive):
            refuse_if_protected(runtime, f"{op.describe()}, to bring {store} from {position or 'base'} "
                                         f"to {target or 'base'} where Postgres stands")
    waiting = runtime.waiting(connection)
    caught_up = [store for store in plans if waiting.pop(store, None)]
    if caught_up:
        connection.execute(text(f"DELETE FROM {DEFERRED_TABLE} WHERE store = ANY(:stores)"), {"stores": caught_up})
    chain = [op for r in reversed(lineage(script, target)) for op in steps.get((r, "up"), [])]
    for store, (position, moves) in plans.items():
        with reporting(runtime.backend(store)):
            for revision, direction, after in moves:
                mine = [op for op in steps[revision, direction] if op.store == store]
                runtime._apply_store_steps(connection, store, revision, direction, mine, after)
            _converge(runtime, store, chain)
        if moves:
            runtime.note(_moved(store, position, target, moves, store in requested))


def reporting(backend: "StoreBackend") -> ContextManager[None]:
    """The backend's own translation of driver errors into one sentence naming the server, if it has one."""
    return getattr(backend, "reporting_errors", nullcontext)()


def _plan(runtime: Runtime, script: ScriptDirectory, store: str, target: str | None,
          requested: bool) -> tuple[str | None, list[Move]]:
    """(the store's position, its moves to ``target``), once the steps it cannot account for are undone."""
    backend = runtime.backend(store)
    if requested:  # forgotten first: every step runs again, convergent ones leave what is there
        backend.ledger_forget("")
        backend.set_position(None)
    undone = undo_unaccounted(backend, script)
    if undone:
        runtime.note(f"{store}: undid {undone} step(s) of a revision that failed or was interrupted.")
    position = backend.position()
    return position, net_path(lineage(script, position, store), lineage(script, target))


def _moved(store: str, position: str | None, target: str | None, moves: list[Move], requested: bool) -> str:
    if requested:
        return f"{store}: asked for (--resync); replayed the chain's {store} steps up to {target}."
    if position is None:
        return (f"{store}: its position was unknown (a fresh or emptied store); replayed the chain's "
                f"{store} steps up to {target}.")
    path = ", ".join(f"{d} {r}" for r, d, _ in moves)
    return f"{store}: brought from {position} to {target or 'base'} along the chain ({path})."


def _converging(runtime: Runtime, plans: dict) -> bool:
    return any(hasattr(runtime.backend(store), "chain_drift") for store in plans)


def _converge(runtime: Runtime, store: str, steps: list[StoreOp]) -> None:
    """Put back what the store's server lost on its own, as the chain's steps up to here describe it."""
    backend = runtime.backend(store)
    if not hasattr(backend, "chain_drift"):
        return
    for op in backend.chain_drift(steps):
        backend.execute(op)
        runtime.note(f"{store}: {op.describe()} (the server had lost what the chain set).")
