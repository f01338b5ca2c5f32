"""Several databases: regions and environments as targets.

``[tool.sovren-db.targets.eu]`` (and ``.us``, ...) give a target its server URLs
(``postgres_url``, ``mongo_url``, ``redis_url``) and optionally its ``environment``
and ``region`` (data residency: ``seed`` puts only that region's users there);
``SOVREN_TARGET_<NAME>_POSTGRES_URL`` (and ``_MONGO_URL``, ``_REDIS_URL``,
``_ENVIRONMENT``, ``_REGION``) override them, so passwords stay out of the project file.
``sovren-db --target eu CMD`` runs CMD against one target; ``--target all`` runs it
against every target in child processes (Alembic's ``context`` is process-wide),
at most ``PARALLEL`` at once, and prints one row a target and store; the exit
code is the worst of all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from .core.config import STORES, URL_SCHEMES, URL_VARS, Settings, _read_tool_table
from .core.errors import ConfigError
from .core.urls import check_url, redact_text

PARALLEL = 2
_KEYS = {"postgres_url", "mongo_url", "redis_url", "environment", "region"}
MATRIX_COMMANDS = ("status", "check", "migrate", "doctor")


def target_tables(settings: Settings) -> dict[str, dict]:
    where = settings.root / "pyproject.toml"
    tables = _read_tool_table(settings.root).get("targets", {})
    if not isinstance(tables, dict) or not all(isinstance(t, dict) for t in tables.values()):
        raise ConfigError(f"{where}: [tool.sovren-db.targets] must hold one table a target.")
    for name, table in tables.items():
        unknown = sorted(set(table) - _KEYS)
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} in [tool.sovren-db.targets.{name}].")
    return tables


def for_target(settings: Settings, name: str, environ: dict[str, str] | None = None) -> Settings:
    """``settings`` pointed at target ``name``'s servers; a store the target does not name is unconfigured."""
    tables = target_tables(settings)
    if name not in tables:
        known = ", ".join(sorted(tables)) or "none"
        raise ConfigError(f"{settings.root / 'pyproject.toml'}: no target {name!r} in [tool.sovren-db.targets] "
                          f"(known: {known}).")
    env = os.environ if environ is None else environ
    table, prefix = tables[name], f"SOVREN_TARGET_{name.upper()}_"
    urls: dict[str, str | None] = {}
    for store in STORES:
        value = env.get(prefix + URL_VARS[store]) or table.get(f"{store}_url")
        urls[store] = check_url(value, URL_SCHEMES[store], f"target {name} {store}_url") if value else None
    environment = env.get(prefix + "ENVIRONMENT") or table.get("environment") or settings.environment
    region = env.get(prefix + "REGION") or table.get("region")
    if region is not None:
        from .seeds.residency import check_region

        check_region(region, f"{settings.root / 'pyproject.toml'}: region of [tool.sovren-db.targets.{name}]")
    return replace(settings, urls=urls, environment=str(environment), region=region,
                   url_sources={s: f"target {name}" for s, u in urls.items() if u})


def run_all(settings: Settings, argv: list[str]) -> int:
    """Run ``sovren-db --target NAME argv...`` for every target; print the matrix; the worst exit code."""
    names = sorted(target_tables(settings))
    if not names:
        raise ConfigError(f"{settings.root / 'pyproject.toml'}: --target all, but [tool.sovren-db.targets] "
                          "names no target.")
    matrix = argv[:1] and argv[0] in MATRIX_COMMANDS and not any(a.startswith("--format") for a in argv)
    args = argv + (["--format", "json"] if matrix else [])
    with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
        results = list(pool.map(lambda name: _child(settings, name, args), names))
    for name, (code, out, err) in zip(names, results):
        for line in (_rows(name, argv[0], code, out, err) if matrix else _block(name, code, out, err)):
            print(line)
    return max(code if code in (0, 1) else 2 for code, _, _ in results)


def _child(settings: Settings, name: str, args: list[str]) -> tuple[int, str, str]:
    argv = [sys.executable, "-m", "sovren_db.cli.main", "--root", str(settings.root), "--target", name, *args]
    done = subprocess.run(argv, capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


def _block(name: str, code: int, out: str, err: str) -> list[str]:
    return [f"== target {name}: exit {code}", *out.rstrip().splitlines(), *err.rstrip().splitlines()]


def _rows(name: str, command: str, code: int, out: str, err: str) -> list[str]:
    """One line a store: what the child's JSON says of it, or the child's one-sentence error."""
    try:
        data = json.loads(out)
    except ValueError:
        return [f"{name:8s} {'*':9s} exit {code}: {redact_text(err.strip() or out.strip())}"]
    if isinstance(data, dict) and isinstance(data.get("error"), dict):  # --format json's error document
        error = data["error"]
        return [f"{name:8s} {error.get('store') or '*':9s} exit {code}: {redact_text(str(error.get('message')))}"]
    if command == "status":
        cells = {s: f"at {', '.join(v['revision']) if isinstance(v['revision'], list) else v['revision']}"
                 + (f", {len(v['pending'])} pending" if v.get("pending") else "")
                 for s, v in data.get("stores", {}).items()}
    elif command == "check":
        found = [f.get("store") for f in data.get("findings", [])]
        cells = {s: f"{found.count(s)} finding(s)" if found.count(s) else "clean" for s in STORES}
    elif command == "doctor":
        cells = {s: _doctor_cell(v) for s, v in data.get("stores", {}).items()}
    else:
        cells = {"postgres": f"applied {len(data.get('applied', []))}"}
    return [f"{name:8s} {store:9s} exit {code}: {text}" for store, text in cells.items()]



def _doctor_cell(exam: dict) -> str:
    """A store's doctor row: down, healthy, or how many findings (``--target NAME doctor`` names them)."""
    if not exam.get("up"):
        return "down"
    return f"{exam['findings']} finding(s)" if exam.get("findings") else "healthy"
