"""The personal-data map: every place the declarations say holds a data subject's data.

- Postgres: ``PersonalData(table, subject_column, erase=...)`` declarations
  (``postgres/privacy.py`` for Sovren). The *subject table* is the one whose
  subject column is its primary key (``users.user_id``); the others are erased
  before it, children first, in an order computed from the foreign keys.
- MongoDB: ``mongo/privacy.cfg`` (see :mod:`.mongo_marks`).
- Redis: key families with ``pii = true`` whose ``subject`` placeholder is the
  subject column's name (``session:{user_id}``).

Everything here is pure: declarations in, plain data out; no server.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import Table
from sqlalchemy.dialects.postgresql import UUID

from ..core.errors import ConfigError, DeclarationError, SovrenError
from ..postgres.declared import load_schema
from ..postgres.encryption import declared_encrypted
from ..postgres.roles import bypass_role  # noqa: F401  (erasure, rotation and snapshots act as it)
from ..postgres.state import Encrypted, PersonalData, Schema
from .mongo_marks import CollectionRule, declared_properties, load_marks

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..redis.state import KeyFamily, RedisState


class NoPersonalData(SovrenError):
    """The project declares no personal data: valid, and there is nothing to erase."""

    def __init__(self, where: object):
        super().__init__(f"{where} declares no personal data (no PersonalData): there is nothing to erase.")


def declares_personal_data(schema: Schema) -> bool:
    return bool(schema.of(PersonalData))


@dataclass
class PiiMap:
    root: PersonalData                                    # the subject's own table (users)
    tables: list[PersonalData]                            # deleted or anonymised, in erasure order, root last
    retained: list[PersonalData] = field(default_factory=list)
    collections: list[CollectionRule] = field(default_factory=list)
    families: list["KeyFamily"] = field(default_factory=list)
    encrypted: list[Encrypted] = field(default_factory=list)
    subject_is_uuid: bool = True

    @property
    def subject_name(self) -> str:
        """The subject placeholder of Redis families: the subject column's name (user_id)."""
        return self.root.subject_column

    def parse_subject(self, text: str) -> str:
        """The canonical form of a subject id given on the command line; ConfigError if it cannot be one."""
        what = f"{self.root.table}.{self.root.subject_column}"
        if self.subject_is_uuid:
            try:
                return str(uuid.UUID(text.strip()))
            except ValueError:
                raise ConfigError(f"--subject must be a UUID ({what}); the value given is not one.") from None
        value = text.strip()
        if not value or set(value) & set(":{}"):
            raise ConfigError(f"--subject must be a non-empty {what} without ':', '{{' or '}}'.")
        return value


def load_pii_map(settings: "Settings", schema: Schema | None = None) -> PiiMap:
    """The map for this project's declared stores; DeclarationError on an inconsistent declaration,
    NoPersonalData when the project declares none."""
    schema = schema or load_schema(settings.postgres_dir)
    where = settings.postgres_dir
    declared = schema.of(PersonalData)
    if not declared:
        raise NoPersonalData(where)
    for rule in declared:
        _check_rule(where, schema, rule)
    root = _root(where, schema, declared)
    pii = PiiMap(root=root, tables=erasure_order(where, schema, declared, root),
                 retained=[r for r in declared if r.erase == "retain"],
                 encrypted=declared_encrypted(where, schema),
                 subject_is_uuid=isinstance(schema.metadata.tables[root.table].c[root.subject_column].type, UUID))
    if "mongo" in settings.stores:
        pii.collections = list(mongo_rules(settings).values())
    if "redis" in settings.stores:
        pii.families = user_families(redis_declarations(settings), pii.subject_name)
    return pii


# -- Postgres -----------------------------------------------------------------

def _table(where: object, schema: Schema, name: str, what: str) -> Table:
    table = schema.metadata.tables.get(name)
    if table is None:
        raise DeclarationError(where, what, f"table {name!r} is not declared")
    return table


def _check_rule(where: object, schema: Schema, rule: PersonalData) -> None:
    what = f"PersonalData({rule.table!r})"
    table = _table(where, schema, rule.table, what)
    named = [rule.subject_column, *rule.columns, *rule.identifying, *(column for column, _ in rule.anonymise)]
    missing = [c for c in named if c not in table.c]
    if missing:
        raise DeclarationError(where, what, f"column {missing[0]!r} is not a column of {rule.table}")
    if rule.erase == "anonymise":
        cleared = dict(rule.anonymise)
        if rule.subject_column not in cleared:
            raise DeclarationError(where, what, f"anonymising must clear the subject column {rule.subject_column!r}")
        if cleared[rule.subject_column].strip().upper() == "NULL" and not table.c[rule.subject_column].nullable:
            raise DeclarationError(where, what, f"{rule.table}.{rule.subject_column} is NOT NULL: it cannot be "
                                                "anonymised to NULL (use erase='delete')")


def _root(where: object, schema: Schema, declared: list[PersonalData]) -> PersonalData:
    roots = []
    for rule in declared:
        key = [c.name for c in schema.metadata.tables[rule.table].primary_key.columns]
        if key == [rule.subject_column] and rule.erase == "delete":
            roots.append(rule)
    if len(roots) != 1:
        problem = ("no PersonalData names the data subject's own table (erase='delete', subject column = primary key)"
                   if not roots else f"{len(roots)} PersonalData name a subject table "
                                     f"({', '.join(r.table for r in roots)}); there must be one")
        raise DeclarationError(where, None, problem)
    return roots[0]


def erasure_order(where: object, schema: Schema, declared: list[PersonalData], root: PersonalData
                  ) -> list[PersonalData]:
    """Deleted and anonymised tables, each after every table referring to it, the subject table last."""
    rules = {r.table: r for r in declared if r.erase != "retain"}
    referrers = {name: set() for name in rules}
    for name in rules:
        for fk in schema.metadata.tables[name].foreign_keys:
            parent = fk.column.table.name
            if parent in rules and parent != name:
                referrers[parent].add(name)
    order: list[PersonalData] = []
    done: set[str] = set()
    while len(order) < len(rules):
        ready = sorted(n for n in rules if n not in done and n != root.table and referrers[n] <= done)
        if not ready and referrers[root.table] <= done and root.table not in done:
            ready = [root.table]
        if not ready:
            stuck = sorted(set(rules) - done)
            raise DeclarationError(where, None, f"the foreign keys between {', '.join(stuck)} form a cycle: "
                                                "no erasure order leaves no dangling reference")
        order.append(rules[ready[0]])
        done.add(ready[0])
    return order


# -- MongoDB and Redis ----------------------------------------------------------

def mongo_collections(settings: "Settings") -> dict:
    from ..mongo.declared import has_declarations, load_declared

    if not has_declarations(settings.mongo_dir):
        return {}
    return load_declared(settings.mongo_dir, display_root=settings.root).collections


def mongo_rules(settings: "Settings", collections: dict | None = None) -> dict[str, CollectionRule]:
    collections = mongo_collections(settings) if collections is None else collections
    return load_marks(settings.mongo_dir, declared_properties(collections), settings.root)


def redis_declarations(settings: "Settings") -> "RedisState":
    from ..redis.declared import load_declarations

    return load_declarations(settings.redis_dir)


def user_families(declared: "RedisState", subject: str) -> list["KeyFamily"]:
    """The PII families whose subject placeholder is ``subject`` (none is not an error here)."""
    from ..redis.erase import subject_families

    try:
        return sorted(subject_families(declared, subject), key=lambda f: f.name)
    except ConfigError:
        return []
