"""Password redaction for every URL and DSN form (below ``errors`` and ``urls``, which both use it).

Every URL that reaches a message, a log line or a report goes through
``redact`` or ``redact_text`` first: passwords are never printed. One set of
rules covers every form the three stores accept:

- userinfo: ``postgresql://u:PW@h/db``, ``redis://:PW@h``, ``rediss://``,
  ``redis+sentinel://:PW@h1,h2/master``, ``mongodb+srv://u:PW@h``, including
  a raw ``@``, ``/``, ``:`` or ``?`` inside the password (the password runs to
  the last ``@`` before a space or quote: over-redacting a host is better
  than printing half a password);
- query parameters: ``?password=PW``, ``&sslpassword=PW``,
  ``sentinel_password=``, ``tlsCertificateKeyFilePassword=``,
  ``authMechanismProperties=AWS_SESSION_TOKEN:PW``;
- libpq key=value DSNs: ``host=h password=PW``, ``password='P W'``;
- and, literally, every secret of every URL the configuration loaded
  (``remember``), in its raw, percent-decoded and JSON-escaped forms, so a
  password a server or driver echoes inside its own message is removed too.

No library does this: SQLAlchemy's ``URL.render_as_string(hide_password=True)``
parses one URL of one dialect and fails on the malformed URLs whose errors
most need redacting; libpq's and redis-py's parsers do not redact at all.
"""

from __future__ import annotations

import json
import re
from urllib.parse import unquote

MASK = "***"
# Secrets shorter than this are masked by the URL and DSN rules only, not wherever their letters occur
# in a text: a password "test" replaced literally would turn every "tests/" in a message into "***s/".
LITERAL_MIN = 5
_SECRET_KEY = (r"(?:ssl|sentinel_|tlsCertificateKeyFile|proxy)?pass(?:word)?|passwd|pwd|secret"
               r"|(?:access_|auth_|api_)?token|api_?key")
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:@/\s'\"]*):(?P<pw>[^\s'\"]*)@")
_PARAM = re.compile(rf"(?P<key>[?&;](?i:{_SECRET_KEY})=)(?P<pw>[^&#\s'\"]*)")
_AWS_TOKEN = re.compile(r"(?P<key>AWS_SESSION_TOKEN(?::|%3A))(?P<pw>[^,&\s'\"]*)", re.IGNORECASE)
_DSN = re.compile(rf"(?<![?&;\w])(?P<key>(?i:{_SECRET_KEY})\s*=\s*)"
                  r"(?P<pw>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\s'\"]+)")
_RULES = (_USERINFO, _PARAM, _AWS_TOKEN, _DSN)

_remembered: set[str] = set()


def _masked(match: re.Match) -> str:
    if match.re is _USERINFO:
        return f"{match['scheme']}{match['user']}:{MASK}@"
    return f"{match['key']}{MASK}"


def _mask_patterns(text: str) -> str:
    for rule in _RULES:
        text = rule.sub(_masked, text)
    return text


def _split_userinfo(url: str) -> tuple[str, str, str] | None:
    """(everything up to the password, the password, '@' and the rest) of one whole URL, taking the
    password to run to the URL's last '@': a raw space, quote or '@' in it is still all of it."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hosts = rest.rpartition("@")
    user, colon, password = userinfo.partition(":")
    if not (sep and at and colon and password):
        return None
    return f"{scheme}://{user}:", password, f"@{hosts}"


def secrets_in(text: str | None) -> set[str]:
    """Every password-like value any rule finds in ``text``, with its decoded and JSON-escaped forms."""
    values = [match["pw"].strip("'\"") for rule in _RULES for match in rule.finditer(text or "")]
    split = _split_userinfo(text or "")
    if split and not any(c.isspace() for c in split[0]):
        values.append(split[1])
    found: set[str] = set()
    for value in values:
        if value and value != MASK:
            found |= {value, unquote(value), json.dumps(value)[1:-1], json.dumps(unquote(value))[1:-1]}
    return found


def remember(*urls: str | None) -> None:
    """Remove these URLs' secrets from everything ``redact_text`` cleans from now on (the configured URLs)."""
    for url in urls:
        _remembered.update(secrets_in(url))


def redact(url: str | None) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    if not url:
        return ""
    url = str(url)
    split = _split_userinfo(url)
    if split:
        url = f"{split[0]}{MASK}{split[2]}"
    return redact_text(url)


def redact_text(text: str, *urls: str | None) -> str:
    """Remove the passwords of ``urls``, of every remembered URL, and of any URL- or DSN-shaped
    secret from ``text``."""
    if not text:
        return text
    secrets = set(_remembered)
    for url in urls:
        secrets |= secrets_in(url)
    for secret in sorted((s for s in secrets if len(s) >= LITERAL_MIN), key=len, reverse=True):  # the longest first: a secret may contain another
        text = text.replace(secret, MASK)
    return _mask_patterns(text)
