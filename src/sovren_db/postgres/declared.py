"""Load the declared Postgres schema from the project's ``postgres/`` folder.

The folder is data, not an installed package (a ``postgres/__init__.py`` must
not exist): it is imported as a synthetic package so that its files can
import each other relatively (``from .tables import users``). Its
``schema.py`` defines ``schema`` (a :class:`~sovren_db.postgres.Schema`).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import traceback
from pathlib import Path

from ..core.errors import DeclarationError
from .state import Policy, RowSecurity, Schema, Trigger

PACKAGE = "sovren_declared_postgres"
_cache: dict[tuple[str, float], Schema] = {}


def _stamp(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.glob("*.py")), default=0.0)


def load_schema(folder: Path) -> Schema:
    """Import ``folder/schema.py`` and return its ``schema``; cached until a file changes."""
    folder = Path(folder)
    entry = folder / "schema.py"
    if not entry.is_file():
        raise DeclarationError(folder, None, "no schema.py declaring the Postgres schema was found")
    key = (str(folder.resolve()), _stamp(folder))
    if key in _cache:
        return _cache[key]
    _forget_package()
    package_spec = importlib.machinery.ModuleSpec(PACKAGE, None, is_package=True)
    package_spec.submodule_search_locations = [str(folder)]
    sys.modules[PACKAGE] = importlib.util.module_from_spec(package_spec)
    try:
        module = importlib.import_module(f"{PACKAGE}.schema")
    except SyntaxError as exc:
        raise DeclarationError(exc.filename or entry, f"line {exc.lineno}", f"syntax error: {exc.msg}") from None
    except Exception as exc:
        raise _declaration_error(exc, folder, entry) from None
    schema = getattr(module, "schema", None)
    if not isinstance(schema, Schema):
        raise DeclarationError(entry, None, "must define 'schema = Schema(...)' (sovren_db.postgres.Schema)")
    _refuse_undeclared_tables(schema)
    _cache[key] = schema
    return schema


def _refuse_undeclared_tables(schema: Schema) -> None:
    """A policy, row security or trigger on a table the schema does not declare is a declaration
    error (it could only ever show as drift), named where it was added."""
    tables = {t.name for t in schema.metadata.tables.values()} | set(schema.metadata.tables)
    for kind in (Policy, RowSecurity, Trigger):
        for obj in schema.of(kind):
            if obj.table not in tables:
                path, line = schema.sources.get((kind, obj.key), ("schema.py", None))
                raise DeclarationError(path, f"line {line}" if line else None,
                                       f"{kind.__name__.lower()} {obj.key} is on table {obj.table!r}, "
                                       "which no declared table is")


def _declaration_error(exc: Exception, folder: Path, entry: Path) -> DeclarationError:
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.startswith(str(folder))]
    where = frames[-1] if frames else None
    message = str(exc).strip() or type(exc).__name__
    return DeclarationError(where.filename if where else entry, f"line {where.lineno}" if where else None,
                            f"{type(exc).__name__}: {message}")


def _forget_package() -> None:
    for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
        del sys.modules[name]
