"""Write inspected Postgres declarations as Python source: ``tables.py`` and ``schema.py``.

Columns, types, defaults and constraints are rendered by Alembic's own
autogenerate renderers (``alembic.autogenerate.render``, private but the very
code that writes ``op.create_table`` in revisions), so what inspect writes
reads like a revision and compares equal to what Alembic reflects.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import MISSING
from typing import Any

from alembic.autogenerate import render as alembic_render
from alembic.autogenerate.api import AutogenContext
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Index, Table

from ..postgres import state
from .postgres_read import Inspected

HEADER = '"""{what} read from the live database by \'sovren-db inspect\'; edit them as your own."""\n'


def autogen_context() -> AutogenContext:
    # paramstyle "named": with the default dialect's pyformat, Alembic's renderer compiles a CHECK's
    # or a server default's text with every % doubled, and the revision then doubles it again
    # (a live CHECK "(next_id - chain) % 8 = 0" came back as "%%%%": operator does not exist)
    context = MigrationContext.configure(dialect_name="postgresql", dialect_opts={"paramstyle": "named"}, opts={
        "sqlalchemy_module_prefix": "sa.", "alembic_module_prefix": "op.", "user_module_prefix": None})
    return AutogenContext(context, autogenerate=False)


def python_name(name: str, taken: set[str]) -> str:
    """A module-level variable name for table ``name`` (quoted mixed-case names included)."""
    base = re.sub(r"\W+", "_", name).strip("_").lower() or "table"
    if base[0].isdigit() or keyword.iskeyword(base) or base in ("sa", "postgresql", "metadata"):
        base = f"t_{base}"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    taken.add(candidate)
    return candidate


def render_tables(inspected: Inspected) -> str:
    context = autogen_context()
    taken: set[str] = set()
    blocks = [_render_table(table, context, inspected, python_name(table.name, taken))
              for table in inspected.metadata.sorted_tables]
    imports = sorted(i for i in context.imports if "postgresql" not in i)
    head = [HEADER.format(what="Tables"), "import sqlalchemy as sa", "from sqlalchemy.dialects import postgresql",
            *imports, "", "metadata = sa.MetaData()", ""]
    return "\n".join(head) + "\n" + "\n\n".join(blocks) + "\n"


def _render_table(table: Table, context: AutogenContext, inspected: Inspected, variable: str) -> str:
    args = [alembic_render._render_column(c, context) for c in table.columns]
    args += sorted(filter(None, (alembic_render._render_constraint(c, context, table.metadata)
                                 for c in table.constraints)))
    args += [_render_index(ix, context) for ix in sorted(table.indexes, key=lambda ix: ix.name or "")]
    if table.schema:
        args.append(f"schema={table.schema!r}")
    if table.comment is not None:
        args.append(f"comment={table.comment!r}")
    partition_by = table.dialect_options["postgresql"].get("partition_by")
    if partition_by:
        args.append(f"postgresql_partition_by={partition_by!r}")
    body = ",\n".join("    " + a.replace("\n", "\n    ") for a in args)
    return _comments(table, inspected) + f"{variable} = sa.Table(\n    {table.name!r}, metadata,\n{body},\n)"


def _render_index(index: Index, context: AutogenContext) -> str:
    expressions = alembic_render._get_index_rendered_expressions(index, context)
    options = (["unique=True"] if index.unique else []) + alembic_render._render_dialect_kwargs_items(
        context, index.dialect_kwargs)
    return f"sa.Index({index.name!r}, {', '.join(expressions + options)})"


def _comments(table: Table, inspected: Inspected) -> str:
    lines = []
    kept = inspected.partitions.get(table.name) if table.schema is None else None
    if kept:
        lines.append(f"# Partitions without a regular monthly naming and bounds, created by postgres/baseline.sql"
                     f" ({len(kept)}): {', '.join(p.name for p in kept[:8])}{' ...' if len(kept) > 8 else ''}")
    for column in table.columns:
        default = column.server_default
        if default is not None and "nextval(" in str(getattr(default, "arg", "")):
            lines.append(f"# {column.name} takes its values from a sequence that must exist before the table"
                         " (the baseline creates it)")
    lines += [f"# {column} is a SERIAL: postgres/baseline.sql gives it back its sequence and default {value}"
              for name, column, value in inspected.serials if name == table.fullname]
    return "".join(line + "\n" for line in lines)


# -- schema.py ------------------------------------------------------------------

_KIND_COMMENTS = {
    state.Extension: "Extensions (plpgsql is built in and left out).",
    state.Role: "Roles named by the grants and policies below (not the role that ran inspect).",
    state.Function: "Functions of the default schema, as the server prints their bodies.",
    state.RowSecurity: "Row-level security, with FORCE where the table had it.",
    state.Policy: "Policies, their expressions as the server prints them.",
    state.Trigger: "Triggers (each calls its function with no arguments).",
    state.Grant: "Table privileges granted to the roles above.",
    state.PartitionRule: "Monthly partitions <table>_pYYYY_MM up to the furthest month found, and a default.",
}


def render_schema(inspected: Inspected) -> str:
    kinds = [k for k in _KIND_COMMENTS if any(type(o) is k for o in inspected.objects)]
    imports = ", ".join(["Schema", *sorted(k.__name__ for k in kinds)])
    lines = [HEADER.format(what="Catalog objects"), f"from sovren_db.postgres import {imports}", "",
             "from . import tables", "", "schema = Schema(tables.metadata)", "schema.add("]
    for kind in kinds:
        lines.append(f"    # {_KIND_COMMENTS[kind]}")
        lines += [f"    {_render_object(o)}," for o in inspected.objects if type(o) is kind]
    lines.append(")")
    return "\n".join(lines) + "\n"


def _render_object(obj: Any) -> str:
    """``Policy('name', 'table', using=...)``: required fields by position, others only when not default."""
    values = []
    for name, spec in obj.__dataclass_fields__.items():
        value = getattr(obj, name)
        if spec.default is MISSING:
            values.append(_literal(value))
        elif spec.default != value:
            values.append(f"{name}={_literal(value)}")
    return f"{type(obj).__name__}({', '.join(values)})"


def _literal(value: Any) -> str:
    if isinstance(value, str) and "\n" in value:
        if '"""' not in value and "\\" not in value:
            return '"""' + value + '"""'
    return repr(value)


def render_baseline_sql(inspected: Inspected) -> str:
    """What the declarations cannot express: irregular partitions and views, for the baseline to run."""
    statements = []
    for table, column, value in inspected.serials:
        sequence = re.search(r"nextval\('([^']+)'", value)[1]
        where = ".".join(f'"{part}"' for part in table.split("."))
        statements += [f"CREATE SEQUENCE IF NOT EXISTS {sequence};",
                       f'ALTER TABLE {where} ALTER COLUMN "{column}" SET DEFAULT {value};',
                       f'ALTER SEQUENCE {sequence} OWNED BY {where}."{column}";']
    for parent, parts in sorted(inspected.partitions.items()):
        statements += [f'CREATE TABLE "{p.name}" PARTITION OF "{parent}" {p.bound};' for p in parts]
    statements += [f"CREATE VIEW {_qualified(name)} AS\n{definition.rstrip(';').rstrip()};"
                   for name, definition in inspected.views]
    if not statements:
        return ""
    return ("-- Run by the baseline revision after the tables: what postgres/*.py cannot declare yet.\n"
            "-- sovren-db check does not compare these objects.\n" + "\n".join(statements) + "\n")


def _qualified(name: str) -> str:
    return ".".join(f'"{part}"' for part in name.split(".", 1))


def write_postgres(inspected: Inspected, folder) -> list:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for filename, source in (("tables.py", render_tables(inspected)), ("schema.py", render_schema(inspected)),
                             ("baseline.sql", render_baseline_sql(inspected))):
        path = folder / filename
        if source:
            path.write_text(source)
            written.append(path)
        elif path.exists():
            path.unlink()
    return written

