"""``sovren-db stamp REV``: record a revision as applied without running it, and adopt what exists.

Postgres gets ``alembic_version`` (Alembic's own stamp); Mongo and Redis get
their ledgers (every store step of the chain up to REV recorded as done) and
their position. Policies and functions that already match their declarations
are adopted: a policy gets the fingerprint comment sovren-db writes when it
creates one, a function the comment that marks it managed, so that the next
``check`` is clean and the next autogenerate empty.
"""

from __future__ import annotations

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from ..core.config import Settings
from ..core.errors import MigrationFailed, Refused, RevisionError, first_line
from ..core.runtime import Runtime, run_step
from ..core.urls import redact, redact_text
from ..env import connected, current_heads, lock_and_limit, unlock
from ..postgres import sql
from ..postgres.live import read_catalog
from ..postgres.state import Function, Policy, Schema, normalise_sql


# Steps that only publish declarations (the registry), run by stamp as policies get their fingerprints.
PUBLISHED = frozenset({"redis_declare_family", "redis_declare_channel"})


def stamp(settings: Settings, revision: str) -> dict:
    """Stamp ``revision`` in every configured store; returns what was recorded and adopted."""
    script = ScriptDirectory(str(settings.migrations_dir))
    try:
        target = script.get_revision(revision)
    except CommandError:
        target = None
    if target is None and revision not in ("base",):
        raise RevisionError(f"Revision {revision!r} is not in the revision chain of {settings.migrations_dir}.")
    runtime = Runtime(settings)
    schema = runtime.postgres_schema
    with connected(settings) as connection:
        lock_and_limit(connection, settings)
        try:
            adopted, refused = _stamp_postgres(connection, script, revision, schema)
        except DBAPIError as exc:
            connection.rollback()
            raise MigrationFailed(f"Stamping Postgres at {redact(settings.postgres_url)} failed and was rolled "
                                  f"back: {redact_text(first_line(exc.orig or exc), settings.postgres_url)}") from None
        unlock(connection)
    resolved = target.revision if target is not None else None
    try:
        stores = _stamp_stores(settings, runtime, resolved)
    finally:
        runtime.close()
    return {"revision": resolved, "adopted": adopted, "not_adopted": refused, "stores": stores,
            "notes": list(runtime.notes)}


def _stamp_postgres(connection: Connection, script: ScriptDirectory, revision: str, schema: Schema):
    """One transaction: alembic_version holds exactly ``revision`` (a version left by another chain is
    replaced, as ``stamp --purge`` does), and the matching policies and functions are adopted."""
    context = MigrationContext.configure(connection)
    context._version.drop(connection, checkfirst=True)
    context.stamp(script, revision)
    adopted = adopt_objects(connection, schema)
    connection.commit()
    return adopted


def adopt_objects(connection: Connection, schema: Schema) -> tuple[list[str], list[str]]:
    """Write fingerprints on live policies and functions equal to their declarations."""
    catalog = read_catalog(connection, schema.declared_roles)
    adopted, refused = [], []
    for policy in schema.of(Policy):
        live = catalog.policies.get(policy.key)
        if live is None:
            continue
        if live.policy.shape() == policy.shape() and _same_expressions(connection, policy, live.policy):
            connection.execute(text(sql.mark_policy(policy)))
            adopted.append(f"policy {policy.name} on {policy.table}")
        else:
            refused.append(f"policy {policy.name} on {policy.table}: differs from its declaration")
    for function in schema.of(Function):
        live_fn = catalog.functions.get(function.key)
        if live_fn is None:
            continue
        if function.signature_matches(live_fn[0]):
            connection.execute(text(sql.mark_function(function)))
            adopted.append(f"function {function.key}")
        else:
            refused.append(f"function {function.key}: differs from its declaration")
    return adopted, refused


def _same_expressions(connection: Connection, declared: Policy, live: Policy) -> bool:
    """Whether the declared expressions are the live ones once the server has parsed them.

    A hand-written ``user_id = x`` is printed back as ``(user_id = x)``: the declared
    policy is created under another name in a savepoint, read back, and rolled back.
    """
    if (normalise_sql(declared.using), normalise_sql(declared.check)) == (
            normalise_sql(live.using), normalise_sql(live.check)):
        return True
    probe = Policy("sovren_db_adopt_probe", declared.table, declared.using, declared.check,
                   declared.command, declared.roles, declared.permissive)
    savepoint = connection.begin_nested()
    try:
        connection.execute(text(probe.definition()))
        row = connection.execute(text(
            "SELECT pg_get_expr(polqual, polrelid) AS using_expr, pg_get_expr(polwithcheck, polrelid) AS check_expr"
            " FROM pg_policy WHERE polname = :name AND polrelid = CAST(:table AS regclass)"),
            {"name": probe.name, "table": declared.table}).one()
    except Exception:  # an expression the server refuses is not the live one
        savepoint.rollback()
        return False
    savepoint.rollback()
    return (normalise_sql(row.using_expr), normalise_sql(row.check_expr)) == (
        normalise_sql(live.using), normalise_sql(live.check))


def _stamp_stores(settings: Settings, runtime: Runtime, revision: str | None) -> dict[str, str]:
    """Each configured Mongo/Redis store records the chain's steps up to ``revision`` as done."""
    done: dict[str, str] = {}
    backends = {store: runtime.backend(store) for store in runtime.stores}
    if not any(backends.values()):
        return done
    from ..resync import chain_steps

    chain = chain_steps(settings, revision) if revision else []
    for store, backend in backends.items():
        if backend is None:
            continue
        backend.ledger_forget("")
        for rev, steps in chain:
            for seq, op in enumerate(s for s in steps if s.store == store):
                key = f"{rev}:up:{seq}"
                if op.op_name in PUBLISHED:  # the conventions are published: Redis' fingerprints
                    run_step(backend, key, op, rev)   # recorded with its undo, as migrate does
                else:  # adopted as it stands: nothing of sovren-db's to undo
                    backend.ledger_record(key, op)
        backend.set_position(revision)
        done[store] = revision or "base"
    return done


def refuse_unrecorded(connection: Connection, settings: Settings, schema: Schema) -> None:
    """Before ``migrate`` upgrades, on its own connection: a database holding declared tables but no
    revision, or a revision of another chain, is to be adopted (stamped), not migrated."""
    heads = current_heads(connection)
    if heads:
        script = ScriptDirectory(str(settings.migrations_dir))
        unknown = [h for h in heads if h not in {r.revision for r in script.walk_revisions()}]
        if unknown:
            raise Refused(f"Postgres at {redact(settings.postgres_url)} records revision {unknown[0]}, which is not "
                          f"in {settings.migrations_dir}: adopt it with 'sovren-db stamp REVISION' instead of migrating.")
        return
    names = sorted(t.name for t in schema.metadata.tables.values() if t.schema is None)
    present = list(connection.execute(text(
        "SELECT relname FROM pg_class WHERE relname = ANY(:names) AND relkind IN ('r', 'p') "
        "AND relnamespace = CAST(current_schema() AS regnamespace) ORDER BY 1"), {"names": names}).scalars())
    connection.commit()
    if present:
        shown = ", ".join(present[:3]) + (f" and {len(present) - 3} more" if len(present) > 3 else "")
        raise Refused(f"Postgres at {redact(settings.postgres_url)} already holds declared tables ({shown}) "
                      "but records no revision: adopt it with 'sovren-db stamp REVISION' (after "
                      "'sovren-db baseline' if the chain has no revision yet) instead of migrating.")
