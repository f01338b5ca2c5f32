"""What a CHECK constraint allows, in the forms a generator can honour.

The forms schemas use for one column's values are understood: ``IN`` lists
and ``= ANY (ARRAY[...])`` (how Postgres writes them back), ``IS NULL`` (Sovren's
card-data rule), comparisons and ``BETWEEN`` with constants, and
``length``/``char_length`` bounds; ``AND`` combines them, and domains' checks
(``VALUE`` for the column) read the same way. A check in another form (``OR``,
two columns, a function) is reported as a note and left to Postgres: a row
that breaks it is refused with the constraint's name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_LITERAL = re.compile(r"'((?:[^']|'')*)'(?:::[\w ]+)?|(-?\d+(?:\.\d+)?)(?:::[\w ]+)?")
_COLUMN = r'"?(\w+)"?(?:::[\w ]+)?'
_IN = re.compile(rf"^{_COLUMN}\s+IN\s*\((.*)\)$", re.I | re.S)
_ANY = re.compile(rf"^{_COLUMN}\s*=\s*ANY\s*\(\s*(?:\(\s*)?ARRAY\s*\[(.*)\](?:\s*\))?(?:::[\w \[\]]+)?\s*\)$", re.I | re.S)
_NULL = re.compile(rf"^{_COLUMN}\s+IS\s+(NOT\s+)?NULL$", re.I)
_COMPARE = re.compile(rf"^{_COLUMN}\s*(>=|<=|<>|!=|>|<|=)\s*\(?(-?\d+(?:\.\d+)?)\)?(?:::[\w ]+)?$", re.I)
_REVERSED = re.compile(rf"^\(?(-?\d+(?:\.\d+)?)\)?(?:::[\w ]+)?\s*(>=|<=|>|<)\s*{_COLUMN}$", re.I)
_BETWEEN = re.compile(rf"^{_COLUMN}\s+BETWEEN\s+(-?\d+(?:\.\d+)?)\s+AND\s+(-?\d+(?:\.\d+)?)$", re.I)
_LENGTH = re.compile(rf"^(?:char_length|length|character_length)\s*\(\s*{_COLUMN}\s*\)\s*(>=|<=|>|<|=)\s*(\d+)$", re.I)
_DIGITS = re.compile(rf"^{_COLUMN}\s*~\s*'\^\[0-9\]\{{(\d+)\}}\$'$", re.I)
_FLIP = {">=": "<=", "<=": ">=", ">": "<", "<": ">"}


@dataclass
class Allowed:
    """What the checks let one column hold."""

    choices: tuple | None = None
    only_null: bool = False
    not_null: bool = False
    low: tuple[float, bool] | None = None       # (bound, strict)
    high: tuple[float, bool] | None = None
    min_length: int | None = None
    max_length: int | None = None
    excluded: set = field(default_factory=set)
    digits: int | None = None                   # ``col ~ '^[0-9]{n}$'``: n digits


def _strip(text: str) -> str:
    text = text.strip()
    while text.startswith("(") and text.endswith(")") and _balanced(text[1:-1]):
        text = text[1:-1].strip()
    return text


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            return False
    return depth == 0


def _conjuncts(text: str) -> list[str] | None:
    """``a AND b AND c`` split at the top level (BETWEEN's AND kept); None when an OR is involved."""
    text = _strip(text)
    parts, depth, start, words = [], 0, 0, list(re.finditer(r"\(|\)|\bAND\b|\bOR\b|\bBETWEEN\b", text, re.I))
    between = False
    for match in words:
        token = match.group(0).upper()
        if token in "()":
            depth += 1 if token == "(" else -1
        elif depth == 0 and token == "OR":
            return None
        elif depth == 0 and token == "BETWEEN":
            between = True
        elif depth == 0 and token == "AND":
            if between:
                between = False
                continue
            parts.append(text[start:match.start()])
            start = match.end()
    parts.append(text[start:])
    return [_strip(p) for p in parts]


def _literals(text: str) -> tuple:
    values = []
    for quoted, number in _LITERAL.findall(text):
        if number:
            values.append(float(number) if "." in number else int(number))
        else:
            values.append(quoted.replace("''", "'"))
    return tuple(values)


def read_check(text: str, facts: dict[str, Allowed], value_name: str | None = None) -> bool:
    """Add what check ``text`` allows to ``facts`` (by column); False when some part is not understood.
    ``value_name`` is the column a domain's ``VALUE`` stands for."""
    if value_name:
        text = re.sub(r"\bVALUE\b", value_name, text, flags=re.I)
    parts = _conjuncts(text)
    if parts is None:
        return False
    return all(_read_part(part, facts) for part in parts)


def _read_part(part: str, facts: dict[str, Allowed]) -> bool:
    for pattern in (_IN, _ANY):
        found = pattern.match(part)
        if found:
            facts.setdefault(found.group(1), Allowed()).choices = _literals(found.group(2))
            return True
    if found := _NULL.match(part):
        allowed = facts.setdefault(found.group(1), Allowed())
        if found.group(2):
            allowed.not_null = True
        else:
            allowed.only_null = True
        return True
    if found := _DIGITS.match(part):
        allowed = facts.setdefault(found.group(1), Allowed())
        allowed.digits = int(found.group(2))
        return True
    if found := _BETWEEN.match(part):
        allowed = facts.setdefault(found.group(1), Allowed())
        allowed.low, allowed.high = (float(found.group(2)), False), (float(found.group(3)), False)
        return True
    if found := _LENGTH.match(part):
        return _length(facts.setdefault(found.group(1), Allowed()), found.group(2), int(found.group(3)))
    if found := _REVERSED.match(part):
        return _compare(facts.setdefault(found.group(3), Allowed()), _FLIP[found.group(2)], float(found.group(1)))
    if found := _COMPARE.match(part):
        return _compare(facts.setdefault(found.group(1), Allowed()), found.group(2), float(found.group(3)))
    return False


def _compare(allowed: Allowed, op: str, bound: float) -> bool:
    if op in (">", ">="):
        allowed.low = (bound, op == ">")
    elif op in ("<", "<="):
        allowed.high = (bound, op == "<")
    elif op == "=":
        allowed.choices = (int(bound) if bound.is_integer() else bound,)
    else:
        allowed.excluded.add(bound)
    return True


def _length(allowed: Allowed, op: str, bound: int) -> bool:
    if op in (">", ">=", "="):
        allowed.min_length = bound + (op == ">")
    if op in ("<", "<=", "="):
        allowed.max_length = bound - (op == "<")
    return True
