"""Failover in the middle of a migration: the standby is promoted while migrate runs on the primary;
the rerun against the new primary converges and check is clean."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from sovren_db import services
from sovren_db.core.urls import with_database
from sovren_db.seeds.snapshots import create_database
from tests.integration.conftest import add_revision, copy_project

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
SOVREN_DB = str(Path(sys.executable).with_name("sovren-db"))


@pytest.fixture
def pair(tmp_path):
    primary = services.start_postgres(tmp_path / "primary")
    replica = services.start_replica(tmp_path / "replica", primary)
    yield primary, replica
    services.stop(replica)
    services.stop(primary)


def version_on(url: str) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except psycopg.Error:
        return None
    return row[0] if row else None


def test_promoting_the_replica_mid_migration_then_rerunning_converges(pair, tmp_path, repo_root):
    primary, replica = pair
    name = f"t_{uuid.uuid4().hex[:12]}"
    create_database(with_database(primary.url, "postgres"), name)
    root = copy_project(repo_root, tmp_path / "project")
    for number in range(1, 7):  # each revision a table and a pause, so the promotion lands mid-chain
        # (a sequence: autogenerate compares none, so check judges only the project's own declarations)
        add_revision(root, f"f{number:02d}", f"    op.execute('CREATE SEQUENCE f{number:02d}')\n"
                                             "    op.execute('SELECT pg_sleep(0.5)')")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "MONGO_URL", "REDIS_URL", "SOVREN_ENV")}
    env.update(SOVREN_DB_STORES="postgres", SOVREN_LOCK_LEASE="2",
               POSTGRES_URL=with_database(primary.url, name))
    first = subprocess.Popen([SOVREN_DB, "migrate"], cwd=root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    replica_url = with_database(replica.url, name)
    deadline = time.monotonic() + 60
    while not (version_on(replica_url) or "").startswith("f"):  # the standby replayed one of ours
        assert time.monotonic() < deadline and first.poll() is None, first.communicate()
        time.sleep(0.05)
    services.promote(replica)
    services.stop(primary)  # the old primary goes away, as in a failover
    first.communicate(timeout=60)
    seen = version_on(replica_url)
    assert seen not in (None, "f06"), "the promotion did not land in the middle of the chain"

    env["POSTGRES_URL"] = replica_url
    rerun = subprocess.run([SOVREN_DB, "migrate"], cwd=root, env=env, capture_output=True, text=True, timeout=90)
    assert rerun.returncode == 0, rerun.stderr
    assert version_on(replica_url) == "f06"
    with psycopg.connect(replica_url) as conn:  # each revision's work is there exactly once
        assert conn.execute("SELECT count(*) FROM pg_sequences WHERE sequencename LIKE 'f0_'").fetchone() == (6,)
    checked = subprocess.run([SOVREN_DB, "check"], cwd=root, env=env, capture_output=True, text=True, timeout=90)
    assert checked.returncode == 0, checked.stdout + checked.stderr
