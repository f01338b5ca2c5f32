"""The CLI's standard streams with every password removed (``urls.redact_text``)."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Any, Iterator, TextIO

from .urls import redact_text


class RedactingStream:
    """A text stream that removes every password (``redact_text``) from what is written to it.

    The CLI writes through it for the whole command, so text, JSON, GitHub annotations, rich tables
    and error sentences are all cleaned by the one rule, whichever module printed them."""

    def __init__(self, stream: TextIO):
        self.unredacted = stream

    def write(self, text: Any) -> int:
        return self.unredacted.write(redact_text(text) if isinstance(text, str) else text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unredacted, name)


@contextmanager
def redacted_output() -> Iterator[None]:
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def echo_secret(line: str) -> None:
    """Print ``line`` as it is, password included: only ``sovren-db env`` does, by design."""
    stream = getattr(sys.stdout, "unredacted", sys.stdout)
    stream.write(line + "\n")
    stream.flush()
