"""Residency across targets: ``--target all seed`` puts each region's users (and all they own) in that
region's Postgres and Redis only; ``erase`` per target finds a subject only where it lives."""

from __future__ import annotations

import datetime as dt
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis as redis_py

from sovren_db.core.errors import DeclarationError
from sovren_db.core.urls import with_database
from sovren_db.seeds.documents import documents_of
from sovren_db.seeds.plan import Plan
from sovren_db.seeds.profiles import load_profile
from sovren_db.seeds.residency import for_region
from sovren_db.seeds.snapshots import create_database, drop_database
from tests.integration.conftest import copy_project
from tests.seeds.test_generation import declarations_of, graph_of
from tests.topology.test_targets import run

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
REGIONS = {"eu": 14, "us": 15}   # each region's Redis database on the harness's server


@pytest.fixture
def resident(tmp_path, repo_root, postgres_server_url, redis_server_url, monkeypatch):
    """Targets eu and us, each with its own Postgres database and Redis database, and its region."""
    admin, urls = with_database(postgres_server_url, "postgres"), {}
    root = copy_project(repo_root, tmp_path / "project")
    for var in ("CI", "MONGO_URL", "REDIS_URL", "POSTGRES_URL", "SOVREN_ENV"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,redis")
    for region, db in REGIONS.items():
        name = f"t_{region}_{uuid.uuid4().hex[:10]}"
        create_database(admin, name)
        redis_url = urlunsplit(urlsplit(redis_server_url)._replace(path=f"/{db}"))
        redis_py.Redis.from_url(redis_url).flushdb()
        urls[region] = (with_database(postgres_server_url, name), redis_url)
        monkeypatch.setenv(f"SOVREN_TARGET_{region.upper()}_POSTGRES_URL", urls[region][0])
        monkeypatch.setenv(f"SOVREN_TARGET_{region.upper()}_REDIS_URL", urls[region][1])
        with (root / "pyproject.toml").open("a") as toml:
            toml.write(f'\n[tool.sovren-db.targets.{region}]\nregion = "{region}"\n')
    monkeypatch.chdir(root)
    yield urls
    for region, (pg, redis_url) in urls.items():
        redis_py.Redis.from_url(redis_url).flushdb()
        drop_database(admin, pg.rsplit("/", 1)[1])


def users(pg_url: str) -> set[str]:
    with psycopg.connect(pg_url) as conn:
        return {str(row[0]) for row in conn.execute("SELECT user_id FROM users")}


def currencies(pg_url: str) -> set[str]:
    with psycopg.connect(pg_url) as conn:
        return {row[0] for row in conn.execute("SELECT DISTINCT currency FROM transactions")}


def session_users(redis_url: str) -> set[str]:
    client = redis_py.Redis.from_url(redis_url, decode_responses=True)
    return {key.split(":", 1)[1] for key in client.scan_iter("session:*") if key.count(":") == 1}


def test_seeding_every_target_keeps_each_region_s_users_in_its_own_stores(resident):
    assert run("--target", "all", "migrate").exit_code == 0
    seeded = run("--target", "all", "seed", "--profile", "ci")
    assert seeded.exit_code == 0, seeded.output
    assert "== target eu: exit 0" in seeded.output and "== target us: exit 0" in seeded.output
    (eu_pg, eu_redis), (us_pg, us_redis) = resident["eu"], resident["us"]
    eu, us = users(eu_pg), users(us_pg)
    assert len(eu) == len(us) == 120 and not eu & us
    # the profile's by_region values (seeds/ci.toml), not its values: no dollar in eu, no euro in us
    assert currencies(eu_pg) == {"EUR", "GBP", "CHF"} and currencies(us_pg) == {"USD", "CAD"}
    assert session_users(eu_redis) and session_users(eu_redis) <= eu
    assert session_users(us_redis) and session_users(us_redis) <= us

    again = run("--target", "all", "seed", "--profile", "ci")
    assert again.exit_code == 0 and again.output.count("already seeded") >= 2, again.output
    assert users(eu_pg) == eu


def test_erase_per_target_finds_the_subject_only_in_its_region(resident):
    assert run("--target", "all", "migrate").exit_code == 0
    assert run("--target", "all", "seed", "--profile", "ci").exit_code == 0
    (eu_pg, eu_redis), (us_pg, _) = resident["eu"], resident["us"]
    subject = sorted(session_users(eu_redis))[0]
    us_before = users(us_pg)

    elsewhere = run("--target", "us", "erase", "--subject", subject)
    assert elsewhere.exit_code == 0 and "nothing of this subject was found" in elsewhere.output, elsewhere.output
    assert users(us_pg) == us_before
    erased = run("--target", "all", "erase", "--subject", subject)
    assert erased.exit_code == 0, erased.output
    assert subject not in users(eu_pg) and subject not in session_users(eu_redis)
    verified = run("--target", "all", "erase", "--verify", "--subject", subject)
    assert verified.exit_code == 0, verified.output


def test_a_target_region_the_profile_does_not_draw_is_one_sentence_naming_the_profile(resident, monkeypatch):
    monkeypatch.setenv("SOVREN_TARGET_APAC_POSTGRES_URL", resident["eu"][0])
    monkeypatch.setenv("SOVREN_TARGET_APAC_REDIS_URL", resident["eu"][1])
    with open("pyproject.toml", "a") as toml:
        toml.write('\n[tool.sovren-db.targets.apac]\nregion = "apac"\n')
    assert run("--target", "eu", "migrate").exit_code == 0
    result = run("--target", "apac", "seed", "--profile", "ci")
    assert result.exit_code == 2
    assert "ci.toml: the target's region 'apac' is not one of the profile's regions (eu, us)" in result.output
    assert "Traceback" not in result.output and not users(resident["eu"][0])


def test_a_region_that_cannot_be_a_name_is_refused_when_the_config_loads(resident):
    with open("pyproject.toml", "a") as toml:
        toml.write('\n[tool.sovren-db.targets.bad]\nregion = "eu west"\n')
    result = run("--target", "bad", "status")
    assert result.exit_code == 2
    assert "region of [tool.sovren-db.targets.bad] is 'eu west'; it must be a region's name" in result.output


def test_by_region_values_follow_the_target_and_other_columns_keep_theirs(repo_root):
    base = load_profile(repo_root / "seeds", "ci")
    eu, us = for_region(base, "eu"), for_region(base, "us")
    currency = base.tables["transactions"].columns["currency"]
    assert eu.tables["transactions"].columns["currency"].values == currency.by_region["eu"]
    assert us.tables["transactions"].columns["currency"].values == currency.by_region["us"]
    assert eu.tables["payments"].columns == base.tables["payments"].columns


@pytest.mark.parametrize("region", ["eu", "us"])
def test_documents_of_a_region_s_seed_carry_its_region_the_shard_key_s_first_field(repo_root, region):
    profile = for_region(load_profile(repo_root / "seeds", "ci"), region)
    block = next(Plan(profile, 1, profile.seed, dt.date(2026, 1, 1), graph=graph_of(profile),
                      declarations=declarations_of(profile)).blocks())
    documents = [d for name in ("scenario_simulations", "analytics_payloads") for d in documents_of(name, block)]
    assert documents and {d["region"] for d in documents} == {region}
    assert profile.fingerprint.endswith(f"/region={region}")


@pytest.mark.parametrize("text, key, says", [
    ('regions = ["eu"]', "regions", "must be a table of region = weight"),
    ('regions = { eu = 0 }', "regions", "must be a table of region = weight"),
    ('regions = { eu = 1 }\n[postgres.transactions]\nmean = 1.0\ncolumns.currency = { values = ["EUR"], '
     'by_region = { us = ["USD"] } }', "postgres.transactions.columns.currency.by_region.us",
     "names a region that the profile's regions do not list (eu)"),
    ('[postgres.transactions]\nmean = 1.0\ncolumns.currency = { by_region = { eu = [] } }',
     "postgres.transactions.columns.currency.by_region", "must be a table of region = a list"),
])
def test_bad_regions_in_a_profile_name_the_key(tmp_path, text, key, says):
    (tmp_path / "p.toml").write_text(f"users = 5\n{text}\n")
    with pytest.raises(DeclarationError) as caught:
        load_profile(tmp_path, "p")
    assert key in str(caught.value) and says in str(caught.value)
