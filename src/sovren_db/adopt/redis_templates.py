"""Key names -> family patterns: variable segments become placeholders (pure).

A key is cut into runs of letters and digits and the separators between
them; a run that is a UUID, an integer, a hex id or a date becomes a
placeholder. Keys whose templates differ only in one segment position that
takes many literal values (``cache:us``, ``cache:eu``... with 10 or more) are
merged on that position as well. Braces are doubled (the pattern grammar's
literal braces), so a cluster hash tag such as ``{comms}`` is kept.
"""

from __future__ import annotations

import re
from collections import defaultdict

UUID = re.compile(rb"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
DATE = re.compile(rb"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?|\d{8}")
_WHOLE = re.compile(rb"(?<![A-Za-z0-9])(?:" + UUID.pattern + rb"|" + DATE.pattern + rb")(?![A-Za-z0-9])")
_TOKENS = re.compile(rb"[A-Za-z0-9]+|[^A-Za-z0-9]+")
_HEX = re.compile(rb"(?=[0-9a-f]*[0-9])(?=[0-9a-f]*[a-f])[0-9a-f]{8,}|[0-9A-F]{16,}")
MERGE_AT = 10   # distinct literal values at one position before it becomes a placeholder

Template = tuple[str, ...]   # literal parts and placeholders ("\x00uuid"), in order


def _kind(token: bytes) -> str | None:
    if token.isdigit():
        return "date" if DATE.fullmatch(token) and len(token) == 8 and token[:2] in (b"19", b"20") else "n"
    if _HEX.fullmatch(token):
        return "hex"
    return None


def template(key: bytes) -> Template:
    parts: list[str] = []
    position = 0
    for match in _WHOLE.finditer(key):
        parts += _literal_or_tokens(key[position:match.start()])
        parts.append("\x00uuid" if UUID.fullmatch(match[0]) else "\x00date")
        position = match.end()
    parts += _literal_or_tokens(key[position:])
    return tuple(parts)


def _literal_or_tokens(chunk: bytes) -> list[str]:
    out = []
    for token in _TOKENS.findall(chunk):
        kind = _kind(token) if token[:1].isalnum() else None
        out.append(f"\x00{kind}" if kind else token.decode("latin-1"))
    return out


def merge_wide_positions(counts: dict[Template, int]) -> dict[Template, Template]:
    """Template -> the template it joins: one literal position with MERGE_AT or more values
    (all other parts equal) becomes a placeholder ``\\x00segment``."""
    joined: dict[Template, Template] = {t: t for t in counts}
    for width in sorted({len(t) for t in counts}):
        same = [t for t in counts if len(t) == width]
        for position in range(width):
            groups: dict[Template, list[Template]] = defaultdict(list)
            for t in same:
                if not t[position].startswith("\x00") and t[position][:1].isalnum():
                    groups[t[:position] + ("\x00segment",) + t[position + 1:]].append(t)
            for merged, members in groups.items():
                if len(members) >= MERGE_AT:
                    for member in members:
                        joined[member] = merged
    return joined


def pattern_of(parts: Template) -> str:
    """The pattern text: placeholders named by kind (``{uuid}``, ``{uuid_2}``), braces doubled."""
    seen: dict[str, int] = defaultdict(int)
    out = []
    for part in parts:
        if part.startswith("\x00"):
            kind = part[1:]
            seen[kind] += 1
            out.append("{" + (kind if seen[kind] == 1 else f"{kind}_{seen[kind]}") + "}")
        else:
            out.append(part.replace("{", "{{").replace("}", "}}"))
    return "".join(out)


def family_name(parts: Template, taken: set[str]) -> str:
    words = [p for p in parts if not p.startswith("\x00")]
    base = re.sub(r"[^a-z0-9]+", "_", " ".join(words).lower()).strip("_") or "keys"
    name, n = base, 2
    while name in taken:
        name, n = f"{base}_{n}", n + 1
    taken.add(name)
    return name


def hash_tag(key_pattern: str) -> str | None:
    """The fixed hash tag of a pattern (``{{comms}}:outbox`` -> ``comms``), if any."""
    match = re.search(r"\{\{([^{}]+)\}\}", key_pattern)
    return match[1] if match and "{" not in match[1] else None
