"""check's verdicts kept across processes (.sovren/check-verdicts, postgres/table_forms.py VerdictFile).

Every check here runs in a new process (``sovren-db check`` as a one-shot
command, doctor or a CI job runs it), against real servers: a process reuses
what an earlier one found in step, drift made since is still found (the
answer equal to ``check --exact``), another database or another cluster never
borrows a verdict, and a damaged, cut, unwritable or contended file never
fails check.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from sovren_db import commands, services
from sovren_db.core.config import load_settings
from sovren_db.core.urls import with_database
from sovren_db.postgres import table_forms
from tests.integration.test_fast_check import SOVREN_TABLE_DRIFT
from tests.integration.test_postgres_chain import DRIFT

pytestmark = pytest.mark.postgres

# One check in a process of its own: its exit code, findings and what table_forms did (LAST).
CHILD = """
import json, sys
from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.postgres import table_forms
outcome = commands.check(load_settings(sys.argv[1]), exact=sys.argv[2] == "exact")
print(json.dumps({"exit": outcome.exit_code, "sentences": [f.sentence() for f in outcome.findings],
                  **table_forms.LAST}))
"""


def new_process(project: Path, url: str | None = None, *, exact: bool = False, **env: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(project), "exact" if exact else "fast"],
                          capture_output=True, text=True, timeout=300, cwd=project,
                          env={**os.environ, **({"POSTGRES_URL": url} if url else {}), **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def start(project: Path, url: str | None = None, *, exact: bool = False) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(project), "exact" if exact else "fast"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=project,
                            env={**os.environ, **({"POSTGRES_URL": url} if url else {})})


def verdicts(project: Path) -> Path:
    return project / ".sovren" / table_forms.FILE_NAME


def run(url: str, *statements: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@pytest.fixture
def migrated(project, pg_url):
    commands.migrate(load_settings(project))
    return project


def test_a_new_process_reuses_what_an_earlier_one_found_in_step(migrated, pg_url):
    first = new_process(migrated)
    assert first["exit"] == 0 and first["from_file"] == 0 and first["compared"] >= 5, first
    path = verdicts(migrated)
    assert path.stat().st_mode & 0o777 == 0o600
    lines = path.read_text().splitlines()
    assert len(lines) == first["compared"] + 1
    assert all(re.fullmatch(r"[0-9a-f]{32}", line) for line in lines[1:])  # digests only: no table names
    second = new_process(migrated)
    assert second["exit"] == 0 and second["sentences"] == []
    assert second["compared"] == 0 and second["from_file"] == second["skipped"] == first["compared"], second


@pytest.mark.parametrize("case", [f"table: {c}" for c in sorted(SOVREN_TABLE_DRIFT)]
                         + ["extra index", "dropped policy", "disabled trigger"])
def test_drift_made_after_the_file_was_written_is_found_by_a_new_process(migrated, pg_url, case):
    statement = SOVREN_TABLE_DRIFT[case[7:]] if case.startswith("table: ") else DRIFT[case][0]
    assert new_process(migrated)["exit"] == 0
    run(pg_url, statement)
    found, wanted = new_process(migrated), new_process(migrated, exact=True)
    assert found["exit"] == wanted["exit"] == 1
    assert found["sentences"] == wanted["sentences"] and found["sentences"]
    assert found["from_file"] > 0  # the untouched tables still came from the file


def test_another_database_of_the_cluster_borrows_no_verdict(migrated, pg_url, postgres_server_url):
    """CREATE DATABASE copies its template's catalog files: same rows, same xmin and ctid; the oid keeps them apart."""
    assert new_process(migrated)["exit"] == 0
    copy = f"{pg_url.rsplit('/', 1)[1]}_copy"
    admin = with_database(postgres_server_url, "postgres")
    run(admin, f"CREATE DATABASE {copy} TEMPLATE {pg_url.rsplit('/', 1)[1]}")
    try:
        copied = with_database(postgres_server_url, copy)
        run(copied, SOVREN_TABLE_DRIFT["nullability"])
        other = new_process(migrated, copied)
        assert other["from_file"] == 0 and other["compared"] >= 5, other
        assert other["sentences"] == new_process(migrated, copied, exact=True)["sentences"] != []
        assert new_process(migrated)["from_file"] >= 5  # the first database's verdicts are still there
    finally:
        run(admin, f"DROP DATABASE {copy} WITH (FORCE)")


def _one(url: str, sql: str):
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()[0]


def _users_form(url: str) -> str | None:
    with psycopg.connect(url) as conn:
        sql = table_forms._LIVE_FORMS.replace("{lent}", table_forms._LENT_NAMES).replace(":schema", "NULL")
        return {r[0]: r[4] for r in conn.execute(sql)}["users"]


def test_two_clusters_migrated_alike_then_drifted_apart_borrow_no_verdict(project, tmp_path):
    """Two fresh clusters hand out the same transaction ids and row positions: the same steps give the same
    (xmin, ctid) to different rows. One stays in step, the other drifts in the same step; only the cluster's
    identity in the key keeps the second from reusing the first one's verdict."""
    servers = [services.start_postgres(tmp_path / f"cluster{i}") for i in (1, 2)]
    try:
        urls = [s.url for s in servers]
        for url in urls:
            commands.migrate(load_settings(project, environ={"POSTGRES_URL": url}))
        # the lease's heartbeats make the histories differ in length: the next transaction ids made equal
        nexts = [int(_one(url, "SELECT txid_current()")) for url in urls]
        behind = nexts.index(min(nexts))
        with psycopg.connect(urls[behind], autocommit=True) as conn:
            for _ in range(max(nexts) - min(nexts)):
                conn.execute("SELECT txid_current()")
        # the same catalog row rewritten in both, by the same transaction id: in step on the first (statistics
        # are not compared), drift on the second
        run(urls[0], "ALTER TABLE users ALTER COLUMN email SET STATISTICS 200")
        run(urls[1], "ALTER TABLE users ALTER COLUMN email DROP NOT NULL")
        first = new_process(project, urls[0])
        assert first["exit"] == 0 and first["compared"] >= 5
        second = new_process(project, urls[1])
        assert second["from_file"] == 0
        assert second["exit"] == 1 and any("users.email" in s for s in second["sentences"]), second
        assert second["sentences"] == new_process(project, urls[1], exact=True)["sentences"]
        forms = [_users_form(url) for url in urls]
        assert forms[0] == forms[1]  # the case is made: without the cluster in the key, the verdict would pass
    finally:
        for server in servers:
            services.stop(server)


def test_a_damaged_or_cut_file_is_not_an_error(migrated, pg_url):
    first = new_process(migrated)
    path = verdicts(migrated)
    whole = path.read_text()
    path.write_bytes(b"\x00\xffnot a verdicts file\n" + os.urandom(64))
    damaged = new_process(migrated)
    assert damaged["exit"] == 0 and damaged["from_file"] == 0 and damaged["compared"] == first["compared"]
    assert path.read_text().splitlines()[0] == whole.splitlines()[0]  # written again, whole
    path.write_text(whole[: len(whole) // 2 + 7])  # cut inside a line
    cut = new_process(migrated)
    kept = len(whole[: len(whole) // 2 + 7].splitlines()) - 2  # less the header and the cut line
    assert cut["exit"] == 0 and cut["from_file"] == kept and cut["compared"] == first["compared"] - kept, cut


@pytest.mark.parametrize("blocker", ["a file where the state folder goes", "a folder where the file goes"])
def test_a_file_that_cannot_be_read_or_written_is_not_an_error(migrated, pg_url, blocker):
    state = migrated / ".sovren"
    if blocker.startswith("a file"):
        state.write_text("")
    else:
        (state / table_forms.FILE_NAME).mkdir(parents=True)
    for _ in range(2):
        outcome = new_process(migrated)
        assert outcome["exit"] == 0 and outcome["from_file"] == 0 and outcome["compared"] >= 5, outcome
    cli = [sys.executable, "-m", "sovren_db.cli.main"]
    quiet = subprocess.run([*cli, "check"], capture_output=True, text=True, cwd=migrated, timeout=300)
    said = subprocess.run([*cli, "--debug", "check"], capture_output=True, text=True, cwd=migrated, timeout=300)
    assert quiet.returncode == said.returncode == 0, quiet.stderr
    assert "verdicts" not in quiet.stdout + quiet.stderr and quiet.stdout == said.stdout
    assert f"verdicts file {state / table_forms.FILE_NAME} not" in said.stderr, said.stderr


def test_concurrent_checks_never_fail_nor_leave_half_a_file(migrated, pg_url):
    path = verdicts(migrated)
    children = [start(migrated) for _ in range(4)]
    seen = []
    while any(c.poll() is None for c in children):
        if path.exists():
            seen.append(path.read_text())
    outputs = [c.communicate(timeout=300) for c in children]
    assert [c.returncode for c in children] == [0] * 4, [err for _, err in outputs]
    done = json.loads(outputs[0][0].splitlines()[-1])
    compared = done["compared"] + done["skipped"]  # a child may have found another's file already
    for text in seen + [path.read_text()]:  # every read saw one writer's whole file
        lines = text.splitlines()
        assert lines[0] == "sovren-db check verdicts 1" and len(lines) == compared + 1
    assert not list(path.parent.glob(f".{table_forms.FILE_NAME}.*"))  # no temporary file left behind
    assert new_process(migrated)["from_file"] == compared


def test_check_exact_neither_reads_nor_writes_the_file(migrated, pg_url):
    exact = new_process(migrated, exact=True)
    assert exact["exit"] == 0 and not verdicts(migrated).exists()
    first = new_process(migrated)
    before = verdicts(migrated).read_bytes()
    again = new_process(migrated, exact=True)
    assert again["from_file"] == again["skipped"] == 0 and again["compared"] == first["compared"]
    assert verdicts(migrated).read_bytes() == before


def test_the_environment_turns_it_off(migrated, pg_url):
    off = new_process(migrated, **{table_forms.MEMORY_VARIABLE: "off"})
    assert off["exit"] == 0 and not verdicts(migrated).exists()


def test_a_role_that_may_not_read_pg_control_keeps_verdicts_in_memory_only(migrated, pg_url):
    from sqlalchemy.engine import make_url

    role = "cm_reader"
    run(pg_url, f"CREATE ROLE {role} LOGIN PASSWORD 'cm-reader-secret'",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}",  # no lease, so no CREATE nor sovren_db rights
        "REVOKE EXECUTE ON FUNCTION pg_catalog.pg_control_system() FROM PUBLIC")
    url = make_url(pg_url).set(username=role, password="cm-reader-secret").render_as_string(hide_password=False)
    try:
        for _ in range(2):
            outcome = new_process(migrated, url)
            assert outcome["from_file"] == 0 and outcome["compared"] >= 5, outcome
        assert not verdicts(migrated).exists()
    finally:
        run(pg_url, "GRANT EXECUTE ON FUNCTION pg_catalog.pg_control_system() TO PUBLIC",
            f"DROP OWNED BY {role}", f"DROP ROLE {role}")
