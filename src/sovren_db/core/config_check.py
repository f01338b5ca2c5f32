"""Validation of ``[tool.sovren-db]`` when it is loaded: unknown keys, wrong types and durations
Postgres would refuse are one sentence naming the file and the key (ConfigError, exit 2), before
any command runs, never a server's "invalid value for parameter" half-way through a migration.

Types and unknown keys are checked by jsonschema against :data:`SCHEMA`; durations by
:func:`postgres_duration`, which follows PostgreSQL's own reading of a time setting
(``parse_int`` + ``convert_to_base_unit`` in ``guc.c``), since no Python library implements it.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match

from .errors import ConfigError

_TEXT = {"type": "string", "minLength": 1}
_NAMES = {"type": "array", "items": _TEXT}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        **{key: _TEXT for key in ("postgres_dir", "mongo_dir", "redis_dir", "seeds_dir", "migrations_dir",
                                  "mongo_database", "environment")},
        "lock_timeout": {"type": ["string", "integer", "number"]},
        "statement_timeout": {"type": ["string", "integer", "number"]},
        "protected_environments": _NAMES,
        "stores": _NAMES,
        # live changes (postgres/lockwait.py, postgres/indexbuild.py check the values themselves)
        "latency_budget": {"type": ["string", "integer", "number"]},
        "lock_wait_deadline": {"type": ["string", "integer", "number"]},
        "index_build_workers": {},
        "index_build_memory": {"type": ["string", "integer"]},
        # sub-tables other parts own and validate themselves (topology: targets; monitoring: doctor)
        "targets": {"type": "object"},
        "doctor": {"type": "object"},
        # the audit trail's capture path (postgres/audit_capture.py)
        "audit": {"type": "object", "additionalProperties": False,
                  "properties": {"capture": {"enum": ["auto", "native", "plpgsql"]}}},
    },
}
DURATION_KEYS = {"lock_timeout": "SOVREN_LOCK_TIMEOUT", "statement_timeout": "SOVREN_STATEMENT_TIMEOUT"}
_TYPE_NAMES = {"string": "a string", "array": "a list of strings", "object": "a table", "integer": "an integer",
               "number": "a number"}
_VALIDATOR = Draft202012Validator(SCHEMA)

# Units of a Postgres time setting whose base unit is milliseconds, and what one of each is in ms.
_UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}
_NUMBER = re.compile(r"\s*(?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)\s*(?P<unit>[a-zA-Z]*)\s*")
_INT_MAX = 2**31 - 1


def check_table(path: Path, table: dict) -> None:
    """ConfigError naming ``path`` and the key for the first problem in ``table``."""
    errors = sorted(_VALIDATOR.iter_errors(table), key=lambda e: list(e.path))
    try:
        if errors:
            error = best_match(errors)
            key = str(error.path[0]) if error.path else sorted(set(table) - set(SCHEMA["properties"]))[0]
            raise ConfigError(f"{path}: {_sentence(error)}")
        for key in DURATION_KEYS:
            if key in table:
                postgres_duration(table[key], f"{path}: {key} in [tool.sovren-db]")
    except ConfigError as error:
        error.file, error.line = str(path), _line_of(path, key)
        raise


def _line_of(path: Path, key: str) -> int | None:
    """The line of ``key = ...`` in the file (for annotations), if it is written on one."""
    pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
    lines = path.read_text().splitlines() if path.is_file() else []
    return next((number for number, text in enumerate(lines, 1) if pattern.match(text)), None)


def _sentence(error: ValidationError) -> str:
    if error.validator == "additionalProperties":  # in [tool.sovren-db] or one of its sub-tables
        known = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(known))
        table = ".".join(["tool.sovren-db", *(str(p) for p in error.path)])
        return f"unknown key {unknown[0]!r} in [{table}] (known: {', '.join(known)})."
    key = ".".join(str(p) for p in error.path)
    top = str(error.path[0]) if error.path else ""
    wanted = SCHEMA["properties"].get(top, {}).get("type", "")
    if error.validator == "enum":
        return f"{key} in [tool.sovren-db] must be one of {', '.join(error.validator_value)}, not {error.instance!r}."
    if error.validator == "minLength":
        return f"{key} in [tool.sovren-db] must not be empty."
    described = (" or ".join(_TYPE_NAMES[t] for t in wanted) if isinstance(wanted, list)
                 else _TYPE_NAMES.get(wanted, wanted))
    if len(error.path) > 1:
        described = "a string"
    return f"{key} in [tool.sovren-db] must be {described}, not {error.instance!r}."


def postgres_duration(value: object, where: str) -> str:
    """``value`` as a Postgres time setting (lock_timeout, statement_timeout) accepts it: a number of
    milliseconds, or a number with a unit (us, ms, s, min, h, d), fractions allowed, 0 to 2147483647 ms.
    Returns the text to SET; ConfigError naming ``where`` otherwise."""
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a duration such as '5s' or '15min', not {value!r}.")
    text = str(value)
    match = _NUMBER.fullmatch(text)
    unit = match["unit"] if match else ""
    if match is None or (unit and unit not in _UNITS_MS):
        raise ConfigError(f"{where} is {text!r}, which Postgres does not read as a duration: use a number of "
                          "milliseconds or a number with a unit (us, ms, s, min, h, d), such as '5s' or '15min'.")
    milliseconds = float(match["number"]) * _UNITS_MS.get(unit or "ms")
    if not math.isfinite(milliseconds) or not 0 <= round(milliseconds) <= _INT_MAX:
        raise ConfigError(f"{where} is {text!r}: Postgres accepts 0 to {_INT_MAX} ms (about 24.8 days).")
    return text.strip()
