"""Erasure of one data subject's keys (GDPR "right to erasure", architecture Appendix G.1).

Every family that holds personal data names the placeholder of its data
subject; erasing ``user_id 42`` deletes ``session:42`` and every other key of
a PII family whose subject placeholder is ``user_id`` and equals ``42``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..core.errors import ConfigError
from .keyops import unlink_keys
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
    """Delete (or only list, with ``dry_run``) the subject's keys; returns them."""
    found: list[bytes] = []
    for family in subject_families(declared, subject):
        if not family.parsed.accepts(subject, value):
            raise ConfigError(f"{value!r} cannot be a value of {{{subject}}} (empty, or has ':', '{{' or '}}').")
        for client, keys in backend.family_batches(family.parsed, values={subject: value}):
            found.extend(keys)
            if not dry_run:
                unlink_keys(client, keys)
    return found
