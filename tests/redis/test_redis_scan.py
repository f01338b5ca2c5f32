"""Pure: the RESP pieces of the raw scanner."""

from __future__ import annotations

import pytest
import redis

from sovren_db.redis.scan import IncompleteReply, encode, parse_scan_reply


def scan_reply(cursor: bytes, keys: list[bytes]) -> bytes:
    return b"*2\r\n$%d\r\n%s\r\n*%d\r\n" % (len(cursor), cursor, len(keys)) + b"".join(
        b"$%d\r\n%s\r\n" % (len(k), k) for k in keys)


@pytest.mark.parametrize("keys", [
    [b"session:1", b"cache:analytics:ab"],
    [b"a\r\nb", b"", b"\r\n", b"$3\r\nabc", b"z"],       # keys that hold the protocol's own bytes
    [],
])
def test_scan_replies_parse_whole_and_never_early(keys):
    reply = scan_reply(b"1234", keys)
    assert parse_scan_reply(reply + b"+next\r\n") == (b"1234", keys, len(reply))
    for cut in range(len(reply)):
        with pytest.raises(IncompleteReply):
            parse_scan_reply(reply[:cut])


def test_an_error_reply_is_raised():
    with pytest.raises(redis.ResponseError, match="NOPERM"):
        parse_scan_reply(b"-NOPERM this user has no permissions to run the 'scan' command\r\n")


def test_encode():
    assert encode(b"TYPE", b"k") == b"*2\r\n$4\r\nTYPE\r\n$1\r\nk\r\n"
