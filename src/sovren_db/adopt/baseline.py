"""``sovren-db baseline``: the first revision, equal to the declarations (as inspect wrote them).

The operations are what autogenerate would write against empty stores: the
tables (Alembic's CreateTableOp/CreateIndexOp, in foreign-key order) and
sovren-db's Postgres objects from the same pure diff ``check`` uses, against an
empty catalog; ``postgres/baseline.sql`` (what declarations cannot express:
irregular partitions, views); then the Mongo and Redis declarations diffed
against empty stores. Rendered by Alembic into the project's revision template.
"""

from __future__ import annotations

import io
import re
from importlib import resources
from contextlib import redirect_stdout
from datetime import date
from pathlib import Path

from alembic.autogenerate import render as alembic_render
from alembic.operations import ops as alembic_ops
from alembic.script import ScriptDirectory
from alembic.util import rev_id

from ..core.config import Settings
from ..core.errors import Refused, RevisionError
from ..core.runtime import Runtime
from ..postgres.diff import diff_schema
from ..postgres.live import Catalog
from ..postgres.ops import CreateExtensionOp, CreateFunctionOp, EnsureRoleOp
from ..postgres.state import Schema
from .postgres_write import autogen_context

BASELINE_SQL = "baseline.sql"
REVISION_TEMPLATES = ("env.py", "script.py.mako")
_VIEW = re.compile(r'^CREATE VIEW ("[^"]+"(?:\."[^"]+")?) AS', re.S)


def empty_catalog() -> Catalog:
    return Catalog(today=date.today(), extensions=set(), roles={}, functions={}, triggers={}, policies={},
                   tables={}, grants={})


def postgres_ops(schema: Schema, extra_sql: str = "") -> list:
    objects = diff_schema(schema, empty_catalog())
    first = [op for op in objects if isinstance(op, (CreateExtensionOp, EnsureRoleOp))]
    # Functions before the tables, as pg_dump orders them: a CHECK constraint or a default may call one.
    # Their bodies are not checked against tables that do not exist yet (pg_dump's setting too).
    functions = [op for op in objects if isinstance(op, CreateFunctionOp)]
    if functions:
        first += [alembic_ops.ExecuteSQLOp("SET LOCAL check_function_bodies = off"), *functions]
    rest = [op for op in objects if op not in first]
    schemas = sorted({t.schema for t in schema.metadata.tables.values() if t.schema})
    tables: list = [alembic_ops.ExecuteSQLOp(f'CREATE SCHEMA IF NOT EXISTS "{name}"') for name in schemas]
    created, owned = _sequences(schema)
    tables += created
    for table in schema.metadata.sorted_tables:
        tables.append(alembic_ops.CreateTableOp.from_table(table))
        tables += [alembic_ops.CreateIndexOp.from_index(ix) for ix in sorted(table.indexes, key=lambda i: i.name)]
    return first + tables + owned + rest + [alembic_ops.ExecuteSQLOp(s) for s in split_statements(extra_sql)]


_NEXTVAL = re.compile(r"nextval\('([^']+)'::regclass\)")


def _sequences(schema: Schema) -> tuple[list, list]:
    """A column defaulting to ``nextval('seq')`` that is not a SERIAL key (SQLAlchemy creates those)
    needs its sequence before its table, owned by the column after it."""
    created, owned = [], []
    for table in schema.metadata.sorted_tables:
        for column in table.columns:
            match = _NEXTVAL.search(str(getattr(column.server_default, "arg", "")))
            if match:
                created.append(alembic_ops.ExecuteSQLOp(f"CREATE SEQUENCE IF NOT EXISTS {match[1]}"))
                owned.append(alembic_ops.ExecuteSQLOp(
                    f'ALTER SEQUENCE {match[1]} OWNED BY {table.fullname}."{column.name}"'))
    return created, owned


def split_statements(script: str) -> list[str]:
    """The statements of baseline.sql: each ends with ';' at the end of a line; '--' lines are comments."""
    body = "\n".join(line for line in script.splitlines() if not line.startswith("--"))
    return [s.strip() for s in re.split(r";\s*\n", body + "\n") if s.strip()]


def store_ops(settings: Settings, runtime: Runtime) -> list:
    """The Mongo and Redis declarations against empty stores."""
    found: list = []
    if "mongo" in runtime.stores:
        from ..mongo.chain import replay
        from ..mongo.declared import has_declarations, load_declared
        from ..mongo.diff import diff_states

        if has_declarations(settings.mongo_dir):
            found += diff_states(load_declared(settings.mongo_dir, display_root=settings.root), replay([]))
    if "redis" in runtime.stores and settings.redis_dir.is_dir() and any(settings.redis_dir.glob("*.toml")):
        from ..redis.chain import read_chain
        from ..redis.declared import load_declarations
        from ..redis.diff import diff_redis

        declared = load_declarations(settings.redis_dir)
        found += diff_redis(declared, read_chain([], declared))
    return found


def _downgrade_ops(upgrade: list) -> list:
    """Reverses, newest first; views dropped explicitly, irregular partitions go with their table."""
    down = []
    for op in reversed(upgrade):
        if isinstance(op, alembic_ops.ExecuteSQLOp):
            view = _VIEW.match(str(op.sqltext))
            if view:
                down.append(alembic_ops.ExecuteSQLOp(f"DROP VIEW {view[1]}"))
            continue
        down.append(op.reverse())
    return down


def create_revision_directory(settings: Settings) -> bool:
    """A project adopting its databases has no chain yet: its revision directory is made from the
    templates Sovren's own ``migrations/`` uses. False when the directory exists (left as it is)."""
    folder = settings.migrations_dir
    if folder.exists():
        return False
    (folder / "versions").mkdir(parents=True)
    for name in REVISION_TEMPLATES:
        (folder / name).write_text((resources.files("sovren_db") / "templates" / "revisions" / name).read_text())
    return True


def write_baseline(settings: Settings, message: str = "baseline") -> Path:
    if not (settings.migrations_dir / "env.py").is_file():
        raise RevisionError(f"{settings.migrations_dir} has no env.py: it is not a revision directory.")
    script = ScriptDirectory(str(settings.migrations_dir))
    heads = script.get_heads()
    if heads:
        raise Refused(f"{settings.migrations_dir} already has revisions (head {heads[0]}): a baseline is the first "
                      "revision of a chain; stamp the existing database with 'sovren-db stamp' instead.")
    runtime = Runtime(settings)
    try:
        extra = settings.postgres_dir / BASELINE_SQL
        upgrade = postgres_ops(runtime.postgres_schema, extra.read_text() if extra.is_file() else "")
        upgrade += store_ops(settings, runtime)
    finally:
        runtime.close()
    context = autogen_context()
    up = _body(alembic_ops.UpgradeOps(ops=upgrade), context)
    down = _body(alembic_ops.DowngradeOps(ops=_downgrade_ops(upgrade)), context)
    with redirect_stdout(io.StringIO()):  # Alembic prints "Generating ..."; the command says what it wrote
        written = script.generate_revision(rev_id(), message, head="base", upgrades=up, downgrades=down,
                                           imports="\n".join(sorted(context.imports)))
    return Path(written.path)


def _body(container, context) -> str:
    """Alembic's rendering of the operations, as autogenerate puts it into the revision template."""
    return alembic_render._indent(alembic_render._render_cmd_body(container, context))
