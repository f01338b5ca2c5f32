"""What a profile seeds in this project: the declared tables, collections and key families it names.

A profile entry whose table, collection or family is not declared is not
seeded (a note says so); a store that is not among the project's stores is
left alone. The Postgres declarations also give the role to seed as (the one
with BYPASSRLS); the tables come from them, as :mod:`.declared` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import os

from ..core.errors import ConfigError, DeclarationError, SovrenError
from .redis_keys import KeyBatch
from ..postgres.declared import load_schema
from ..postgres.encryption import declared_encrypted, is_armored
from ..postgres.roles import bypass_role
from ..postgres.state import PartitionRule
from . import documents as document_records, families as family_records
from .postgres_load import ENCRYPTION_KEY_VAR, Encryption
from .declared import TableGraph, build_graph
from .postgres_rows import TableRows

if TYPE_CHECKING:
    from ..core.config import Settings
    from ..mongo.state import CollectionSpec
    from ..postgres.state import Schema
    from ..redis.state import KeyFamily
    from .entities import Block
    from .profiles import Profile

@dataclass
class Targets:
    tables: list[TableRows]                          # to load, in foreign-key order
    graph: TableGraph                                # the declared tables as the seed generates them
    role: str
    collections: dict[str, "CollectionSpec"] = field(default_factory=dict)
    families: dict[str, "KeyFamily"] = field(default_factory=dict)
    # what --reset cleans: what this profile seeds, then what any other profile of the project seeds
    all_collections: list[str] = field(default_factory=list)
    document_keys: dict[str, dict] = field(default_factory=dict)   # collection -> filter of its seeded documents
    all_families: list["KeyFamily"] = field(default_factory=list)
    encrypted: dict[str, list[Encryption]] = field(default_factory=dict)
    declarations: dict[str, object] = field(default_factory=dict)   # record -> $jsonSchema or KeyFamily (Plan's)
    specs: dict[str, object] = field(default_factory=dict)          # record -> CollectionSpec or KeyFamily
    cleaned_collections: list[str] = field(default_factory=list)
    cleaned_families: list["KeyFamily"] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(cls, settings: "Settings", profile: "Profile", validate_all: bool = False) -> "Targets":
        schema = load_schema(settings.postgres_dir)
        graph = build_graph(schema, profile, {r.table: r.column for r in schema.of(PartitionRule)})
        if not graph.tables:
            raise ConfigError(f"{profile.path} seeds no table of {settings.postgres_dir}: give a table without "
                              "foreign keys its rows (e.g. [postgres] users = 100).")
        targets = cls(tables=[TableRows.of(t) for t in graph.tables], graph=graph,
                      role=bypass_role(schema, grants="INSERT and DELETE", purpose="seeding"))
        targets.notes += list(graph.notes)
        targets._add_encryption(settings.postgres_dir, schema, profile)
        targets._declare(settings, profile)
        for store in ("mongo", "redis"):
            if targets._generated(settings, store, validate_all):
                targets._add(store, profile)
        return targets

    def _generated(self, settings: "Settings", store: str, validate_all: bool) -> bool:
        """A declared store's documents or keys are generated (and validated) when it is configured, or when
        --validate-all asks for every declared store: an unconfigured store costs nothing otherwise."""
        if store not in settings.stores:
            return False
        if not (validate_all or settings.configured(store)):
            self.notes.append(f"{store}: not configured, so its seeded data was neither generated nor validated "
                              "(--validate-all checks it anyway).")
            return False
        return True

    def _add_encryption(self, where: object, schema: "Schema", profile: "Profile") -> None:
        """Columns of loaded tables declared Encrypted (checked as rotate-key and erase check them),
        with the key to encrypt seeded values with."""
        loaded = {t.table for t in self.tables}
        declared = [e for e in declared_encrypted(where, schema) if e.table in loaded]
        if not declared:
            return
        key = os.environ.get(ENCRYPTION_KEY_VAR) or profile.encryption_key
        if not key:
            first = declared[0]
            raise ConfigError(f"{first.table}.{first.column} is declared encrypted: set {ENCRYPTION_KEY_VAR} or "
                              f"encryption_key in {profile.path} to the key seeded values are encrypted with.")
        for entry in declared:
            self.encrypted.setdefault(entry.table, []).append(Encryption(entry, is_armored(schema, entry), key))

    def _declare(self, settings: "Settings", profile: "Profile") -> None:
        """The declaration of every collection and family the profile names (whether or not its store is
        configured: a family may hang off a collection); a note for each one not declared (or under one)."""
        from ..mongo.declared import has_declarations, load_declared
        from ..mongo.validate import validator_schema
        from ..redis.declared import load_declarations

        collections = (load_declared(settings.mongo_dir, display_root=settings.root).collections
                       if has_declarations(settings.mongo_dir) else {})
        families = load_declarations(settings.redis_dir).families if "redis" in settings.stores or \
            profile.families else {}
        for store, names, declared, folder in (("mongo", profile.documents, collections, settings.mongo_dir),
                                               ("redis", profile.families, families, settings.redis_dir)):
            for name in names:
                if name not in declared and declared:
                    raise DeclarationError(profile.path, f"{store}.{name}", f"{name!r} is not declared in "
                                                                             f"{folder.name}/")
                if name not in declared:
                    self.notes.append(f"{store}: {name} is in the profile but {folder.name}/ declares nothing; "
                                      "not seeded.")
                elif store == "mongo":
                    self.declarations[name] = validator_schema(declared[name].validator) or {}
                    self.specs[name] = declared[name]
                else:
                    self.declarations[name] = self.specs[name] = declared[name]
        self._drop_orphans(profile)
        for name in self.declarations:
            check_record(profile, name, self.declarations, self.graph)
        self._cleaned(settings, collections, families)

    def _cleaned(self, settings: "Settings", collections: dict, families: dict) -> None:
        """What --reset cleans: the declared collections and families any profile of the project seeds (an
        earlier seed may have been of another profile)."""
        from .profiles import load_profile, profile_names

        named: dict[str, None] = {}
        for other in profile_names(settings.seeds_dir):
            try:
                found = load_profile(settings.seeds_dir, other)
            except SovrenError:   # a broken profile is refused when it is the one seeded, not here
                continue
            named.update(dict.fromkeys([*found.documents, *found.families]))
        self.cleaned_collections = [n for n in named if n in collections]
        self.cleaned_families = [families[n] for n in named if n in families]

    def _drop_orphans(self, profile: "Profile") -> None:
        """Records whose parent is neither a seeded table nor a declared record are not seeded (a note)."""
        tables = set(self.graph.names())
        changed = True
        while changed:
            changed = False
            for name in list(self.declarations):
                per = profile.records(name).per
                if per not in tables and per not in self.declarations and per in profile.documents.keys() | \
                        profile.families.keys():
                    self.notes.append(f"{_store(profile, name)}: {name} is not seeded: its parent {per} is not.")
                    del self.declarations[name], self.specs[name]
                    changed = True

    def _add(self, store: str, profile: "Profile") -> None:
        from .documents import seeded_filter

        names = profile.documents if store == "mongo" else profile.families
        chosen = {name: self.specs[name] for name in names if name in self.declarations}
        if store == "redis":
            self.families = chosen
            self.all_families = [*chosen.values(), *(f for f in self.cleaned_families if f.name not in chosen)]
            return
        self.collections = chosen
        self.all_collections = [*chosen, *(n for n in self.cleaned_collections if n not in chosen)]
        for name in chosen:
            try:
                self.document_keys[name] = seeded_filter(self.declarations[name], profile.documents[name], self.graph,
                                                         profile)
            except ConfigError as exc:
                raise DeclarationError(profile.path, f"mongo.{name}", str(exc).rstrip(".")) from None

    def names(self, store: str) -> list[str]:
        """What this store's counts are keyed by, in loading order."""
        if store == "postgres":
            return [t.name for t in reversed(self.graph.declared)]
        return list(self.collections if store == "mongo" else self.families)

    def documents(self, name: str, block: "Block") -> list[dict]:
        return document_records.documents_of(name, block)

    def keys(self, name: str, block: "Block", family: "KeyFamily") -> KeyBatch:
        return family_records.keys_of(name, block)


def _store(profile: "Profile", name: str) -> str:
    return "mongo" if name in profile.documents else "redis"


def check_record(profile: "Profile", name: str, declarations: dict, graph: TableGraph) -> None:
    """A collection's or family's entry against the declarations: its parent, its fields, what they copy."""
    store = _store(profile, name)
    spec, where = profile.records(name), f"{store}.{name}"
    if spec.per not in graph.names() and spec.per not in declarations:
        raise DeclarationError(profile.path, where + ".per", f"{spec.per!r} is not a table, collection or family "
                                                              "this profile seeds")
    seen, per = {name}, spec.per
    while per not in graph.names():
        if per in seen:
            raise DeclarationError(profile.path, where + ".per", f"{name} is its own ancestor (through {per})")
        seen.add(per)
        per = profile.records(per).per
    for field in spec.where:
        _check_source(profile, f"{where}.where.{field}", f"{spec.per}.{field}", declarations, graph, profile.records)
    schema = declarations[name] if isinstance(declarations[name], dict) else None
    for field, given in spec.columns.items():
        at = f"{where}.fields.{field}"
        if schema is not None and schema.get("additionalProperties", True) is False and \
                field not in schema.get("properties", {}):
            raise DeclarationError(profile.path, at, f"collection {name} declares no field {field!r}")
        if given.after is not None and given.after not in spec.columns and given.after not in (
                schema or {}).get("properties", {}):
            raise DeclarationError(profile.path, at + ".after", f"{given.after!r} is not a field of {name}")
        if given.source is not None:
            _check_source(profile, at + ".from", given.source, declarations, graph)


def _check_source(profile: "Profile", where: str, source: str, declarations: dict, graph: TableGraph,
                  fields_of=None) -> None:
    owner, _, column = source.partition(".")
    if owner in graph.names():
        if column not in {c.name for c in graph.table(owner).columns}:
            raise DeclarationError(profile.path, where, f"table {owner} has no generated column {column!r}")
    elif owner not in declarations or not column:
        raise DeclarationError(profile.path, where, f"{source!r} must be table.column or collection.field of "
                               "something this profile seeds")
    elif fields_of is not None:
        schema = declarations[owner] if isinstance(declarations[owner], dict) else {}
        if column not in schema.get("properties", {}) and column not in fields_of(owner).columns:
            raise DeclarationError(profile.path, where, f"{owner} has no field {column!r}")
