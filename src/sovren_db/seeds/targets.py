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

from ..core.errors import ConfigError
from ..postgres.declared import load_schema
from ..postgres.encryption import declared_encrypted, is_armored
from ..postgres.roles import bypass_role
from ..postgres.state import PartitionRule
from . import mongo_docs, redis_keys
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
    # declared ones with a generator, whatever this profile seeds: what --reset cleans
    all_collections: list[str] = field(default_factory=list)
    document_keys: dict[str, dict] = field(default_factory=dict)   # collection -> filter of its seeded documents
    all_families: list["KeyFamily"] = field(default_factory=list)
    encrypted: dict[str, list[Encryption]] = field(default_factory=dict)
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
        for store in ("mongo", "redis"):
            if targets._generated(settings, store, validate_all):
                getattr(targets, f"_add_{'collections' if store == 'mongo' else 'families'}")(settings, profile)
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

    def _add_collections(self, settings: "Settings", profile: "Profile") -> None:
        from ..mongo.declared import has_declarations, load_declared

        declared = (load_declared(settings.mongo_dir, display_root=settings.root).collections
                    if has_declarations(settings.mongo_dir) else {})
        self.collections = self._chosen(profile, "mongo", mongo_docs.COLLECTIONS, declared, settings.mongo_dir)
        self.all_collections = [name for name in mongo_docs.COLLECTIONS if name in declared]
        for name, spec in profile.documents.items():
            self._add_from_schema(profile, name, spec, declared, settings.mongo_dir)

    def _add_from_schema(self, profile: "Profile", name: str, spec, declared: dict, folder) -> None:
        """A collection whose documents come from its $jsonSchema, per rows of a seeded Postgres table."""
        from ..core.errors import DeclarationError
        from ..mongo.validate import validator_schema
        from .documents import seeded_filter

        self._check_generic(profile, "mongo", name, spec, declared, folder)
        schema = validator_schema(declared[name].validator) or {}
        try:
            self.document_keys[name] = seeded_filter(schema, spec, self.graph)
        except ConfigError as exc:
            raise DeclarationError(profile.path, f"mongo.{name}", str(exc).rstrip(".")) from None
        self.collections[name] = declared[name]
        self.all_collections.append(name)

    def _add_families(self, settings: "Settings", profile: "Profile") -> None:
        from ..redis.declared import load_declarations

        declared = load_declarations(settings.redis_dir).families
        self.families = self._chosen(profile, "redis", redis_keys.FAMILIES, declared, settings.redis_dir)
        self.all_families = [declared[name] for name in redis_keys.FAMILIES if name in declared]
        for name, spec in profile.families.items():
            self._check_generic(profile, "redis", name, spec, declared, settings.redis_dir)
            self.families[name] = declared[name]
            self.all_families.append(declared[name])

    def _check_generic(self, profile: "Profile", store: str, name: str, spec, declared: dict, folder) -> None:
        from ..core.errors import DeclarationError

        if name not in declared:
            raise DeclarationError(profile.path, f"{store}.{name}", f"{name!r} is not declared in {folder.name}/")
        if spec.per not in self.graph.names():
            raise DeclarationError(profile.path, f"{store}.{name}.per", f"{spec.per!r} is not a Postgres table this "
                                                                        "profile seeds")

    def _chosen(self, profile: "Profile", store: str, generators: dict, declared: dict, folder) -> dict:
        """The declarations of what the profile seeds, in generator order; a note for what is not declared."""
        chosen = {}
        for name in generators:
            if profile.amount(name) <= 0:
                continue
            if name in declared:
                chosen[name] = declared[name]
            else:
                self.notes.append(f"{store}: {name} is in the profile but not declared in {folder.name}/; not seeded.")
        return chosen

    def names(self, store: str) -> list[str]:
        """What this store's counts are keyed by, in loading order."""
        if store == "postgres":
            return [t.name for t in reversed(self.graph.declared)]
        return list(self.collections if store == "mongo" else self.families)

    def documents(self, name: str, block: "Block") -> list[dict]:
        return mongo_docs.documents(name, self.collections[name], block)

    def keys(self, name: str, block: "Block", family: "KeyFamily") -> redis_keys.KeyBatch:
        return redis_keys.keys_of(name, family, block)
