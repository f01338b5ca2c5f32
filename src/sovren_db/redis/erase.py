"""Erasure of one data subject's keys (GDPR "right to erasure", architecture Appendix G.1).

Every family that holds personal data names its data subject: by a
placeholder of its pattern (erasing ``user_id 42`` deletes ``session:42``), or
for keys shared by many subjects by ``subject_field``: the stream entries,
hashes and JSON strings whose field holds ``42`` go (``XDEL`` of the entries,
``UNLINK`` of the hashes and strings), read a page at a time so that memory
stays bounded whatever the size of the stream.
"""

from __future__ import annotations

import json

from typing import TYPE_CHECKING, Iterator

from ..core.errors import ConfigError
from .keyops import BATCH, unlink_keys
from .state import KeyFamily, RedisState

if TYPE_CHECKING:
    from .backend import RedisBackend


def subject_families(declared: RedisState, subject: str) -> list[KeyFamily]:
    """The PII families whose data subject is ``subject``; ConfigError when there is none."""
    families = [f for f in declared.families.values() if f.pii and f.subject == subject]
    if not families:
        known = sorted({f.subject for f in declared.families.values() if f.pii and f.subject})
        raise ConfigError(f"No declared key family holds personal data of {subject!r}; "
                          f"subjects are: {', '.join(known) or 'none'}.")
    return families


def erase_subject(backend: "RedisBackend", declared: RedisState, subject: str, value: str, *,
                  dry_run: bool = False) -> list[bytes]:
    """Delete (or only list, with ``dry_run``) the subject's keys; returns them.

    Families naming the subject in a field are :func:`erase_field_entries`' work."""
    found: list[bytes] = []
    for family in subject_families(declared, subject):
        if by_field(family, subject):
            continue
        if not family.parsed.accepts(subject, value):
            raise ConfigError(f"{value!r} cannot be a value of {{{subject}}} (empty, or has ':', '{{' or '}}').")
        for client, keys in backend.family_batches(family.parsed, values={subject: value}):
            found.extend(keys)
            if not dry_run:
                unlink_keys(client, keys)
    return found


def by_field(family: KeyFamily, subject: str) -> bool:
    """Whether the family names ``subject`` in a field of its values, not in its keys."""
    return family.subject_field is not None and subject not in family.parsed.placeholders


def erase_field_entries(backend: "RedisBackend", family: KeyFamily, value: str, *, dry_run: bool = False) -> int:
    """Delete (or only count) the entries, hashes or JSON strings of ``family`` whose subject field is ``value``."""
    field, wanted = family.subject_field.encode(), value.encode()
    found = 0
    for client, keys in backend.family_batches(family.parsed, BATCH):
        for key in keys:
            if family.type == "stream":
                found += _erase_stream_entries(client, key, field, wanted, dry_run)
            elif _names_subject(client, family.type, key, field, wanted):
                found += 1 if dry_run else unlink_keys(client, [key])
    return found


def _erase_stream_entries(client, key: bytes, field: bytes, wanted: bytes, dry_run: bool) -> int:
    found = 0
    for page in stream_pages(client, key):
        ids = [entry_id for entry_id, fields in page if fields.get(field) == wanted]
        if ids and not dry_run:
            client.xdel(key, *ids)
        found += len(ids)
    return found


def stream_pages(client, key: bytes, count: int = BATCH) -> Iterator[list[tuple[bytes, dict]]]:
    """The entries of stream ``key`` a page of XRANGE at a time (deleting from a page does not skip any)."""
    start = b"-"
    while True:
        page = client.xrange(key, min=start, max=b"+", count=count)
        if page:
            yield page
        if len(page) < count:
            return
        start = b"(" + page[-1][0]


def _names_subject(client, kind: str, key: bytes, field: bytes, wanted: bytes) -> bool:
    if kind == "hash":
        return client.hget(key, field) == wanted
    try:
        document = json.loads(client.get(key) or b"null")
    except (ValueError, UnicodeDecodeError):
        return False
    return isinstance(document, dict) and str(document.get(field.decode())) == wanted.decode()
