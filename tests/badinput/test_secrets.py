"""No password printed, anywhere: every URL and DSN form of the three stores, with a distinctive
password, through every command's error path, in every format; all of stdout and stderr is searched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from sovren_db import commands
from sovren_db.core.config import load_settings
from sovren_db.core.urls import redact, redact_text, with_database
from sovren_db.seeds.snapshots import create_database, drop_database
from tests.integration.conftest import copy_project
from sovren_db.mongo.backend import MongoBackend
from sovren_db.services import free_port

from .conftest import FORMATS, SUBJECT, refused, run

SOVREN_DB = str(Path(sys.executable).parent / "sovren-db")
DEAD = free_port()  # nothing listens there: every connection is refused at once

# (name, URL or DSN, the secrets in it)
POSTGRES_FORMS = [
    ("userinfo", f"postgresql://sovren:Pg1Userinfo@127.0.0.1:{DEAD}/sovren_ai", ("Pg1Userinfo",)),
    ("query", f"postgresql://sovren@127.0.0.1:{DEAD}/sovren_ai?password=Pg2Query&sslmode=disable", ("Pg2Query",)),
    ("raw at", f"postgresql://sovren:Pg3Raw@At@127.0.0.1:{DEAD}/sovren_ai", ("Pg3Raw", "At@127")),
    ("raw slash", f"postgresql://sovren:Pg4Raw/Slash@127.0.0.1:{DEAD}/sovren_ai", ("Pg4Raw", "Slash")),
    ("raw question mark", f"postgresql://sovren:Pg5Raw?Quest@127.0.0.1:{DEAD}/db", ("Pg5Raw", "Quest")),
    ("percent-encoded", f"postgresql://sovren:Pg6%40Encoded@127.0.0.1:{DEAD}/db", ("Pg6%40Encoded", "Pg6@Encoded")),
    ("bad port", "postgresql://sovren:Pg7BadPort@127.0.0.1:notaport/db", ("Pg7BadPort",)),
    ("key=value DSN", f"host=127.0.0.1 port={DEAD} user=sovren password=Pg8Dsn dbname=sovren_ai", ("Pg8Dsn",)),
    ("quoted DSN", f"host=127.0.0.1 password='Pg9 Quoted' dbname=sovren_ai", ("Pg9 Quoted", "Pg9")),
    ("postgres scheme", f"postgres://sovren:Pg10Scheme@127.0.0.1:{DEAD}/sovren_ai", ("Pg10Scheme",)),
]
REDIS_FORMS = [
    ("userinfo", f"redis://:Rd1Userinfo@127.0.0.1:{DEAD}/0", ("Rd1Userinfo",)),
    ("user and password", f"redis://default:Rd2User@127.0.0.1:{DEAD}/0", ("Rd2User",)),
    ("tls", f"rediss://default:Rd3Tls@127.0.0.1:{DEAD}/0", ("Rd3Tls",)),
    ("query", f"redis://127.0.0.1:{DEAD}/0?password=Rd4Query", ("Rd4Query",)),
    ("sentinel", f"redis+sentinel://:Rd5Sentinel@127.0.0.1:{DEAD}/mymaster?sentinel_password=Rd5Other",
     ("Rd5Sentinel", "Rd5Other")),
    ("raw at", f"redis://:Rd6Raw@At@127.0.0.1:{DEAD}/0", ("Rd6Raw", "At@127")),
    ("raw slash", f"redis://:Rd7Raw/Slash@127.0.0.1:{DEAD}/0", ("Rd7Raw", "Slash")),
    ("unix socket", "unix://:Rd8Unix@/nonexistent/redis.sock", ("Rd8Unix",)),
]
MONGO_FORMS = [
    ("userinfo", f"mongodb://sovren:Mg1Userinfo@127.0.0.1:{DEAD}/sovren_ai", ("Mg1Userinfo",)),
    ("aws token", f"mongodb://k:Mg2Key@127.0.0.1:{DEAD}/sovren_ai?authMechanism=MONGODB-AWS"
                  "&authMechanismProperties=AWS_SESSION_TOKEN:Mg2Token", ("Mg2Key", "Mg2Token")),
    ("tls key password", f"mongodb://127.0.0.1:{DEAD}/db?tls=true&tlsCertificateKeyFilePassword=Mg3KeyPw",
     ("Mg3KeyPw",)),
    ("raw slash", f"mongodb://sovren:Mg4Raw/Slash@127.0.0.1:{DEAD}/sovren_ai", ("Mg4Raw", "Slash")),
    ("srv", "mongodb+srv://sovren:Mg5Srv@cluster0.example.invalid/sovren_ai", ("Mg5Srv",)),
]

POSTGRES_COMMANDS = [
    ("check",), ("status",), ("migrate",), ("plan",), ("downgrade", "-1"), ("seed", "-p", "ci"),
    ("erase", "--subject", SUBJECT), ("lint",), ("audit", "verify"), ("partitions",),
    ("revision", "-m", "x", "--autogenerate"), ("snapshot", "--out", "manifest.json"),
]
WITH_FORMAT = {"check", "migrate", "plan", "downgrade", "seed", "erase", "lint", "audit", "partitions", "snapshot",
               "status", "revision", "redis", "mongo"}
REDIS_COMMANDS = [("check",), ("status",), ("migrate",), ("seed", "-p", "ci"), ("redis", "audit"),
                  ("erase", "--subject", SUBJECT)]


def invoke(command: tuple[str, ...], fmt: str):
    args = [*command, "--format", fmt] if fmt != "text" else list(command)
    return run(*args)


@pytest.mark.parametrize("name, url, secrets", POSTGRES_FORMS, ids=[f[0] for f in POSTGRES_FORMS])
def test_postgres_url_forms_through_every_command(bare, monkeypatch, name, url, secrets):
    monkeypatch.setenv("POSTGRES_URL", url)
    for command in POSTGRES_COMMANDS:
        for fmt in FORMATS if command[0] in WITH_FORMAT else ("text",):
            refused(invoke(command, fmt), fmt, secrets)


@pytest.mark.postgres
@pytest.mark.parametrize("name, url, secrets", REDIS_FORMS, ids=[f[0] for f in REDIS_FORMS])
def test_redis_url_forms_through_every_command(migrated, monkeypatch, name, url, secrets):
    monkeypatch.setenv("REDIS_URL", url)
    for command in REDIS_COMMANDS:
        for fmt in FORMATS:
            refused(invoke(command, fmt), fmt, secrets)


@pytest.mark.postgres
@pytest.mark.parametrize("name, url, secrets", MONGO_FORMS, ids=[f[0] for f in MONGO_FORMS])
def test_mongo_url_forms_through_the_commands_that_reach_it(migrated, monkeypatch, name, url, secrets):
    monkeypatch.setattr(MongoBackend, "server_timeout_ms", 300)  # a refused port answers after the timeout
    monkeypatch.setenv("MONGO_URL", url)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,mongo")
    for command in (("check",), ("migrate",)):
        for fmt in FORMATS:
            refused(invoke(command, fmt), fmt, secrets)


@pytest.fixture(scope="module")
def head_url(postgres_server_url, repo_root, tmp_path_factory) -> str:
    """A database at head, migrated once for the module (the cases only read it)."""
    url = with_database(postgres_server_url, f"t_{uuid.uuid4().hex[:12]}")
    create_database(with_database(postgres_server_url, "postgres"), urlsplit(url).path[1:])
    root = copy_project(repo_root, tmp_path_factory.mktemp("head") / "project")
    commands.migrate(load_settings(root, environ={"POSTGRES_URL": url, "SOVREN_DB_STORES": "postgres"}))
    yield url
    drop_database(with_database(postgres_server_url, "postgres"), urlsplit(url).path[1:])


@pytest.fixture
def migrated(bare, head_url, monkeypatch) -> Path:
    """The project at head on a real Postgres; Redis and Mongo named by each case."""
    monkeypatch.setenv("POSTGRES_URL", head_url)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,redis")
    return bare


@pytest.mark.parametrize("name, url, secrets", POSTGRES_FORMS + REDIS_FORMS + MONGO_FORMS,
                         ids=[f"{f[0]}-{i}" for i, f in enumerate(POSTGRES_FORMS + REDIS_FORMS + MONGO_FORMS)])
def test_one_redaction_for_every_form_without_remembering_it(name, url, secrets):
    """The rules alone (nothing remembered from a configuration) clean the URL and a message quoting it."""
    for shown in (redact(url), redact_text(f"could not connect with {url} today"),
                  redact_text(f'{{"url": "{url}"}}')):
        for secret in secrets:
            assert secret not in shown, shown


def test_a_real_process_prints_no_secret_on_its_own_streams(bare):
    """The same through the installed command: its real stdout and stderr, every format."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_URL")}
    env["POSTGRES_URL"] = POSTGRES_FORMS[1][1]
    for fmt in FORMATS:
        done = subprocess.run([SOVREN_DB, "check", "--format", fmt], cwd=bare, env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2 and "Pg2Query" not in done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        if fmt == "json":
            assert json.loads(done.stdout)["error"]["store"] == "postgres"
