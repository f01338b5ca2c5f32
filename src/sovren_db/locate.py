"""Where a finding's object is declared: the file and line that GitHub annotations point at.

Drift findings come from operations, which know the object but not the file it was read from. This
reads the object name a finding carries (``key family session``, ``index communications.userId_1``,
``table users``) and finds its declaration: the Redis entry's table header (``[families.session]``),
the Mongo collection's ``<name>.toml`` (the index's ``name =`` line where it has one), the Postgres
``Table("users"`` call. A finding whose declaration cannot be found is left as it was.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import TYPE_CHECKING

from .core.findings import Finding

if TYPE_CHECKING:
    from .core.config import Settings

_REDIS = re.compile(r"(?P<kind>key family|channel|server configuration|stream) (?P<name>[^\s(]+)")
_MONGO = re.compile(r"(?:collection |validator of |shard key of |zones of |index )(?P<name>[\w-]+)(?:\.(?P<index>\S+))?")
_POSTGRES = re.compile(r"(?:table |column |index \S+ on |foreign key \S+ on |constraint \S+ on )(?P<table>\w+)")


def locate(settings: "Settings", findings: list[Finding]) -> list[Finding]:
    """``findings`` with ``file`` and ``line`` filled in where the declaration is found."""
    finders = {"redis": _redis_place, "mongo": _mongo_place, "postgres": _postgres_place}
    located = []
    for finding in findings:
        place = None if finding.line else finders[finding.store](settings, finding)
        shown = _shown(settings, place[0]) if place else None
        if shown and (finding.file is None or shown == finding.file or shown.startswith(finding.file + "/")):
            finding = dataclasses.replace(finding, file=shown, line=place[1])
        located.append(finding)
    return located


def _redis_place(settings: "Settings", finding: Finding) -> tuple[Path, int] | None:
    match = _REDIS.match(finding.object)
    if match is None:
        return None
    name = match["name"] if match["kind"] != "stream" else _family_of_key(settings, match["name"])
    header = {"key family": f"families.{name}", "stream": f"families.{name}", "channel": f"channels.{name}",
              "server configuration": "server"}[match["kind"]]
    pattern = re.compile(rf"\s*\[\s*{re.escape(header)}\s*\]")
    return _first_line_matching(sorted(settings.redis_dir.glob("*.toml")), pattern)


def _family_of_key(settings: "Settings", key: str) -> str | None:
    """The family whose one fixed key is ``key`` (a stream with consumer groups)."""
    from .redis.declared import load_declarations

    families = load_declarations(settings.redis_dir).families.values()
    return next((f.name for f in families if f.fixed_key is not None and f.fixed_key.decode(errors="replace") == key),
                None)


def _mongo_place(settings: "Settings", finding: Finding) -> tuple[Path, int] | None:
    match = _MONGO.match(finding.object)
    options = settings.mongo_dir / f"{match['name']}.toml" if match else None
    if options is None or not options.is_file():
        return None
    if match["index"]:
        named = _first_line_matching([options], re.compile(rf"\s*name\s*=\s*[\"']{re.escape(match['index'])}[\"']"))
        if named:
            return named
    return options, 1


def _postgres_place(settings: "Settings", finding: Finding) -> tuple[Path, int] | None:
    match = _POSTGRES.match(finding.object)
    if match is None:
        return None
    pattern = re.compile(rf".*Table\(\s*[\"']{re.escape(match['table'])}[\"']")
    return _first_line_matching(sorted(settings.postgres_dir.glob("*.py")), pattern, joined=True)


def _first_line_matching(paths: list[Path], pattern: re.Pattern, *, joined: bool = False
                         ) -> tuple[Path, int] | None:
    """The first line matching ``pattern`` (with ``joined``, a match may span a line break after it)."""
    for path in paths:
        lines = path.read_text(errors="replace").splitlines()
        for number, text in enumerate(lines, 1):
            candidate = text + (" " + lines[number].strip() if joined and number < len(lines) else "")
            if pattern.match(candidate):
                return path, number
    return None


def _shown(settings: "Settings", path: Path) -> str:
    try:
        return str(path.resolve().relative_to(settings.root))
    except ValueError:
        return str(path)
