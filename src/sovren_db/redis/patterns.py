"""Key patterns: the placeholder grammar, overlap decision and fast key matching.

Grammar (the one of ``str.format``): ``{name}`` is a placeholder, ``{{`` and
``}}`` are literal braces, every other character is literal. A placeholder
matches one or more characters other than ``:``, ``{`` and ``}``, so
``session:{user_id}`` matches ``session:42`` but not ``session:42:x``. A cluster
hash tag is written with literal braces: ``{{{tenant_id}}}:outbox`` matches
``{acme}:outbox``; ``{{comms}}:dead`` is the literal key ``{comms}:dead``.

The language of a pattern is regular, so whether two patterns can match a
common key is decided exactly (product of the two automata), with a witness.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

PLACEHOLDER_EXCLUDES = ":{}"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_VALUE = "[^:{}]+"
_GLOB_SPECIALS = set("*?[]\\")


class PatternError(ValueError):
    """A pattern does not follow the grammar; the message says where."""


@dataclass(frozen=True)
class Placeholder:
    name: str


Token = str | Placeholder


@dataclass(frozen=True)
class KeyPattern:
    """A parsed pattern: literal text and placeholders, in order."""

    text: str
    tokens: tuple[Token, ...]

    @property
    def placeholders(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tokens if isinstance(t, Placeholder))

    def regex_source(self, *, named: bool) -> str:
        parts = []
        for token in self.tokens:
            if isinstance(token, Placeholder):
                parts.append(f"(?P<{token.name}>{_VALUE})" if named else _VALUE)
            else:
                parts.append(re.escape(token))
        return "".join(parts)

    def regex(self) -> re.Pattern[bytes]:
        """Full-match regex over bytes keys with one named group per placeholder."""
        return re.compile(self.regex_source(named=True).encode("utf-8", "surrogateescape"), re.DOTALL)

    def glob(self, values: dict[str, str] | None = None) -> str:
        """A SCAN MATCH glob that every matching key satisfies (it may match more);
        placeholders named in ``values`` are fixed to those values."""
        parts = []
        for token in self.tokens:
            if isinstance(token, Placeholder) and token.name not in (values or {}):
                parts.append("*")
            else:
                text = values[token.name] if isinstance(token, Placeholder) else token  # type: ignore[index]
                parts.append("".join("\\" + c if c in _GLOB_SPECIALS else c for c in text))
        return "".join(parts)

    def accepts(self, name: str, value: str) -> bool:
        """Whether ``value`` can stand for a placeholder (no ':', '{' or '}', not empty)."""
        return bool(value) and not set(value) & set(PLACEHOLDER_EXCLUDES) and name in self.placeholders

    def render(self, values: dict[str, str | bytes]) -> bytes:
        """The key for these placeholder values."""
        out = []
        for token in self.tokens:
            if isinstance(token, Placeholder):
                value = values[token.name]
                out.append(value if isinstance(value, bytes) else value.encode())
            else:
                out.append(token.encode("utf-8", "surrogateescape"))
        return b"".join(out)

    def hash_tag(self) -> str | None:
        """What Redis Cluster hashes: the text between the key's first literal ``{`` and the
        next ``}``, in pattern notation (``{tenant_id}`` or ``comms``); None when the whole key."""
        pieces: list[str] = []
        opened = False
        for token in self.tokens:
            if isinstance(token, Placeholder):
                if opened:
                    pieces.append(f"{{{token.name}}}")
                continue
            for char in token:
                if opened and char == "}":
                    return "".join(pieces) or None
                if opened:
                    pieces.append(char)
                opened = opened or char == "{"
        return None


def parse_pattern(text: str) -> KeyPattern:
    """Parse ``text``; raise PatternError naming the first problem."""
    if not isinstance(text, str) or not text:
        raise PatternError("the pattern is empty")
    tokens: list[Token] = []
    literal: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith(("{{", "}}"), i):
            literal.append(text[i])
            i += 2
        elif text[i] == "{":
            name, i = _placeholder_at(text, i)
            if not literal and tokens:
                raise PatternError(f"placeholder {{{name}}} follows another placeholder; separate them with text")
            tokens.extend(["".join(literal), Placeholder(name)] if literal else [Placeholder(name)])
            literal = []
        elif text[i] == "}":
            raise PatternError(f"unmatched '}}' at position {i} (write '}}}}' for a literal brace)")
        else:
            literal.append(text[i])
            i += 1
    tokens.extend(["".join(literal)] if literal else [])
    names = [t.name for t in tokens if isinstance(t, Placeholder)]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PatternError(f"placeholder {{{duplicates[0]}}} appears twice")
    return KeyPattern(text, tuple(tokens))


def _placeholder_at(text: str, start: int) -> tuple[str, int]:
    """The name of the placeholder opening at ``start`` and the position after it."""
    end = text.find("}", start)
    name = text[start + 1:end] if end > 0 else ""
    if end < 0 or not _NAME.match(name):
        raise PatternError(f"malformed placeholder at position {start}: expected {{name}} with name "
                           "an identifier (write '{{' for a literal brace)")
    return name, end + 1


# -- overlap ----------------------------------------------------------------

_ANY = None  # the placeholder character class in the automaton


def _atoms(pattern: KeyPattern) -> list[str | None]:
    atoms: list[str | None] = []
    for token in pattern.tokens:
        atoms.extend([_ANY] if isinstance(token, Placeholder) else list(token))
    return atoms


def _closure(state: tuple[int, bool], atoms: Sequence[str | None]) -> list[tuple[int, bool]]:
    """A state is (atom index, inside a placeholder that has consumed one char or more)."""
    index, inside = state
    return [state, (index + 1, False)] if inside else [state]


def _steps(state: tuple[int, bool], atoms: Sequence[str | None]) -> list[tuple[str | None, tuple[int, bool]]]:
    index, inside = state
    if inside:
        return [(_ANY, state)]
    if index >= len(atoms):
        return []
    atom = atoms[index]
    return [(_ANY, (index, True))] if atom is _ANY else [(atom, (index + 1, False))]


def _common_char(a: str | None, b: str | None) -> str | None:
    """A character both labels accept, or None when there is none."""
    if a is _ANY and b is _ANY:
        return "x"
    if a is _ANY or b is _ANY:
        char = b if a is _ANY else a
        return None if char in PLACEHOLDER_EXCLUDES else char
    return a if a == b else None


def _accepting(state: tuple[int, bool], atoms: Sequence[str | None]) -> bool:
    index, inside = state
    return index == len(atoms) or (inside and index == len(atoms) - 1)


def overlap_witness(first: KeyPattern, second: KeyPattern) -> str | None:
    """A key matched by both patterns, or None when no such key exists."""
    atoms_a, atoms_b = _atoms(first), _atoms(second)
    start = ((0, False), (0, False))
    seen = {start}
    frontier = [(start, "")]
    while frontier:
        next_frontier = []
        for (sa, sb), path in frontier:
            if _accepting(sa, atoms_a) and _accepting(sb, atoms_b):
                return path
            for ca in _closure(sa, atoms_a):
                for cb in _closure(sb, atoms_b):
                    for label_a, ta in _steps(ca, atoms_a):
                        for label_b, tb in _steps(cb, atoms_b):
                            char = _common_char(label_a, label_b)
                            if char is not None and (ta, tb) not in seen:
                                seen.add((ta, tb))
                                next_frontier.append(((ta, tb), path + char))
        frontier = next_frontier
    return None


# -- matching keys to families ----------------------------------------------

class KeyMatcher:
    """Classifies keys (bytes) to the index of the one pattern they match.

    Patterns whose first ``:``-separated segment is literal are grouped by that
    segment (one dict lookup, then one combined regex for the group); the rest
    share one combined regex. Patterns must not overlap.
    """

    def __init__(self, patterns: Iterable[KeyPattern]):
        patterns = list(patterns)
        grouped: dict[bytes, list[tuple[int, KeyPattern]]] = {}
        rest: list[tuple[int, KeyPattern]] = []
        for index, pattern in enumerate(patterns):
            head = _literal_head(pattern)
            (grouped.setdefault(head, []) if head is not None else rest).append((index, pattern))
        self._groups = {head: _combined(members).fullmatch for head, members in grouped.items()}
        self._rest = _combined(rest).fullmatch if rest else None
        self._index = {f"p{index}": index for index in range(len(patterns))}  # group name -> pattern

    def match(self, key: bytes) -> int | None:
        """The index of the one pattern ``key`` matches, or None."""
        group = self._groups.get(key.partition(b":")[0])
        found = group(key) if group is not None else None
        if found is None and self._rest is not None:
            found = self._rest(key)
        return None if found is None else self._index[found.lastgroup]  # type: ignore[index]

    def group(self, keys: Sequence[bytes]) -> tuple[dict[int, list[bytes]], list[bytes]]:
        """The keys of each pattern (by index) and the keys of none; the audit's hot loop."""
        match = self.match
        groups: dict[int, list[bytes]] = {}
        unknown: list[bytes] = []
        for key in keys:
            number = match(key)
            if number is None:
                unknown.append(key)
            else:
                members = groups.get(number)
                if members is None:
                    groups[number] = [key]
                else:
                    members.append(key)
        return groups, unknown


def _literal_head(pattern: KeyPattern) -> bytes | None:
    """The literal text before the pattern's first ':' (or the whole literal pattern), else None."""
    head = []
    for token in pattern.tokens:
        if isinstance(token, Placeholder):
            return None
        if ":" in token:
            head.append(token.split(":", 1)[0])
            return "".join(head).encode("utf-8", "surrogateescape")
        head.append(token)
    return "".join(head).encode("utf-8", "surrogateescape")


def _combined(members: list[tuple[int, KeyPattern]]) -> re.Pattern[bytes]:
    source = "|".join(f"(?P<p{index}>{pattern.regex_source(named=False)})" for index, pattern in members)
    return re.compile(source.encode("utf-8", "surrogateescape"), re.DOTALL)


def key_prefix(key: bytes) -> str:
    """How unknown keys are grouped: the first ':' segment, else the leading letters."""
    return printable_key(prefix_head(key)) + "*"


def prefix_head(key: bytes) -> bytes:
    head, sep, _ = key.partition(b":")
    if sep:
        return head + sep
    return re.match(rb"[A-Za-z]*", key).group(0) or key[:1]  # type: ignore[union-attr]


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\r``, ``\\x06``), safe on one output line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def printable_key(key: bytes) -> str:
    return printable(key.decode("utf-8", "backslashreplace"))
