"""The seed's COPY writer (postgres_load.BoundedWriter) against a real Postgres: complete, bounded, failing fast."""

from __future__ import annotations

import psycopg
import pytest

from sovren_db.seeds import postgres_load
from sovren_db.seeds.postgres_load import BoundedWriter

pytestmark = pytest.mark.postgres


def rows(start: int, count: int) -> bytes:
    return "".join(f"{i}\tpayload {i:09d} {'x' * 40}\n" for i in range(start, start + count)).encode()


def test_blocks_arrive_whole_and_in_order_with_no_more_than_the_bound_waiting(pg_url, monkeypatch):
    waiting: list[int] = []
    put = postgres_load.Queue.put

    def watched(queue, item, *args, **kwargs):
        waiting.append(queue.qsize())
        return put(queue, item, *args, **kwargs)

    monkeypatch.setattr(postgres_load.Queue, "put", watched)
    with psycopg.connect(pg_url) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE t (n int PRIMARY KEY, body text)")
        with cursor.copy("COPY t FROM STDIN", writer=BoundedWriter(cursor)) as copy:
            for block in range(20):                      # 20 blocks of 20,000 rows, about 1.4 MB each
                copy.write(rows(block * 20_000, 20_000))
        assert cursor.execute("SELECT count(*), min(n), max(n), count(DISTINCT n) FROM t").fetchone() == (
            400_000, 0, 399_999, 400_000)
    assert len(waiting) > postgres_load.QUEUED_CHUNKS and max(waiting) <= postgres_load.QUEUED_CHUNKS


def test_a_row_the_server_refuses_mid_stream_raises_instead_of_hanging(pg_url):
    with psycopg.connect(pg_url) as conn, conn.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE t (n int PRIMARY KEY, body text)")
        with pytest.raises(psycopg.errors.UniqueViolation):
            with cursor.copy("COPY t FROM STDIN", writer=BoundedWriter(cursor)) as copy:
                for block in range(40):
                    copy.write(rows(0 if block == 3 else block * 20_000, 20_000))   # block 3 repeats block 0
