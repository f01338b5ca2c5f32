"""``audit verify``: the hash chain walked in one stream; the first broken link is named."""

from __future__ import annotations

import hashlib
import json

import psycopg
import pytest
from click.testing import CliRunner

from sovren_db import commands
from sovren_db.cli.main import cli
from sovren_db.compliance.audit_format import CHAINS, first_id
from sovren_db.compliance.audit_verify import ChainReport, unescape_copy, walk
from sovren_db.core.config import load_settings


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# -- pure: the walk over COPY text lines ------------------------------------------

def chain(count: int, version: int = 1, ids=None) -> list[list[bytes]]:
    """Rows as the COPY of audit verify sends them: [event_id, created_at, prev_hash, hash, payload, columns
    match], in event format 1 or 2 (compliance/audit_format.py)."""
    rows, prev = [], None
    for i in ids or range(1, count + 1):
        fields = {"v": 2} if version == 2 else {}
        payload = json.dumps({**fields, "at": f"t{i}", "prev_hash": (prev or b"").decode()}).encode()
        digest = hashlib.sha256(payload + str(i).encode()).hexdigest().encode()
        rows.append([str(i).encode(), f"2026-11-0{i % 10} 10:00:00+00".encode(), prev, digest, payload, b"t"])
        prev = digest
    return rows


def lines(rows: list[list[bytes]]) -> list[bytes]:
    def field(value: bytes | None) -> bytes:
        if value is None:
            return b"\\N"
        return value.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\n", b"\\n")
    return [b"\t".join(field(v) for v in row) + b"\n" for row in rows]


def rehash(row: list[bytes]) -> None:
    row[3] = hashlib.sha256(row[4] + row[0]).hexdigest().encode()


def test_an_intact_chain_passes_and_reports_its_head():
    rows = chain(5)
    report = walk(lines(rows), ChainReport())
    assert report.broken is None and report.rows == 5
    assert (report.first_event, report.last_event, report.head_hash) == (1, 5, rows[-1][3].decode())


def test_an_altered_payload_breaks_its_own_hash():
    rows = chain(5)
    rows[2][4] = rows[2][4].replace(b"t3", b"t9")
    report = walk(lines(rows), ChainReport())
    assert report.broken.event_id == 3 and "altered" in report.broken.problem
    assert report.broken.created_at == "2026-11-03 10:00:00+00"
    assert (report.last_event, report.break_count) == (5, 1)   # the walk goes on: the one altered row only


def test_a_deleted_row_breaks_the_next_link():
    rows = chain(5)
    del rows[1]
    report = walk(lines(rows), ChainReport())
    assert report.broken.event_id == 3 and "previous row's hash" in report.broken.problem


def test_a_missing_beginning_is_named():
    report = walk(lines(chain(4)[2:]), ChainReport())
    assert report.broken.event_id == 3 and "rows before it are missing" in report.broken.problem


def test_a_column_that_differs_from_its_payload_is_caught_even_with_the_hash_intact():
    rows = chain(4)
    rows[2][5] = b"f"   # the server found a column (or the embedded prev_hash) unlike the payload's
    report = walk(lines(rows), ChainReport())
    assert report.broken.event_id == 3 and "differs from its value in event_payload" in report.broken.problem


def test_missing_format_2_events_are_named_as_a_gap_even_when_the_links_were_recomputed():
    rows = chain(0, version=2, ids=[1, 2, 3, 7, 8])   # 4 to 6 gone, the chain re-linked over the hole
    report = walk(lines(rows), ChainReport())
    assert report.broken.event_id == 7 and report.broken.problem.startswith("gap: events 4 to 6 (3) are missing")


def test_a_dropped_partition_shows_as_a_gap_at_the_next_event():
    rows = chain(8, version=2)
    del rows[2:6]   # events 3 to 6, as a dropped month would take them
    report = walk(lines(rows), ChainReport())
    assert report.broken.event_id == 7 and "gap: events 3 to 6" in report.broken.problem


def test_format_1_ids_may_skip_numbers():
    rows = chain(0, version=1, ids=[1, 2, 5])   # the identity sequence of format 1 skips rolled-back ids
    assert walk(lines(rows), ChainReport()).broken is None


def test_the_anchor_event_is_remembered_with_its_position():
    rows = chain(6, version=2)
    report = walk(lines(rows), ChainReport(anchor=4))
    assert (report.anchor_hash, report.anchor_rows) == (rows[3][3].decode(), 4)


def test_escaped_payloads_are_hashed_as_stored():
    rows = chain(2)
    payload = {"prev_hash": rows[0][3].decode(), "note": "tab\there \\ and\nnewline"}
    rows[1][4] = json.dumps(payload).encode()
    rehash(rows[1])
    assert b"\t" in lines(rows)[1] and b"\\" in lines(rows)[1]
    report = walk(lines(rows), ChainReport())
    assert report.broken is None and report.rows == 2


def split(trunk: int, per_chain: dict[int, int]) -> list[list[bytes]]:
    """A trunk of ``trunk`` format-2 events, then format-3 events on the given chains (k -> count), as the
    fork of revision 7c3e9a41f0b2 numbers them, in event id order."""
    rows = chain(trunk, version=2)
    fork_hash = rows[-1][3] if rows else None
    for k, count in per_chain.items():
        prev, number = fork_hash, first_id(trunk, k)
        for _ in range(count):
            payload = json.dumps({"v": 3, "at": f"t{number}", "actor": "a", "chain": k,
                                  "prev_hash": (prev or b"").decode()}).encode()
            digest = hashlib.sha256(payload + str(number).encode()).hexdigest().encode()
            rows.append([str(number).encode(), b"2026-11-01 10:00:00+00", prev, digest, payload, b"t"])
            prev, number = digest, number + CHAINS
    return sorted(rows, key=lambda row: int(row[0]))


def ids(rows) -> list[int]:
    return [int(row[0]) for row in rows]


def test_split_chains_verify_together_and_report_each_head():
    rows = split(5, {1: 3, 2: 2, 6: 4})
    report = walk(lines(rows), ChainReport())
    assert report.broken is None and report.rows == 14
    assert {k: (c.events, c.first_event) for k, c in report.chains.items()} == \
        {0: (5, 1), 1: (3, 9), 2: (2, 10), 6: (4, 6)}


def test_a_deleted_first_event_of_a_chain_is_a_gap_in_that_chain():
    rows = [row for row in split(5, {1: 3, 2: 2}) if int(row[0]) != 9]   # chain 1's first event
    report = walk(lines(rows), ChainReport())
    assert report.broken.event_id == 17 and report.broken.chain == 1
    assert report.broken.problem == "chain 1: gap: event 9 is missing (deleted, or in a dropped or truncated partition)"
    assert report.break_count == 1 and report.chains[2].breaks == 0


def test_a_deleted_middle_event_and_a_rewritten_row_are_each_reported_on_their_chain():
    rows = split(3, {4: 4, 5: 4})
    rows = [row for row in rows if int(row[0]) != first_id(3, 4) + CHAINS]
    altered = next(row for row in rows if int(row[0]) == first_id(3, 5) + CHAINS)
    altered[4] = altered[4].replace(b'"actor": "a"', b'"actor": "b"')
    report = walk(lines(rows), ChainReport())
    assert [(b.chain, b.event_id) for b in report.breaks] == [(5, 13), (4, 20)]
    assert "altered" in report.breaks[0].problem and "gap: event 12 is missing" in report.breaks[1].problem


def test_a_forged_event_relinked_into_a_chain_is_found_by_its_id():
    rows = split(2, {3: 3})
    forged = split(2, {3: 4})[-1]        # a fourth event, well formed, hashed and linked...
    forged[0] = str(int(forged[0]) + 1).encode()   # ...under an id outside its chain's residue
    forged[3] = hashlib.sha256(forged[4] + forged[0]).hexdigest().encode()
    report = walk(lines(rows + [forged]), ChainReport())
    assert report.broken.chain == 3 and "not the next id of its chain" in report.broken.problem


def test_a_chain_number_out_of_range_is_forged():
    rows = split(1, {2: 1})
    rows[-1][4] = rows[-1][4].replace(b'"chain": 2', b'"chain": 9')
    rows[-1][3] = hashlib.sha256(rows[-1][4] + rows[-1][0]).hexdigest().encode()
    assert "names chain 9" in walk(lines(rows), ChainReport()).broken.problem


def test_a_merged_chain_continues_the_trunk_after_a_downgrade():
    rows = split(2, {5: 3})
    last = rows[-1]
    payload = json.dumps({"v": 2, "at": "t", "prev_hash": last[3].decode()}).encode()
    number = str(int(last[0]) + 1).encode()
    rows.append([number, b"2026-11-02 10:00:00+00", last[3], hashlib.sha256(payload + number).hexdigest().encode(),
                 payload, b"t"])
    report = walk(lines(rows), ChainReport())
    assert report.broken is None and report.chains[0].events == 6


def test_copy_text_unescaping():
    assert unescape_copy(b"a\\tb\\\\n\\nc\\\\") == b"a\tb\\n\nc\\"


# -- on a real server ------------------------------------------------------------------

pytest_postgres = pytest.mark.postgres


@pytest_postgres
def test_an_empty_log_is_intact(project):
    commands.migrate(load_settings(project))
    result = run("audit", "verify", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rows"] == 0


@pytest_postgres
def test_a_seeded_chain_verifies_and_a_tampered_row_is_found(migrated):
    with psycopg.connect(migrated.pg_url) as conn:
        total, tampered, at = conn.execute(
            "SELECT count(*), (array_agg(event_id ORDER BY event_id))[count(*) / 2], "
            "(array_agg(created_at ORDER BY event_id))[count(*) / 2] FROM audit_log").fetchone()
    intact = run("audit", "verify")
    assert intact.exit_code == 0, intact.output
    assert f"{total:,} events" in intact.output
    with psycopg.connect(migrated.pg_url, autocommit=True) as conn:  # as superuser, triggers off
        conn.execute("SET session_replication_role = replica")
        # payload and column together: audit_log_columns_match refuses one without the other
        conn.execute("""UPDATE audit_log SET action = 'DELETE',
                        event_payload = replace(event_payload, '"action": "INSERT"', '"action": "DELETE"')
                        WHERE event_id = %s""", (tampered,))
    broken = run("audit", "verify", "--format", "json")
    assert broken.exit_code == 1
    report = json.loads(broken.output)
    assert report["first_break"]["event_id"] == tampered and report["intact"] is False
    assert report["first_break"]["created_at"].startswith(at.strftime("%Y-%m-%d %H:%M:%S"))
    text = run("audit", "verify")
    assert text.exit_code == 1 and f"audit_log event {tampered}" in text.output


@pytest_postgres
def test_a_deleted_audit_row_is_found_at_the_next_event(migrated):
    with psycopg.connect(migrated.pg_url, autocommit=True) as conn:
        gone, following = conn.execute("SELECT event_id, lead(event_id) OVER (ORDER BY event_id) FROM audit_log "
                                       "ORDER BY event_id OFFSET 10 LIMIT 1").fetchone()
        conn.execute("SET session_replication_role = replica")
        conn.execute("DELETE FROM audit_log WHERE event_id = %s", (gone,))
    result = run("audit", "verify", "--format", "github")
    assert result.exit_code == 1
    assert result.output.startswith(f"::error title=postgres audit-chain::audit_log event {following}:")
