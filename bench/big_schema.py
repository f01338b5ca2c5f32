"""A large, deterministic Postgres schema written as a sovren-db project, for the benchmarks.

``write_project`` writes pyproject.toml, ``postgres/tables.py`` (SQLAlchemy
tables: indexes, unique and check constraints, foreign keys, JSONB columns,
server defaults, some range-partitioned), ``postgres/schema.py`` (a tenant
policy, row-level security and an audit trigger on every table, partition
rules) and ``migrations/`` (the repository's env.py and template, no revision).
"""

from __future__ import annotations

import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# kind -> (SQLAlchemy type, server default or None); "varchar" defaults differ in text from what
# Postgres reflects ('new'::character varying), so Alembic asks the server to compare them.
KINDS = {
    "varchar": ("VARCHAR(80)", None),
    "status": ("VARCHAR(20)", "text(\"'new'\")"),
    "text": ("Text", None),
    "int": ("Integer", 'text("0")'),
    "bigint": ("BigInteger", None),
    "numeric": ("Numeric(12, 2)", None),
    "bool": ("Boolean", 'text("false")'),
    "jsonb": ("JSONB", "text(\"'{}'::jsonb\")"),
    "stamp": ("TIMESTAMP(timezone=True)", None),
    "date": ("Date", None),
    "uuid": ("UUID(as_uuid=True)", None),
}
INDEXABLE = ("varchar", "status", "int", "bigint", "stamp", "date", "uuid")


@dataclass
class TableSpec:
    name: str
    partitioned: bool
    columns: list[tuple[str, str, bool]] = field(default_factory=list)   # (name, kind, nullable)
    foreign_keys: list[str] = field(default_factory=list)                # referenced table names
    indexes: list[tuple[str, ...]] = field(default_factory=list)
    unique: tuple[str, ...] | None = None
    check: str | None = None
    comment: str | None = None


def generate(seed: int = 20260101, tables: int = 300, partitioned: int = 40) -> list[TableSpec]:
    """``tables`` table specs of 8 to 15 columns, ``partitioned`` of them range-partitioned."""
    rng = random.Random(seed)
    chosen = set(rng.sample(range(tables), partitioned))
    specs: list[TableSpec] = []
    for i in range(tables):
        spec = TableSpec(f"t{i:03d}", i in chosen)
        plain = [s.name for s in specs if not s.partitioned]
        spec.foreign_keys = sorted(set(rng.sample(plain, min(len(plain), rng.randint(0, 2)))))
        extra = rng.randint(8, 15) - 3 - len(spec.foreign_keys)
        kinds = ["jsonb", "status"] + [rng.choice(list(KINDS)) for _ in range(max(extra - 2, 0))]
        spec.columns = [(f"c{n}_{kind}", kind, rng.random() < 0.5) for n, kind in enumerate(kinds)]
        _constraints(rng, spec)
        specs.append(spec)
    return specs


def _constraints(rng: random.Random, spec: TableSpec) -> None:
    indexable = [name for name, kind, _ in spec.columns if kind in INDEXABLE]
    spec.indexes = [(f"{ref}_id",) for ref in spec.foreign_keys]
    for _ in range(rng.randint(1, 2)):
        spec.indexes.append(tuple(rng.sample(indexable, min(len(indexable), rng.randint(1, 2)))))
    spec.indexes = list(dict.fromkeys(spec.indexes))
    if rng.random() < 0.5:
        spec.unique = ("tenant_id", indexable[0]) + (("created_at",) if spec.partitioned else ())
    ints = [name for name, kind, _ in spec.columns if kind == "int"]
    if ints:
        spec.check = f"{ints[0]} >= 0"
    if rng.random() < 0.2:
        spec.comment = f"benchmark table {spec.name}"


def _column(name: str, kind: str, nullable: bool) -> str:
    type_, default = KINDS[kind]
    args = [repr(name), type_, f"nullable={nullable}"]
    if default:
        args.append(f"server_default={default}")
    return f"    Column({', '.join(args)}),"


def render_table(spec: TableSpec) -> str:
    t = spec.name
    lines = [f"{t} = Table(", f"    {t!r}, metadata,"]
    if spec.partitioned:
        lines.append('    Column("id", UUID(as_uuid=True), nullable=False, server_default=text("gen_random_uuid()")),')
    else:
        lines.append('    Column("id", BigInteger, primary_key=True),')
    lines.append('    Column("tenant_id", UUID(as_uuid=True), nullable=False),')
    lines.append('    Column("created_at", TIMESTAMP(timezone=True), nullable=False, server_default=text("now()")),')
    lines += [_column(*column) for column in spec.columns]
    for ref in spec.foreign_keys:
        lines.append(f'    Column("{ref}_id", BigInteger, ForeignKey("{ref}.id", name="fk_{t}_{ref}", '
                     'ondelete="CASCADE")),')
    if spec.partitioned:
        lines.append(f'    PrimaryKeyConstraint("id", "created_at", name="{t}_pkey"),')
    lines += [f'    Index("ix_{t}_{"_".join(cols)}", {", ".join(map(repr, cols))}),' for cols in spec.indexes]
    if spec.unique:
        lines.append(f'    UniqueConstraint({", ".join(map(repr, spec.unique))}, name="uq_{t}_{spec.unique[1]}"),')
    if spec.check:
        lines.append(f'    CheckConstraint({spec.check!r}, name="ck_{t}_positive"),')
    if spec.comment:
        lines.append(f"    comment={spec.comment!r},")
    if spec.partitioned:
        lines.append('    postgresql_partition_by="RANGE (created_at)",')
    lines.append(")")
    return "\n".join(lines)


TABLES_HEADER = '''"""Generated benchmark tables (bench/big_schema.py)."""

from sqlalchemy import (
    TIMESTAMP, VARCHAR, BigInteger, Boolean, CheckConstraint, Column, Date, ForeignKey, Index, Integer,
    MetaData, Numeric, PrimaryKeyConstraint, Table, Text, UniqueConstraint, text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

metadata = MetaData()
'''

SCHEMA_PY = '''"""Generated benchmark schema: tenant policy, RLS and audit trigger on every table."""

from sovren_db.postgres import Function, PartitionRule, Policy, RowSecurity, Schema, Trigger

from .tables import PARTITIONED, metadata

TENANT = "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
audit = Function("bench_audit_row", "", "trigger", "BEGIN RETURN NULL; END")

schema = Schema(metadata)
schema.add(audit)
for name in metadata.tables:
    schema.add(RowSecurity(name), Policy(f"{name}_tenant", name, using=TENANT, check=TENANT),
               Trigger(f"{name}_audit", name, audit.name))
# 29 monthly partitions (this month and 28 ahead) plus the default: 30 per table.
schema.add(*[PartitionRule(name, "created_at", months_ahead=28) for name in PARTITIONED])
'''

PYPROJECT = '''[tool.alembic]
script_location = "%(here)s/migrations"

[tool.sovren-db]
stores = ["postgres"]
'''


def render_tables(specs: list[TableSpec]) -> str:
    partitioned = [s.name for s in specs if s.partitioned]
    body = "\n\n".join(render_table(s) for s in specs)
    return f"{TABLES_HEADER}\n{body}\n\nPARTITIONED = {partitioned!r}\n"


def write_project(root: Path, specs: list[TableSpec]) -> Path:
    """The sovren-db project at ``root``; returns the path of its tables module."""
    (root / "postgres").mkdir(parents=True, exist_ok=True)
    (root / "migrations" / "versions").mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    tables = root / "postgres" / "tables.py"
    tables.write_text(render_tables(specs))
    (root / "postgres" / "schema.py").write_text(SCHEMA_PY)
    for name in ("env.py", "script.py.mako"):
        shutil.copy2(REPO / "migrations" / name, root / "migrations" / name)
    return tables
