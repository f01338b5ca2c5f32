"""Connection URLs: parsing checks and password redaction.

Every URL that reaches a message, a log line or a report goes through
``redact`` first: passwords are never printed.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:@/]*):(?P<pw>[^@/]*)@")


def redact(url: str | None) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    if not url:
        return ""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(url))


def redact_text(text: str, *urls: str | None) -> str:
    """Remove the passwords of ``urls`` (and any URL-shaped userinfo) from ``text``."""
    for url in urls:
        if not url:
            continue
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            text = text.replace(password, "***")
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)


def check_url(url: str, schemes: tuple[str, ...], what: str) -> str:
    """Return ``url`` if it parses with one of ``schemes``; else raise ConfigError."""
    from .errors import ConfigError

    if url.startswith("redis+sentinel://") and "redis" in schemes:  # several hosts: its own parser
        from ..redis.sentinel import parse

        parse(url, what)
        return url
    try:
        parts = urlsplit(url)
        port = parts.port  # raises ValueError on a malformed port
    except ValueError as exc:
        raise ConfigError(f"{what} {redact(url)!r} is not a valid URL ({exc}).") from None
    scheme = parts.scheme.split("+", 1)[0]
    if scheme not in schemes:
        raise ConfigError(
            f"{what} {redact(url)!r} must start with {' or '.join(s + '://' for s in schemes)}."
        )
    if not parts.hostname and not parts.path and scheme != "redis+unix":
        raise ConfigError(f"{what} {redact(url)!r} names no host.")
    del port
    return url


def with_database(url: str, database: str) -> str:
    """Return ``url`` pointing at another database (path component)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))
