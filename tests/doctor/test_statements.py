"""Statement text scrubbed of every literal before it is shown or exported (pure)."""

from sovren_db.doctor.model import percentile
from sovren_db.doctor.statements import MAX_TEXT, fingerprint, scrub


def test_literals_of_every_kind_become_placeholders():
    query = ("ALTER ROLE app PASSWORD 'hunter2''s'; SELECT * FROM t1 WHERE email = E'a@b.c' AND n > 42.5e3 "
             "AND body = $body$secret$body$ AND id = $1 AND x IN (7,8)")
    text = scrub(query)
    for secret in ("hunter2", "a@b.c", "42.5", "secret", "7,8"):
        assert secret not in text
    assert "t1" in text and "$1" in text and "PASSWORD ?" in text and "IN (?,?)" in text


def test_whitespace_collapsed_and_length_bounded():
    assert scrub("SELECT\n   1") == "SELECT ?"
    assert len(scrub("SELECT " + "col, " * 200)) == MAX_TEXT


def test_fingerprints_are_stable_hex_even_for_negative_queryids():
    assert fingerprint(-1) == "ffffffffffffffff" and fingerprint(255) == "00000000000000ff"


def test_nearest_rank_percentiles():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.5) == 50 and percentile(values, 0.99) == 99 and percentile([], 0.99) == 0
