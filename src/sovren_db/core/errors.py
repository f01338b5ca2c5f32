"""Typed errors. Each carries its context and reads as one full sentence.

The CLI turns any ``SovrenError`` into that sentence on stderr and exit code 2
(no traceback unless ``--debug``).
"""

from __future__ import annotations

from .redaction import redact, redact_text


class SovrenError(Exception):
    """Base of every error the CLI reports as one sentence with exit code 2."""

    exit_code = 2
    store: str | None = None    # the store at fault, where one is
    file: str | None = None     # the file at fault, where one is
    line: int | None = None

    def __init__(self, message: str):
        message = redact_text(message)  # no error message, whoever built it, carries a password
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict:
        """What ``--format json`` prints under ``error``."""
        return {"kind": type(self).__name__, "message": self.message, "store": self.store, "file": self.file,
                "line": self.line}


class ConfigError(SovrenError):
    """Missing or malformed configuration."""


class DeclarationError(SovrenError):
    """A declaration file is malformed. Names the file and where in it."""

    def __init__(self, path: object, where: str | None, problem: str):
        self.path = self.file = str(path)
        self.where = where
        self.problem = problem
        self.store = _store_of(self.path)
        location = f"{self.path} at {where}" if where else self.path
        super().__init__(f"{location}: {problem}" + ("" if problem.rstrip().endswith((".", "?", "!", ")")) else "."))


def _store_of(path: str) -> str | None:
    """The store a declaration file belongs to, from the folder it is in (``postgres/``, ``mongo/``, ``redis/``)."""
    parts = path.replace("\\", "/").split("/")
    return next((part for part in reversed(parts) if part in ("postgres", "mongo", "redis")), None)


def first_line(error: object, default: str | None = None) -> str:
    """The first line of an exception's (or a text's) message, for one-sentence errors; when it is
    empty, ``default``, or else the exception's type name."""
    text = str(error).strip()
    if text:
        return text.splitlines()[0]
    if default is not None:
        return default
    return type(error).__name__ if isinstance(error, BaseException) else ""


class StoreUnavailable(SovrenError):
    """A configured server could not be reached or refused us."""

    def __init__(self, store: str, url: str | None, reason: str):
        self.store = store
        self.url = redact(url)
        reason = redact_text(first_line(reason, ""), url)
        where = f" at {self.url}" if self.url else ""
        end = "" if reason.endswith((".", "?", "!")) else "."
        super().__init__(f"{store} server{where} is not usable: {reason}{end}")


class RevisionError(SovrenError):
    """An unknown, ambiguous or otherwise unusable revision."""


class MigrationFailed(SovrenError):
    """A step of a revision failed; its transaction was rolled back."""


class Refused(SovrenError):
    """An operation was refused on purpose (protected environment, unsafe change)."""
