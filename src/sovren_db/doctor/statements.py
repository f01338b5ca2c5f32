"""Statement text safe to print and export: no literal survives.

``pg_stat_statements`` replaces the constants of planned statements with
``$1``, but keeps utility statements (``ALTER ROLE ... PASSWORD '...'``) as they
were sent. Its text is scrubbed again here (quoted strings, dollar-quoted
bodies and numbers become ``?``) so that no literal, secret or personal datum
reaches a report or a metric label; a regular expression is enough because
the text is only shown, never parsed or run.
"""

from __future__ import annotations

import re

MAX_TEXT = 240
_DOLLAR_QUOTED = re.compile(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$.*?\$\1\$", re.DOTALL)
_QUOTED = re.compile(r"[EeBbXxNn]?'(?:[^']|'')*'", re.DOTALL)
_NUMBER = re.compile(r"(?<![\w$.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?\b")
_SPACE = re.compile(r"\s+")


def scrub(query: str) -> str:
    """``query`` with every literal replaced by ``?``, whitespace collapsed, bounded in length."""
    text = _DOLLAR_QUOTED.sub("?", query)
    text = _QUOTED.sub("?", text)
    text = _NUMBER.sub("?", text)
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def fingerprint(queryid: int | None) -> str:
    """A stable, short label for a statement: pg_stat_statements' queryid in hex."""
    return format((queryid or 0) & 0xFFFFFFFFFFFFFFFF, "016x")
