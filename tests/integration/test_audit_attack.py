"""Attacks on the audit trail's newest code (issue 13): the sorted index entries of a big commit
(pgext/sovren_audit: keep_back_indexes, write_kept_back), the commit's payload head and hash context,
the heads' column numbers kept per relcache version (know_heads), and the guard that covers partitions
made by hand (revision f3b9d2a7c5e1).

Each test is an attack a careless or hostile user could make on a real server; those that found a fault
fail without its fix, the others guard a real risk. Most run on both capture paths (the Makefile's
AUDIT_TESTS; SOVREN_DB_AUDIT_CAPTURE=plpgsql for the fallback).
"""

from __future__ import annotations

import threading
import uuid

import psycopg
import pytest

from sovren_db import commands
from sovren_db.compliance.audit_format import CHAINS
from sovren_db.core.config import load_settings
from sovren_db.postgres import audit_capture
from tests.integration.test_audit_native import add_user, chain_ok, copy_users, indexes_whole

pytestmark = pytest.mark.postgres


@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return pg_url


def events(conn) -> int:
    return conn.execute("SELECT count(*) FROM audit_log").fetchone()[0]


def native(url: str) -> bool:
    with psycopg.connect(url) as conn:
        return audit_capture.native_installed(conn)


# ---- the heads' column numbers, kept per relcache version (know_heads) ----

def shadow_trail(conn) -> None:
    """A second audit trail in schema shadow, on the C capture: its audit_chain_head has the columns of
    public's at other numbers (a spare bigint where public keeps next_id), its audit_log is a plain table."""
    library = conn.execute("SELECT probin FROM pg_proc WHERE oid = 'public.sovren_audit_stage()'::regprocedure"
                           ).fetchone()[0]
    cols = dict(conn.execute("SELECT attname, attnum FROM pg_attribute WHERE attrelid = 'public.audit_chain_head'::regclass "
                             "AND attnum > 0 AND NOT attisdropped").fetchall())
    width = conn.execute("SELECT max(attnum) FROM pg_attribute WHERE attrelid = 'public.audit_chain_head'::regclass"
                         ).fetchone()[0]
    by_number = {cols["chain"]: "chain bigint PRIMARY KEY", cols["hash"]: "hash text",
                 cols["next_id"]: "spare bigint NOT NULL DEFAULT 1000000"}
    columns = [by_number.get(n, f"pad{n} int") for n in range(1, width + 1)] + ["next_id bigint NOT NULL"]
    conn.execute("CREATE SCHEMA shadow")
    conn.execute(f"CREATE TABLE shadow.audit_chain_head ({', '.join(columns)})")
    for n in range(1, width + 1):
        if n not in by_number:
            conn.execute(f"ALTER TABLE shadow.audit_chain_head DROP COLUMN pad{n}")
    conn.execute("INSERT INTO shadow.audit_chain_head (chain, next_id) SELECT k, k FROM generate_series(1, %s) k",
                 (CHAINS,))
    conn.execute("CREATE TABLE shadow.audit_log (event_id bigint PRIMARY KEY, created_at timestamptz, table_name text, "
                 "action text, user_id uuid, actor text, accessed_at timestamptz, query text, event_payload text, "
                 "prev_hash text, hash text)")
    conn.execute(f"CREATE FUNCTION shadow.sovren_audit_stage() RETURNS trigger LANGUAGE c AS '{library}', "
                 "'sovren_audit_stage'")
    conn.execute("CREATE FUNCTION shadow.sovren_audit_shape(text) RETURNS text LANGUAGE sql IMMUTABLE "
                 "AS 'SELECT $1'")
    conn.execute("CREATE TABLE shadow.notes (note_id int PRIMARY KEY, body text)")
    conn.execute("CREATE TRIGGER notes_audit AFTER INSERT ON shadow.notes REFERENCING NEW TABLE AS new_rows "
                 "FOR EACH STATEMENT EXECUTE FUNCTION shadow.sovren_audit_stage()")


def test_a_backend_follows_the_heads_of_another_schemas_trail(migrated):
    """know_heads kept audit_chain_head's column numbers until that relation's relcache entry was
    invalidated, but a commit to the trail of another schema looks up another audit_chain_head: the
    backend read shadow's head with public's numbers (next_id taken from shadow's spare column). Fault
    found in da5bb03; fixed: the kept numbers and CHECKs are forgotten when the heads' relation changes."""
    if not native(migrated):
        pytest.skip("the plpgsql path keeps no column numbers of audit_chain_head (nothing to follow)")
    with psycopg.connect(migrated, autocommit=True) as conn:
        shadow_trail(conn)
    with psycopg.connect(migrated) as conn:
        add_user(conn, "public-first")
        conn.commit()                                   # public's heads known in this backend
        conn.execute("INSERT INTO shadow.notes VALUES (1, 'shadow')")
        conn.commit()
        ids = [row[0] for row in conn.execute("SELECT event_id FROM shadow.audit_log")]
        heads = conn.execute("SELECT chain, next_id, spare FROM shadow.audit_chain_head WHERE next_id <> chain"
                             ).fetchall()
        assert len(ids) == 1 and 1 <= ids[0] <= CHAINS, ids          # the chain's first id, not the spare's
        assert heads == [(ids[0], ids[0] + CHAINS, 1_000_000)]
        add_user(conn, "public-again")
        conn.commit()
    chain_ok(migrated, 2)
