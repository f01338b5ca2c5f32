"""The Postgres tables a seed writes, read from the declared SQLAlchemy MetaData the revision chain uses.

Every column gets a generator from its type and constraints (:mod:`.columns`
draws the values): CHECK constraints and enum or domain values narrow it, a
unique column gets distinct values, a ``NOT NULL`` column is never NULL, and a
column with a server default is left to the server unless it is a key, a
foreign key, a partition key, a date or time (those follow the profile's
window) or the profile names a generator for it. Tables are loaded in
foreign-key order: a table with a foreign key is a *child* of one parent (the
profile's ``per``, else the table its first NOT NULL foreign key names) and
gets its rows per parent row; its other foreign keys point at an ancestor's
row, at a row of the same ancestor's other children (a user's transaction
pays one of that user's subscriptions), at an earlier row (self-references)
or at a row of the same block (see :mod:`.rows`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from ..core.errors import DeclarationError
from .checks import Allowed, read_check
from .columns import infer_kind

if TYPE_CHECKING:
    from ..postgres.state import Schema
    from .profiles import ColumnSpec, Profile

DEFAULT_MEAN = 1.0            # children per parent of a table the profile does not name
NULLS = 0.1                   # share of NULLs in a nullable column the profile says nothing about
TEXT_ONLY = {"array", "inet", "text_form"}   # encodings with no binary COPY encoder here: the table goes as text


@dataclass(frozen=True)
class ColumnPlan:
    name: str
    kind: str                        # what :mod:`.columns` draws (uuid, serial, int, money, email, time, ...)
    encoding: str                    # how :mod:`.postgres_rows` encodes it (uuid, text, int4, numeric:2, ...)
    nullable: bool = True
    nulls: float = 0.0
    unique: bool = False
    length: int | None = None
    min_length: int | None = None
    scale: int = 0
    low: tuple[float, bool] | None = None
    high: tuple[float, bool] | None = None
    choices: tuple | None = None
    value: object = None
    item: str | None = None          # array: the items' kind


@dataclass(frozen=True)
class Reference:
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]
    nullable: bool


@dataclass(frozen=True)
class TablePlan:
    name: str
    columns: tuple[ColumnPlan, ...]              # generated, in COPY order
    parent: Reference | None = None
    rows: int = 0                                # a root's rows at --scale 1
    amount: float = 0.0                          # a child's mean (or share) per parent row
    share: bool = False
    references: tuple[Reference, ...] = ()       # every foreign key but the parent's
    marker: tuple[str, str] | None = None        # (column, kind) telling seeded rows apart: uuid or serial

    @property
    def binary(self) -> bool:
        return not any(c.encoding in TEXT_ONLY for c in self.columns)

    def column(self, name: str) -> ColumnPlan:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class TableGraph:
    tables: tuple[TablePlan, ...]                # seeded ones, parents first
    declared: tuple[TablePlan, ...]              # every declared table (what --reset cleans, children first)
    partition_keys: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def table(self, name: str) -> TablePlan:
        return next(t for t in self.tables if t.name == name)

    def names(self) -> list[str]:
        return [t.name for t in self.tables]


def build_graph(schema: "Schema", profile: "Profile", partition_keys: dict[str, str]) -> TableGraph:
    metadata = schema.metadata
    _refuse_unknown(profile, metadata)
    notes: list[str] = []
    plans = [_table_plan(table, profile, metadata, partition_keys, notes) for table in metadata.sorted_tables]
    seeded: dict[str, TablePlan] = {}
    for plan in plans:
        if (plan.rows if plan.parent is None else plan.amount > 0 and plan.parent.target in seeded):
            seeded[plan.name] = plan
    return TableGraph(tuple(seeded.values()), tuple(reversed(plans)), dict(partition_keys), tuple(notes))


def _refuse_unknown(profile: "Profile", metadata: sa.MetaData) -> None:
    for name, spec in profile.tables.items():
        table = metadata.tables.get(name)
        if table is None:
            raise DeclarationError(profile.path, f"postgres.{name}",
                                   f"no table {name!r} is declared (tables: {', '.join(sorted(metadata.tables))})")
        for column in spec.columns:
            if column not in table.c:
                raise DeclarationError(profile.path, f"postgres.{name}.columns.{column}",
                                       f"table {name} declares no column {column!r}")
        if spec.per is not None and spec.per not in {fk.column.table.name for fk in table.foreign_keys}:
            raise DeclarationError(profile.path, f"postgres.{name}.per",
                                   f"table {name} has no foreign key to {spec.per!r}")


def _references(table: sa.Table) -> list[Reference]:
    position = {c.name: i for i, c in enumerate(table.columns)}
    found = []
    for constraint in table.foreign_key_constraints:
        columns = tuple(constraint.column_keys)
        targets = tuple(e.column.name for e in constraint.elements)
        nullable = any(table.c[c].nullable for c in columns)
        found.append((position[columns[0]], Reference(columns, constraint.referred_table.name, targets, nullable)))
    return [ref for _, ref in sorted(found, key=lambda pair: pair[0])]


def _parent(table: sa.Table, references: list[Reference], wanted: str | None) -> Reference | None:
    others = [r for r in references if r.target != table.name]
    if wanted is not None:
        return next(r for r in others if r.target == wanted)
    return next((r for r in others if not r.nullable), others[0] if others else None)


def _table_plan(table: sa.Table, profile: "Profile", metadata: sa.MetaData, partition_keys: dict[str, str],
                notes: list[str]) -> TablePlan:
    spec = profile.tables.get(table.name)
    references = _references(table)
    parent = _parent(table, references, spec.per if spec else None)
    allowed = _checks(table, notes)
    referenced = {e.column.name for t in metadata.tables.values() for fk in t.foreign_key_constraints
                  for e in fk.elements if e.column.table is table}
    pk = [c.name for c in table.primary_key.columns]
    fk_columns = {c for r in references for c in r.columns}
    columns = []
    for column in table.columns:
        given = spec.columns.get(column.name) if spec else None
        keep = (given is not None or column.name in pk or column.name in fk_columns or column.name in referenced
                or partition_keys.get(table.name) == column.name)
        plan = _column_plan(table, column, given, allowed.get(column.name, Allowed()), pk, keep, parent, profile)
        if plan is not None:
            columns.append(plan)
    rows, amount, share = _amounts(table.name, spec, parent, profile)
    return TablePlan(table.name, tuple(columns), parent, rows, amount, share,
                     tuple(r for r in references if r is not parent), _marker(columns, pk, references))


def _amounts(name: str, spec, parent: Reference | None, profile: "Profile") -> tuple[int, float, bool]:
    if spec is None:
        return 0, (DEFAULT_MEAN if parent else 0.0), False
    if parent is None:
        if spec.amount is not None:
            raise DeclarationError(profile.path, f"postgres.{name}", "is a root table (no foreign key): give its "
                                                                     "rows (rows = 100, or the short form)")
        return int(spec.rows if spec.rows is not None else spec.number or 0), 0.0, False
    if spec.rows is not None:
        raise DeclarationError(profile.path, f"postgres.{name}.rows", f"{name} is a child of {parent.target}: "
                                                                      "give mean or share per parent row")
    amount = spec.amount if spec.amount is not None else spec.number
    return 0, DEFAULT_MEAN if amount is None else float(amount), spec.share


def _checks(table: sa.Table, notes: list[str]) -> dict[str, Allowed]:
    facts: dict[str, Allowed] = {}
    left = [constraint.name or str(constraint.sqltext) for constraint in table.constraints
            if isinstance(constraint, sa.CheckConstraint) and not read_check(str(constraint.sqltext), facts)]
    if left:
        notes.append(f"postgres: {len(left)} check(s) of {table.name} left to Postgres, their form not one the seed "
                     f"generates for ({', '.join(sorted(left))}); a row breaking one is refused by name")
    for column in table.columns:
        if isinstance(column.type, pg.DOMAIN) and column.type.check is not None:
            read_check(str(column.type.check), facts, value_name=column.name)
    return facts


def _column_plan(table: sa.Table, column: sa.Column, given: "ColumnSpec | None", allowed: Allowed, pk: list[str],
                 keep: bool, parent: Reference | None, profile: "Profile") -> ColumnPlan | None:
    if column.computed is not None or (given is not None and given.kind == "default"):
        return None
    kind, encoding, extra = infer_kind(column, pk, parent, given, profile)
    if kind is None:
        return None
    has_default = column.server_default is not None or column.identity is not None or (
        column.autoincrement is True and column.name not in pk)
    if has_default and not keep and kind not in ("time", "date"):
        return None
    nullable = column.nullable and not allowed.not_null and not (isinstance(column.type, pg.DOMAIN)
                                                                 and column.type.not_null)
    plan = ColumnPlan(column.name, kind, encoding, nullable=nullable,
                      nulls=_nulls(given, nullable and not has_default),
                      unique=bool(column.unique) or [column.name] == pk or _in_unique(table, column),
                      length=getattr(_base(column.type), "length", None), low=allowed.low, high=allowed.high,
                      min_length=allowed.min_length, **{"choices": allowed.choices, **extra})
    if allowed.max_length is not None:
        plan = replace(plan, length=min(plan.length or allowed.max_length, allowed.max_length))
    if allowed.digits:
        plan = replace(plan, kind="digits", length=allowed.digits, min_length=allowed.digits)
    if allowed.only_null:
        plan = replace(plan, kind="null", nullable=True, choices=None)
    return _from_profile(plan, given)


def _nulls(given: "ColumnSpec | None", nullable: bool) -> float:
    """The share of NULLs: the profile's, else NULLS for a nullable column without a server default."""
    if given is not None and given.nulls is not None:
        return given.nulls
    return NULLS if nullable else 0.0


def _in_unique(table: sa.Table, column: sa.Column) -> bool:
    return any(isinstance(c, sa.UniqueConstraint) and column.name in c.columns for c in table.constraints) or any(
        i.unique and column.name in i.columns for i in table.indexes)


def _base(type_: sa.types.TypeEngine) -> sa.types.TypeEngine:
    return type_.data_type if isinstance(type_, pg.DOMAIN) else type_


def _from_profile(plan: ColumnPlan, given: "ColumnSpec | None") -> ColumnPlan:
    if given is None:
        return plan
    if given.values is not None:
        plan = replace(plan, kind="choice", choices=given.values)
    if given.value is not None:
        plan = replace(plan, kind="constant", value=given.value)
    if given.low is not None:
        plan = replace(plan, low=(float(given.low), False))
    if given.high is not None:
        plan = replace(plan, high=(float(given.high), False))
    return plan


def _marker(columns: list[ColumnPlan], pk: list[str], references: list[Reference]) -> tuple[str, str] | None:
    """The column whose seeded values tell seeded rows apart: the table's own uuid or serial key,
    else a foreign key column (a child row is seeded when its parent is)."""
    own = [c for c in columns if c.kind in ("uuid", "serial") and c.name in pk]
    if own:
        return own[0].name, own[0].kind
    fk = next((r.columns[0] for r in references if len(r.columns) == 1), None)
    return (fk, "reference") if fk else None
