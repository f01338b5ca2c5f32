"""Skip Alembic's per-table comparison for tables it already found in step with the same declaration.

Alembic's detailed comparison of one table (reflection into a SQLAlchemy
``Table``, then each column, type, server default, index, unique and foreign
key compared in Python) is a function of two inputs: the declared ``Table``
and what reflection reads of the live one. This module names both inputs by
a digest:

- the *live form*: one query gives, per table, a hash of the catalog rows
  reflection reads of it (pg_class, pg_attribute, pg_attrdef, pg_constraint,
  pg_index and its indexes' pg_class rows, pg_description, the sequences of
  nextval defaults and identities with their owners): every DDL writes new
  versions of the rows it changes (new ``xmin`` and ``ctid``), the same
  principle as doctor/fingerprint.py; plus the names reflection prints of
  other objects (a foreign key's table and columns, parents) and the flags
  CREATE INDEX CONCURRENTLY updates in place. Names lent by the rest of the
  database (types, enum labels, functions, collations, operator classes,
  schemas, tablespaces) are hashed once per comparison into its context. An
  expand's ``_new_`` column (which ``include_object`` treats apart) makes the
  table's form unusable here;
- the *declared form*: a digest of the ``Table`` as Alembic reads it (columns
  with type, nullability, server default, identity, comment; constraints;
  indexes; options), expressions printed by the PostgreSQL dialect.

When Alembic's comparison of a table gave no operation, the pair (declared
form, live form) is remembered as in step. Later, a table whose pair was seen
in step is left out of Alembic's comparison: with the same two inputs Alembic
gives the same answer. Every other table (first seen, changed on either side,
drifted) goes through Alembic's comparison as before, so operations, messages
and exit codes stay Alembic's. Remembering Alembic's verdict rather than
normalising the declarations in Python (or applying them to a scratch schema,
Atlas's dev database) keeps the answer exact where Python and the server
disagree on how to print a default or an expression, and needs no right
beyond reading the catalogs, so it works on a hot standby and as the
application role. What it costs: the first comparison of each declaration is
Alembic's own; the pairs are kept per process (``VERIFIED``), which is where
check runs again and again (``metrics serve``, doctor's schema collection).
tests/integration/test_fast_check.py holds the answer equal to ``check
--exact`` (every table through Alembic) over every kind of drift.

Across processes (a one-shot ``sovren-db check``, ``doctor``, a CI job, the
exporter's first collection), the same verdicts are kept in a file under the
project's state folder, ``.sovren/check-verdicts`` (``VerdictFile``). Each line
is one digest (BLAKE2b, 128 bits) of everything a verdict depends on: the
database's identity, the comparison context above (versions of Alembic,
SQLAlchemy, sovren-db and the server, search_path, lent names), the table's
key and its declared and live forms. Only digests are stored: no table names,
no values, nothing a reader can turn back into the schema.

Why these parts make up the identity, since ``xmin`` and ``ctid`` repeat from
one cluster to the next (a fresh initdb hands out the same transaction ids):

- pg_control's ``system_identifier`` (``pg_control_system()``; unreadable, the
  file is not used: in-memory only, as before): tells clusters apart. A hot
  standby shares its primary's, and its catalog rows are physically the same
  (same ``xmin``, ``ctid``, contents), so a verdict would still be exact there;
- ``pg_postmaster_start_time()``: two copies restored from one base backup (or
  a promoted standby beside its old primary) share the identifier but hand out
  the same transaction ids to different DDL after they part, so the same
  ``(xmin, ctid)`` could stand for different rows. Any restart of the server
  starts a new key: its first check compares in full and writes again. This
  also keeps a standby's verdicts apart from its primary's: exact either way,
  only not shared;
- the database's oid and name: CREATE DATABASE copies its template's catalog
  files, rows and row versions alike.

pg_upgrade and pg_dump restores write new catalog rows (and a new server
version in the context): verdicts are recomputed. What the in-process path
already accepts holds here too: a transaction id reused after wraparound at
the same ``ctid`` within one server's run is not told apart.

The file holds at most ``FILE_MAX`` digests (about 270 kB): each schema
version adds only its changed tables' pairs (all of them when the context
changes), and digests used least recently go first, so the file stays a
bounded read for the first check of a process. It is written whole to a
temporary file and renamed over the old one (two checks at once: the last
rename wins, nothing is half written, a lost verdict is recomputed), mode
0600. A file that is damaged, unreadable or cannot be written is never an
error: check goes on in memory, with a line on the ``sovren_db.check`` logger
(``--debug`` prints it). ``check --exact`` neither reads nor writes it;
``SOVREN_DB_CHECK_MEMORY=off`` turns it off.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
import threading
import weakref
from collections.abc import Iterable
from pathlib import Path
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any

import alembic
import sqlalchemy
from sqlalchemy import Table, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.dialects import postgresql

_exact: ContextVar[bool] = ContextVar("sovren_exact_compare", default=False)

# The tables of one schema as SQLAlchemy's reflection scopes them (ObjectScope.DEFAULT).
IN_SCHEMA = """
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relpersistence <> 't'
   AND CASE WHEN CAST(:schema AS text) IS NULL THEN pg_table_is_visible(c.oid) AND n.nspname <> 'pg_catalog'
            ELSE n.nspname = :schema END"""


def _row(alias: str) -> str:
    """A hash of a catalog row's (xmin, ctid): the row's ``ctid`` hashed with its ``xmin`` as the seed, half the
    cost of hashing the two as text (``hashtidextended``: PostgreSQL 14 and later; on an older server the read
    fails and every table goes through Alembic, as for any refused read)."""
    return f"hashtidextended({alias}.ctid, {alias}.xmin::text::int8)"


def _rows(alias: str) -> str:
    """The sum of a hash of (xmin, ctid) over catalog rows: any DDL writes new row versions."""
    return f"sum({_row(alias)})"


# Per table, the catalog rows reflection reads of it, as (xmin, ctid) hashes (doctor/fingerprint.py:
# every DDL writes new versions of the rows it changes), and the names it prints of other objects
# that could be renamed without touching those rows (a foreign key's table and columns, parents);
# pg_index's flags, updated in place by CREATE INDEX CONCURRENTLY, by value. The sequences of nextval
# defaults and identities: their own rows and owners (Alembic's SERIAL test). What the rest of the
# database lends names to (types, functions, collations, operator classes, schemas): the context column.
_LIVE_FORMS = f"""
SELECT c.relname, c.relispartition, c.columns[2] = 'true' AS expanding,
       CASE WHEN row_number() OVER () = 1 THEN concat_ws('|', current_setting('server_version_num'),
                 current_setting('search_path'), current_schema(), ({{lent}})) END AS context,
       CASE WHEN NOT c.relispartition THEN concat_ws(',', c.self, c.columns[1],
         (SELECT {_rows('d')} FROM pg_attrdef d WHERE d.adrelid = c.oid),
         (SELECT {_rows('ds')} FROM pg_description ds WHERE ds.objoid = c.oid),
         (SELECT string_agg(i.inhparent::regclass::text, ',' ORDER BY i.inhseqno)
            FROM pg_inherits i WHERE i.inhrelid = c.oid),
         (SELECT concat_ws(',', {_rows('k')},
                 string_agg(CASE WHEN k.contype = 'f' THEN
                   (SELECT concat_ws(' ', r.oid::regclass::text, r.relispartition,
                                     string_agg(ra.attname, ' ' ORDER BY ra.attnum))
                      FROM pg_class r JOIN pg_attribute ra ON ra.attrelid = r.oid AND ra.attnum = ANY(k.confkey)
                     WHERE r.oid = k.confrelid GROUP BY r.oid) END, ',' ORDER BY k.conname, k.oid),
                 sum((SELECT {_rows('ds')} FROM pg_description ds WHERE ds.objoid = k.oid)))
            FROM pg_constraint k WHERE k.conrelid = c.oid),
         (SELECT concat_ws(',', {_rows('i')}, {_rows('ic')},
                 string_agg(concat(ic.relname, i.indisvalid, i.indisready, i.indislive), ',' ORDER BY ic.relname),
                 sum((SELECT {_rows('ds')} FROM pg_description ds WHERE ds.objoid = ic.oid)))
            FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid),
         (SELECT concat_ws(',', sum(s.h), sum(s.params), sum(s.owners)) FROM (
            SELECT (SELECT {_row('sc')} FROM pg_class sc WHERE sc.oid = s.seq) AS h,
                   (SELECT {_row('sq')} FROM pg_sequence sq WHERE sq.seqrelid = s.seq) AS params,
                   (SELECT {_rows('o')} FROM pg_depend o
                     WHERE o.classid = 'pg_class'::regclass AND o.objid = s.seq) AS owners
              FROM (SELECT p.refobjid AS seq FROM pg_attrdef d
                      JOIN pg_depend p ON p.classid = 'pg_attrdef'::regclass AND p.objid = d.oid
                                      AND p.refclassid = 'pg_class'::regclass AND p.refobjid <> d.adrelid
                     WHERE d.adrelid = c.oid
                    UNION ALL
                    SELECT p.objid FROM pg_depend p
                     WHERE c.columns[3] = 'true' AND p.refclassid = 'pg_class'::regclass AND p.refobjid = c.oid
                       AND p.deptype = 'i') s) s)
       ) END AS form
  FROM (SELECT c.oid, c.relname, c.relispartition, {_row('c')} AS self,
               CASE WHEN NOT c.relispartition THEN
                 (SELECT ARRAY[{_rows('a')}::text, bool_or(a.attname LIKE '\\_new\\_%')::text,
                               bool_or(a.attidentity <> '')::text]
                    FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0) END AS columns
         {IN_SCHEMA} AND c.relkind IN ('r', 'p') OFFSET 0) c"""

# The user-defined objects a table's reflection prints by name (types, enum labels, domains' constraints,
# functions in defaults and expressions, collations, operator classes and operators, schemas, tablespaces).
_LENT_NAMES = " || '|' || ".join(
    f"(SELECT COALESCE({_rows('x')}, 0) FROM {catalog} x WHERE {where})::text"
    for catalog, where in (("pg_type", "x.oid >= 16384 AND x.typrelid = 0"), ("pg_enum", "true"),
                           ("pg_constraint", "x.contypid > 0"),  # not <> 0: > 0 is a range of its index
                           ("pg_proc", "x.oid >= 16384"), ("pg_collation", "x.oid >= 16384"),
                           ("pg_opclass", "x.oid >= 16384"), ("pg_operator", "x.oid >= 16384"),
                           ("pg_namespace", "true"), ("pg_tablespace", "true")))
LIVE_FORMS = text(_LIVE_FORMS.replace("{lent}", _LENT_NAMES))

# One round trip before the read: a savepoint (a refused read must not abort the comparison's transaction)
# and JIT off for the rest of the comparison's transaction. The planner's estimate for LIVE_FORMS (and for
# SQLAlchemy's reflection queries) passes jit_above_cost, and compiling them costs more than running them
# (3x for LIVE_FORMS on the bench schema); a catalog read gains nothing from JIT. The savepoint is left
# open: it ends with the transaction, one statement sooner.
_BEFORE = "SAVEPOINT sovren_table_forms; SELECT set_config('jit', 'off', true)"
_REFUSED = "ROLLBACK TO SAVEPOINT sovren_table_forms"


# The database's identity for the verdicts kept on file: which cluster (NULL where pg_control_system() may not
# be run: then no file), which run of its server, which database.
_IDENTITY = text("""
SELECT CASE WHEN has_function_privilege('pg_catalog.pg_control_system()', 'execute')
            THEN (SELECT system_identifier FROM pg_catalog.pg_control_system())::text END AS cluster,
       pg_postmaster_start_time()::text AS started, d.oid::text AS oid, d.datname
  FROM pg_database d WHERE d.datname = current_database()""")

log = logging.getLogger("sovren_db.check")

_DIALECT = postgresql.dialect()
_lock = threading.Lock()
# (what the forms are read with, (schema, table), declared form, live form) of the tables Alembic found in step
VERIFIED: set[tuple[str, tuple[str | None, str], str, str]] = set()
_VERIFIED_MAX = 100_000
_declared_cache: weakref.WeakKeyDictionary[Table, str] = weakref.WeakKeyDictionary()


@contextmanager
def exact_compare():
    """Within it, every table goes through Alembic's comparison (``check --exact``)."""
    token = _exact.set(True)
    try:
        yield
    finally:
        _exact.reset(token)


def is_exact() -> bool:
    return _exact.get()


def live_forms(connection, schema: str | None) -> tuple[str, dict[str, tuple[bool, str | None]]]:
    """(context, every table of ``schema`` as reflection lists them: name -> (a partition, its live form)).

    The form is None for a partition (sovren-db compares partitions set-wise, by name) and while an
    expand is under way (Alembic compares that table every time). The context is what else Alembic's
    answer depends on: the versions comparing, the server's, its search_path and the names the
    database's own types, functions, collations, operator classes and schemas lend (_LENT_NAMES).
    """
    from .. import __version__

    rows = connection.execute(LIVE_FORMS, {"schema": schema}).all()
    context = "|".join((alembic.__version__, sqlalchemy.__version__, __version__, rows[0].context if rows else ""))
    return context, {r.relname: (r.relispartition, None if r.expanding else r.form) for r in rows}


def declared_form(table: Table) -> str:
    """A digest of the declared table as Alembic's comparison reads it, kept while the object lives."""
    form = _declared_cache.get(table)
    if form is None:
        form = _declared_cache[table] = hashlib.sha256(_declared_text(table).encode()).hexdigest()
    return form


def _declared_text(table: Table) -> str:
    """Everything of the table Alembic's comparison reads, written out without compiling its DDL (compiling
    300 tables' CREATE statements cost 0.25 s each time a declaration file changed): SQLAlchemy's reprs name
    every argument of a type, identity or computed column; expressions print as the PostgreSQL dialect does."""
    parts = [repr((table.name, table.schema, table.comment, _options(table)))]
    for column in table.columns:
        parts.append(repr((column.name, column.key, _type(column.type), column.nullable, column.primary_key,
                           column.autoincrement, column.comment, _default(column.server_default),
                           repr(column.computed), repr(column.identity), column.index, column.unique,
                           _options(column))))
    # Indexes and constraints are sets: sorted by their whole text, since unnamed ones tie on any key and
    # would otherwise follow the set's order, which string hashing changes from one process to the next.
    parts += sorted(repr((index.name, index.unique, tuple(_expression(e) for e in index.expressions),
                          _options(index))) for index in table.indexes)
    parts += sorted(repr((type(constraint).__name__, constraint.name, _constraint_detail(constraint),
                          _options(constraint))) for constraint in table.constraints)
    return "\n".join(parts)


def _type(type_: Any) -> str:
    """The type's class and public attributes (what its generic repr shows, at a tenth of its cost)."""
    attributes = sorted((key, _type(value) if isinstance(value, sqlalchemy.types.TypeEngine) else repr(value))
                        for key, value in vars(type_).items() if not key.startswith("_") and key != "dispatch")
    return f"{type(type_).__module__}.{type(type_).__qualname__}:{attributes}"


def _expression(expression: Any) -> str:
    if isinstance(expression, sqlalchemy.Column):
        return "column:" + expression.name
    return f"{type(expression).__name__}:{expression.compile(dialect=_DIALECT)}"


def _options(item: Any) -> tuple:
    """Its dialect keyword arguments (postgresql_where...); never set when SQLAlchemy has not made the view."""
    if "dialect_options" not in vars(item):
        return ()
    return tuple(sorted((key, _expression(value) if isinstance(value, sqlalchemy.ClauseElement) else repr(value))
                        for key, value in item.dialect_kwargs.items()))


def _default(default: Any) -> str | None:
    if default is None:
        return None
    arg = getattr(default, "arg", None)
    if arg is None:  # Identity, Computed, FetchedValue: their repr names every argument
        return repr(default)
    if isinstance(arg, str):
        return "str:" + arg
    if isinstance(arg, sqlalchemy.TextClause) and not arg._bindparams:
        return "text:" + arg.text
    return _expression(arg)


def _constraint_detail(constraint: Any) -> tuple:
    elements = getattr(constraint, "elements", None)
    if elements is not None:  # a foreign key
        return (tuple((e.parent.name, e.target_fullname) for e in elements), constraint.ondelete,
                constraint.onupdate, constraint.deferrable, constraint.initially, constraint.match,
                constraint.use_alter)
    sqltext = getattr(constraint, "sqltext", None)
    return (tuple(c.name for c in getattr(constraint, "columns", ())), getattr(constraint, "deferrable", None),
            getattr(constraint, "initially", None), None if sqltext is None else _expression(sqltext))


def in_step(context: str, key: tuple[str | None, str], declared: str, live: str | None) -> bool:
    return live is not None and (context, key, declared, live) in VERIFIED


def remember(context: str, pairs: Iterable[tuple[tuple[str | None, str], str, str | None]]) -> None:
    """Keep the (table, declared form, live form) Alembic's comparison found in step."""
    with _lock:
        if len(VERIFIED) > _VERIFIED_MAX:
            VERIFIED.clear()  # a belt: only a process comparing very many schema versions gets here
        VERIFIED.update((context, key, declared, live) for key, declared, live in pairs if live is not None)


def forget() -> None:
    """Forget every verdict this process holds (the file stays: the next comparison reads it again)."""
    with _lock:
        VERIFIED.clear()
        _declared_cache.clear()
        _ON_FILE.clear()


MEMORY_VARIABLE = "SOVREN_DB_CHECK_MEMORY"  # "off" (or 0, false, no): no verdicts kept on file
FILE_NAME = "check-verdicts"
FILE_MAX = 8192
_HEADER = "sovren-db check verdicts 1"
_DIGEST = re.compile(r"[0-9a-f]{32}")
_ON_FILE: dict[Path, set[str]] = {}  # per file, the digests this process read there or wrote


class VerdictFile:
    """The in-step verdicts kept across processes: a bounded, atomically replaced file of digests.

    Written by hand rather than with a key-value store (dbm, sqlite3, diskcache): what it needs is a set
    read once and replaced whole, and a rename gives readers the old file or the new one, never half of
    either, with no lock to leave behind when a check is killed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._said: set[str] = set()

    @property
    def digests(self) -> set[str]:
        """What is on file, read once a process (a check that finds every table in memory never reads it)."""
        with _lock:
            if self.path not in _ON_FILE:
                _ON_FILE[self.path] = set(self._read())
            return _ON_FILE[self.path]

    def _read(self) -> list[str]:
        """The digests on file, oldest use first; nothing where it is missing, unreadable or damaged."""
        try:
            with open(self.path, "rb") as f:
                data = f.read((FILE_MAX + 2) * 33 + len(_HEADER))
        except FileNotFoundError:
            return []
        except OSError as exc:
            self._say(f"check: verdicts file {self.path} not read ({exc.strerror or exc}): every table not seen "
                      "in this process goes through Alembic")
            return []
        lines = data.decode("ascii", "replace").split("\n")
        if lines[0] != _HEADER:
            self._say(f"check: verdicts file {self.path} is not one this version wrote: ignored, then replaced")
            return []
        return [line for line in lines[1:] if _DIGEST.fullmatch(line)]  # a cut last line is left out

    def _say(self, message: str) -> None:
        if message not in self._said:  # the file is read twice a comparison that writes: said once
            self._said.add(message)
            log.debug("%s", message)

    def write(self, used: Iterable[str]) -> None:
        """Keep ``used`` (most recent last) with what is on file now (another check may have written since)."""
        used = list(dict.fromkeys(used))
        if set(used) <= _ON_FILE.get(self.path, set()):
            return  # nothing new to keep
        keep = set(used)
        merged = [d for d in self._read() if d not in keep] + used
        merged = merged[-FILE_MAX:]
        tmp = None
        try:
            self.path.parent.mkdir(mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{FILE_NAME}.", dir=self.path.parent)  # mode 0600
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(_HEADER + "\n" + "".join(d + "\n" for d in merged))
            os.replace(tmp, self.path)
            tmp = None
            with _lock:
                _ON_FILE[self.path] = set(merged)
        except OSError as exc:
            self._say(f"check: verdicts file {self.path} not written ({exc.strerror or exc}): verdicts kept "
                      "for this process only")
        finally:
            if tmp is not None:
                with suppress(OSError):
                    os.unlink(tmp)


def verdict_file(autogen_context) -> VerdictFile | None:
    """The project's verdicts file, where a configured run compares and the environment does not turn it off."""
    if os.environ.get(MEMORY_VARIABLE, "").strip().lower() in ("off", "0", "false", "no"):
        return None
    from ..core.context import configured_runtime

    runtime = configured_runtime(autogen_context.migration_context)
    if runtime is None:
        return None
    return VerdictFile(runtime.settings.state_dir / FILE_NAME)


def _digest(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()


# What the last comparison of this process did, for tests and the bench: tables left out of Alembic's comparison
# (from memory and from the file), and tables Alembic compared.
LAST: dict[str, int] = {"skipped": 0, "from_file": 0, "compared": 0}


class TablesInStep:
    """For one comparison: which live tables may skip Alembic's, and remembering what Alembic found."""

    def __init__(self, autogen_context, metadata_table_names: Iterable[tuple[str | None, str]]) -> None:
        self.autogen_context = autogen_context
        self.connection = autogen_context.connection
        self.declared = {key: autogen_context.table_key_to_table[_table_key(*key)] for key in metadata_table_names}
        self.enabled = not is_exact()
        self.context = ""
        self.live: dict[tuple[str | None, str], str | None] = {}
        self.skipped: set[tuple[str | None, str]] = set()
        self.file = verdict_file(autogen_context) if self.enabled else None
        self.identity: str | None = None
        self.used: list[str] = []  # the digests of this comparison's verdicts, found or made
        LAST.update(skipped=0, from_file=0, compared=0)

    def tables(self, schema: str | None) -> tuple[set[str], set[str]] | None:
        """(tables, partitions) of ``schema`` as reflection lists them, read with their forms; None when exact.

        A server that refuses the read (a catalog revoked from the role, a statement timeout) leaves every
        table to Alembic, with a note: the read runs in a savepoint, so the comparison goes on.
        """
        if not self.enabled:
            return None
        try:
            self.connection.exec_driver_sql(_BEFORE)
            if self.file is not None and self.identity is None:
                row = self.connection.execute(_IDENTITY).one()
                self.identity = None if row.cluster is None else "|".join(row)
                if self.identity is None:
                    log.debug("check: pg_control_system() may not be run by this role: verdicts kept in memory only")
                    self.file = None
            self.context, found = live_forms(self.connection, schema)
        except DBAPIError as exc:
            with suppress(DBAPIError):  # no savepoint to go back to: the connection was not in a transaction
                self.connection.exec_driver_sql(_REFUSED)
            self.enabled = False
            _note(self.autogen_context, f"postgres: every table was compared by Alembic, the catalog read that lets "
                                        f"it skip tables in step failed ({_reason(exc)})")
            return None
        self.live.update(((schema, name), form) for name, (_, form) in found.items())
        return set(found), {name for name, (partition, _) in found.items() if partition}

    def skip(self, schema: str | None, names: Iterable[str]) -> set[str]:
        """The names among ``names`` whose (declared, live) pair Alembic already found in step."""
        if not self.enabled:
            return set()
        found, from_file = set(), []
        for name in names:
            key = (schema, name)
            if key not in self.declared or (live := self.live.get(key)) is None:
                continue
            declared = declared_form(self.declared[key])
            digest = None if self.file is None else self._digest(key, declared, live)
            if in_step(self.context, key, declared, live):
                found.add(name)
            elif digest is not None and digest in self.file.digests:
                found.add(name)
                from_file.append((key, declared, live))
            else:
                continue
            if digest is not None:
                self.used.append(digest)
        remember(self.context, from_file)  # the next comparison of this process finds them in memory
        self.skipped |= {(schema, n) for n in found}
        LAST["skipped"] += len(found)
        LAST["from_file"] += len(from_file)
        return found

    def _digest(self, key: tuple[str | None, str], declared: str, live: str) -> str:
        return _digest(self.identity, self.context, key, declared, live)

    def remember(self, compared: Iterable[tuple[str | None, str]], new_ops: list) -> None:
        """Tables Alembic compared and gave no operation for are in step at their current pair."""
        compared = set(compared)
        LAST["compared"] = len(compared)
        if not self.enabled:
            return
        touched = {(getattr(op, "schema", None), op.table_name) for op in new_ops if hasattr(op, "table_name")}
        in_step_now = [(key, declared_form(self.declared[key]), self.live.get(key))
                       for key in compared if key not in touched and key in self.declared]
        remember(self.context, in_step_now)
        if self.file is not None:
            self.file.write(self.used + [self._digest(*pair) for pair in in_step_now if pair[2] is not None])


def _table_key(schema: str | None, name: str) -> str:
    return f"{schema}.{name}" if schema else name


def _reason(exc: DBAPIError) -> str:
    """The server's first line; for a refused catalog, the grant that would allow it."""
    first = str(exc.orig or exc).strip().splitlines()[0]
    match = re.search(r"permission denied for (?:table|relation) (\w+)", first)
    return f"{first}: GRANT SELECT ON pg_catalog.{match.group(1)} TO the role that checks" if match else first


def _note(autogen_context, message: str) -> None:
    from ..core.context import configured_runtime

    runtime = configured_runtime(autogen_context.migration_context)
    if runtime is not None:
        runtime.note(message)
