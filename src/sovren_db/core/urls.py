"""Connection URLs: parsing checks, and the redaction of :mod:`.redaction` under its usual name."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from .errors import ConfigError
from .redaction import MASK, redact, redact_text, remember, secrets_in  # noqa: F401 (this module's API)


def check_url(url: str, schemes: tuple[str, ...], what: str) -> str:
    """Return ``url`` if it parses with one of ``schemes``; else raise ConfigError (the URL redacted,
    and never a driver's message, which may quote a piece of the password)."""
    if url.startswith("redis+sentinel://") and "redis" in schemes:  # several hosts: its own parser
        from ..redis.sentinel import parse

        parse(url, what)
        return url
    shown = redact(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ConfigError(f"{what} {shown!r} is not a valid URL.") from None
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in schemes:
        raise ConfigError(f"{what} {shown!r} must start with {' or '.join(s + '://' for s in schemes)}.")
    if "@" in parts.netloc.rpartition("@")[0] or "@" in parts.path:
        raise ConfigError(f"{what} {shown!r} has a raw '@' or '/' in its user name or password: "
                          "percent-encode them ('@' as %40, '/' as %2F).")
    try:
        parts.port
    except ValueError:
        raise ConfigError(f"{what} {shown!r} is not a valid URL: its port is not a number from 0 to 65535 "
                          "(a raw '?' or '#' in a password must be percent-encoded too).") from None
    if not parts.hostname and not parts.path and scheme != "redis+unix":
        raise ConfigError(f"{what} {shown!r} names no host.")
    return url


def with_database(url: str, database: str) -> str:
    """Return ``url`` pointing at another database (path component)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))
