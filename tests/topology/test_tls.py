"""TLS in transit: Postgres sslmode=verify-full with a CA, rediss:// with a CA, bad certificates in one sentence."""

from __future__ import annotations

import re
import shutil
import uuid
from urllib.parse import quote

import psycopg
import pytest
from click.testing import CliRunner

from sovren_db import services
from sovren_db.cli.main import cli
from sovren_db.core.urls import with_database
from sovren_db.seeds.snapshots import create_database
from tests.integration.conftest import copy_project

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    base = tmp_path_factory.mktemp("tls")
    good = services.make_certificates(base / "certs")
    other = services.make_certificates(base / "certs", name="other")  # a CA that signed nothing we serve
    expired = services.make_certificates(base / "certs", name="expired", expired=True)
    postgres = services.start_postgres(base / "pg")
    redis_good = redis_old = None
    try:
        services.enable_postgres_tls(postgres, good)
        redis_good = services.start_redis_tls(base / "redis", good)
        redis_old = services.start_redis_tls(base / "redis-expired", expired)
        yield {"postgres": postgres, "redis": redis_good, "redis_expired": redis_old,
               "good": good, "other": other, "expired": expired}
    finally:
        for server in (redis_old, redis_good, postgres):
            if server is not None:
                services.stop(server)


@pytest.fixture
def project(tmp_path, repo_root, monkeypatch, tls):
    root = copy_project(repo_root, tmp_path / "project")
    for var in ("CI", "MONGO_URL", "REDIS_URL", "SOVREN_ENV", "SOVREN_DB_STORES"):
        monkeypatch.delenv(var, raising=False)
    name = f"t_{uuid.uuid4().hex[:12]}"
    create_database(with_database(tls["postgres"].url, "postgres"), name)
    monkeypatch.setenv("POSTGRES_URL", pg_tls_url(tls, name, tls["good"].ca))
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,redis")
    monkeypatch.setenv("REDIS_URL", redis_tls_url(tls["redis"].url, tls["good"].ca))
    monkeypatch.chdir(root)
    return root


def pg_tls_url(tls, database: str, ca) -> str:
    return f"{with_database(tls['postgres'].url, database)}?sslmode=verify-full&sslrootcert={quote(str(ca))}"


def redis_tls_url(url: str, ca) -> str:
    return f"{url}?ssl_cert_reqs=required&ssl_check_hostname=true&ssl_ca_certs={quote(str(ca))}"


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


def one_line(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    assert not re.search(r"://[^/@\s]*:(?!\*\*\*@)[^@\s]+@", result.output), result.output  # no password shown
    return lines[0]


def test_migrate_and_check_over_verified_tls_to_postgres_and_redis(project, monkeypatch):
    assert run("migrate").exit_code == 0
    checked = run("check")
    assert checked.exit_code == 0, checked.output
    with psycopg.connect(__import__("os").environ["POSTGRES_URL"]) as conn:
        assert conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone() == (True,)


def test_postgres_certificate_from_another_ca_is_one_sentence_naming_postgres(project, monkeypatch, tls):
    name = __import__("os").environ["POSTGRES_URL"].split("/")[-1].split("?")[0]
    monkeypatch.setenv("POSTGRES_URL", pg_tls_url(tls, name, tls["other"].ca))
    result = run("migrate")
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith("error: postgres server at") and "certificate verify failed" in line


@pytest.mark.parametrize("server, ca, reason", [("redis", "other", "certificate verify failed"),
                                                 ("redis_expired", "expired", "expired")])
def test_a_wrong_or_expired_redis_certificate_is_one_sentence_naming_redis(project, monkeypatch, tls,
                                                                          server, ca, reason):
    monkeypatch.setenv("REDIS_URL", redis_tls_url(tls[server].url, tls[ca].ca))
    result = run("migrate")
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith("error: redis server at") and reason in line


def test_mongo_tls_options_reach_the_driver(project, monkeypatch, tmp_path):
    """No mongod here: the options are shown to reach pymongo by its refusal of the CA file they name."""
    missing = tmp_path / "no-such-ca.pem"
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,mongo")
    monkeypatch.setenv("MONGO_URL", f"mongodb://u:hunter2@127.0.0.1:1/sovren_ai?tls=true&tlsCAFile={missing}")
    result = run("migrate")
    assert result.exit_code == 2
    line = one_line(result)
    assert line.startswith("error: mongo server at") and str(missing) in line and "hunter2" not in line


@pytest.fixture
def mongo_tls(tls, tmp_path):
    if not shutil.which("mongod"):
        pytest.skip("no mongod here: the MongoDB TLS test starts its own requireTLS mongod (CI copies one "
                    "from the mongo:6 image)")
    server = services.start_mongod_tls(tmp_path / "mongo-tls", tls["good"])
    yield server
    services.stop(server)


@pytest.mark.parametrize("ca,ok", [("good", True), ("other", False)])
def test_mongo_over_verified_tls_migrates_and_a_certificate_from_another_ca_is_one_sentence(
        project, monkeypatch, tls, mongo_tls, ca, ok):
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,mongo,redis")
    monkeypatch.setenv("MONGO_URL", f"{mongo_tls.url}?tls=true&tlsCAFile={quote(str(tls[ca].ca))}")
    result = run("migrate")
    if ok:
        assert result.exit_code == 0, result.output
        import pymongo

        client = pymongo.MongoClient(mongo_tls.url, tls=True, tlsCAFile=str(tls[ca].ca))
        assert "executives" in client.get_default_database().list_collection_names()
        return
    assert result.exit_code == 2
    assert one_line(result).startswith("error: mongo server at")
