"""``lint.toml`` at the project root: squawk's settings and the links between stores.

::

    [squawk]
    pg_version = "14"            # the Postgres the revisions target (squawk --pg-version)
    exclude = []                 # squawk rules off for the whole project; prefer accepting per revision

    # A Postgres column whose values Mongo fields and Redis key placeholders hold.
    [[links]]
    postgres = "users.user_id"
    mongo = ["executives.userId"]            # <collection>.<property path in its $jsonSchema>
    redis = ["session.user_id"]              # <family or channel>.<placeholder of its pattern>

The file is optional: without it squawk runs with its defaults and the
cross-store rule has nothing to check. Any problem in it is an error (exit 2)
naming the file and the entry.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import DeclarationError

CONFIG_FILE = "lint.toml"
SECTIONS = {"squawk", "links"}
SQUAWK_KEYS = {"pg_version", "exclude"}
LINK_KEYS = {"postgres", "mongo", "redis"}


@dataclass(frozen=True)
class Link:
    """``table.column`` in Postgres, held by Mongo (collection, field) and Redis (name, placeholder) targets."""

    table: str
    column: str
    mongo: tuple[tuple[str, str], ...] = ()
    redis: tuple[tuple[str, str], ...] = ()
    where: str = ""

    @property
    def name(self) -> str:
        return f"{self.table}.{self.column}"


@dataclass(frozen=True)
class LintConfig:
    pg_version: str | None = None
    exclude: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()
    display: str = CONFIG_FILE


def load_config(root: Path) -> LintConfig:
    path = root / CONFIG_FILE
    if not path.is_file():
        return LintConfig()
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DeclarationError(path, None, f"is not valid TOML ({exc})") from None
    unknown = sorted(set(data) - SECTIONS)
    if unknown:
        raise DeclarationError(path, unknown[0], f"unknown table (expected {', '.join(sorted(SECTIONS))})")
    squawk = _table(path, data.get("squawk", {}), "squawk", SQUAWK_KEYS)
    links = data.get("links", [])
    if not isinstance(links, list):
        raise DeclarationError(path, "links", "must be an array of tables ([[links]])")
    return LintConfig(pg_version=_pg_version(path, squawk.get("pg_version")),
                      exclude=tuple(_strings(path, squawk, "exclude", "squawk.exclude")),
                      links=tuple(_link(path, i, raw) for i, raw in enumerate(links)))


def _table(path: Path, raw: Any, where: str, keys: set[str]) -> dict:
    if not isinstance(raw, dict):
        raise DeclarationError(path, where, "must be a table")
    unknown = sorted(set(raw) - keys)
    if unknown:
        raise DeclarationError(path, where, f"unknown key {unknown[0]!r} (expected one of {', '.join(sorted(keys))})")
    return raw


def _pg_version(path: Path, value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    if not all(part.isdigit() for part in text.split(".")):
        raise DeclarationError(path, "squawk.pg_version", f"{value!r} is not a Postgres version such as \"14\"")
    return text if "." in text else f"{text}.0"


def _strings(path: Path, table: dict, key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise DeclarationError(path, where, "must be a list of strings")
    return value


def _pair(path: Path, where: str, text: str, what: str) -> tuple[str, str]:
    head, dot, tail = text.partition(".")
    if not dot or not head or not tail:
        raise DeclarationError(path, where, f"{text!r} must be written <{what}>.<name>")
    return head, tail


def _link(path: Path, i: int, raw: Any) -> Link:
    where = f"links[{i}]"
    body = _table(path, raw, where, LINK_KEYS)
    column = body.get("postgres")
    if not isinstance(column, str):
        raise DeclarationError(path, f"{where}.postgres", "must name a Postgres column as \"table.column\"")
    table, name = _pair(path, f"{where}.postgres", column, "table")
    mongo = tuple(_pair(path, f"{where}.mongo", t, "collection") for t in _strings(path, body, "mongo", f"{where}.mongo"))
    redis = tuple(_pair(path, f"{where}.redis", t, "family") for t in _strings(path, body, "redis", f"{where}.redis"))
    if not mongo and not redis:
        raise DeclarationError(path, where, f"links {column} to nothing: name mongo or redis targets")
    return Link(table, name, mongo, redis, where)
