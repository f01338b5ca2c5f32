"""Is the seed the manifest records still there? One cheap probe per table, collection and family.

The manifest lives in the ``sovren_db`` schema and survives what empties the
stores (``downgrade base`` drops the tables; ``FLUSHALL`` or a restart without
persistence empties Redis), so ``seed`` asks each store before saying "already
seeded": a target the manifest counts rows, documents or keys for that holds
none of the seed's any more names the store to load again. A target holding
some (a subject erased, keys expired) is still there.

- Postgres: one query, ``EXISTS`` of a seeded user's row per table (the
  ``user_id`` range the seeded ids occupy, indexed);
- MongoDB: ``find_one`` of a seeded ``userId`` per collection;
- Redis: one SCAN per master that stops as soon as every family has shown a
  seeded key (seeded keys are most keys, so it stops early), and the first
  page of each stream for seeded entries (a stream whose first thousand
  entries are all the application's counts as lost: its seeded entries are
  deleted and written again). Families whose keys must expire are not asked:
  their keys may be gone by design.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql

from ..redis.patterns import KeyMatcher
from .postgres_load import seeded_condition
from .redis_keys import is_seeded_value

if TYPE_CHECKING:
    import psycopg

    from ..redis.backend import RedisBackend
    from .declared import TableGraph
    from ..redis.state import KeyFamily

SCAN_PAGE = 1000


def missing_tables(conn: "psycopg.Connection", counts: dict[str, int], graph: "TableGraph") -> list[str]:
    """Tables the manifest counts rows for that hold no seeded row (one query); a table no longer
    declared counts as missing."""
    declared = {t.name: t for t in graph.declared}
    gone = [table for table, count in counts.items() if count and table not in declared]
    probes, params = [], []
    for table, count in counts.items():
        condition = seeded_condition(declared[table], graph) if count and table in declared else None
        if condition is not None:
            probes.append(sql.SQL("SELECT {} WHERE NOT EXISTS (SELECT 1 FROM {} WHERE ").format(
                sql.Literal(table), sql.Identifier(table)) + condition[0] + sql.SQL(")"))
            params += condition[1]
    if not probes:
        return gone
    return gone + [row[0] for row in conn.execute(sql.SQL(" UNION ALL ").join(probes), params).fetchall()]


def missing_collections(db: Any, counts: dict[str, int], filters: dict[str, dict] | None = None) -> list[str]:
    from .mongo_load import seeded_documents

    return [name for name, count in counts.items()
            if count and db[name].find_one(seeded_documents(name, filters), {"_id": 1}) is None]


def missing_families(backend: "RedisBackend", counts: dict[str, int], families: dict[str, "KeyFamily"]) -> list[str]:
    """Families the manifest counts keys for, whose keys do not expire, that hold no seeded key."""
    wanted = [families[name] for name, count in counts.items()
              if count and name in families and families[name].ttl.policy != "required"]
    streams = [f for f in wanted if f.fixed_key is not None]
    found = {f.name for f in streams if _stream_has_seeded_entry(backend, f.fixed_key)}
    found |= _families_with_seeded_keys(backend, [f for f in wanted if f.fixed_key is None])
    return [f.name for f in wanted if f.name not in found]


def _stream_has_seeded_entry(backend: "RedisBackend", key: bytes) -> bool:
    entries = backend.node_of(key).xrange(key, min=b"-", max=b"+", count=SCAN_PAGE)
    return any(is_seeded_value(fields.get(b"messageId", b"")) for _, fields in entries)


def _families_with_seeded_keys(backend: "RedisBackend", families: list["KeyFamily"]) -> set[str]:
    """Names of ``families`` with a seeded key, scanning each master until all have shown one."""
    if not families:
        return set()
    matcher = KeyMatcher(family.parsed for family in families)
    regexes = [family.parsed.regex() for family in families]
    seen: set[int] = set()
    for _, client in backend.masters():
        cursor = 0
        while len(seen) < len(families):
            cursor, keys = client.scan(cursor, count=SCAN_PAGE)
            groups, _ = matcher.group(keys)
            for index, members in groups.items():
                fullmatch = regexes[index].fullmatch
                if index not in seen and any(any(map(is_seeded_value, fullmatch(k).groupdict().values()))
                                             for k in members):
                    seen.add(index)
            if cursor == 0:
                break
    return {families[index].name for index in seen}
