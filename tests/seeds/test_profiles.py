"""Seed profiles: the repository's load, malformed ones are refused naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovren_db.core.errors import ConfigError, DeclarationError
from sovren_db.seeds.profiles import load_profile, profile_names

REPO_SEEDS = Path(__file__).resolve().parents[2] / "seeds"


def test_the_repository_declares_ci_dev_and_perf():
    assert {"ci", "dev", "perf"} <= set(profile_names(REPO_SEEDS))
    ci, dev, perf = (load_profile(REPO_SEEDS, n) for n in ("ci", "dev", "perf"))
    assert ci.users < dev.users < perf.users
    assert not list(REPO_SEEDS.glob("__init__.py"))


def test_ci_seeds_every_declared_collection_and_family_of_sovren_s_data():
    ci = load_profile(REPO_SEEDS, "ci")
    collections = {p.name.split(".")[0] for p in (REPO_SEEDS.parent / "mongo").glob("*.schema.json")}
    assert set(ci.documents) == collections and all(r.amount > 0 for r in ci.documents.values())
    assert {"session", "session_devices", "executive_cache", "comms_dead"} <= set(ci.families)


def test_dev_and_perf_extend_ci_keeping_its_fields_with_their_own_amounts():
    ci, dev = load_profile(REPO_SEEDS, "ci"), load_profile(REPO_SEEDS, "dev")
    assert dev.documents["executives"].columns == ci.documents["executives"].columns
    assert (dev.documents["executives"].amount, dev.families["session"].share) == (4.0, True)
    assert dev.tables["payments"].per == "transactions" and dev.tables["payments"].amount == 0.95


def test_a_profile_extending_a_missing_or_circular_one_names_the_key(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b"\nusers = 1\n')
    (tmp_path / "b.toml").write_text('extends = "a"\nusers = 2\n')
    with pytest.raises(DeclarationError, match="extends this one in turn"):
        load_profile(tmp_path, "a")
    (tmp_path / "b.toml").write_text('extends = "nowhere"\n')
    with pytest.raises(DeclarationError, match="must name another profile"):
        load_profile(tmp_path, "a")


def test_fingerprint_follows_the_file_content(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("users = 10\n")
    first = load_profile(tmp_path, "p").fingerprint
    path.write_text("users = 11\n")
    assert load_profile(tmp_path, "p").fingerprint != first


@pytest.mark.parametrize("text, where, problem", [
    ("seed = 1\n", "postgres", "names no table with rows"),
    ("users = 0\n", "users", "whole number"),
    ("users = 5\ncolour = 'red'\n", "colour", "unknown key"),
    ("users = 5\n[postgres]\nwidgets = 'many'\n", "postgres.widgets", "must be rows of a root table"),
    ("users = 5\n[mongo]\nsubscriptions = 1\n", "mongo.subscriptions", "must be a table { per"),
    ("users = 5\n[mongo]\nnotes = { per = 'users', mean = 1, fields = 3 }\n", "mongo.notes.fields",
     "table of field = generator"),
    ("users = 5\n[mongo]\nnotes = { per = 'users', mean = 1, fields = { a = { from = 3 } } }\n",
     "mongo.notes.fields.a.from", "must name a field"),
    ("users = 5\n[mongo]\nnotes = { per = 'users', mean = 1, value = 'word' }\n", "mongo.notes.value",
     "unknown key"),
    ("users = 5\n[postgres.payments]\nshare = 1.5\n", "postgres.payments.share", "between 0 and 1"),
    ("users = 5\n[postgres.payments]\nshare = 0.5\nmean = 2\n", "postgres.payments", "one of rows, mean and share"),
    ("users = 5\n[postgres.payments]\nper = 3\n", "postgres.payments.per", "name of the parent table"),
    ("users = 5\n[postgres.payments]\ncolumns = { card_last4 = 4 }\n", "postgres.payments.columns.card_last4",
     "must be a kind"),
    ("users = 5\n[postgres.payments.columns]\ncard_last4 = { nulls = 2 }\n",
     "postgres.payments.columns.card_last4.nulls", "between 0 and 1"),
    ("users = 5\nwindow = { start = 'last year' }\n", "window.start", "must be now, an offset"),
    ("users = 5\nwindow = { begin = '-1y' }\n", "window.begin", "unknown key"),
    ("users = 5\n[postgres]\nusers = 6\n", "users", "is given twice"),
    ("users = 5\n[mongo]\nreviews = { mean = 1 }\n", "mongo.reviews.per", "is required"),
    ("users = 5\n[mongo]\nreviews = { per = 'users' }\n", "mongo.reviews", "one of mean and share"),
    ("users = 5\n[mongo]\nreviews = { per = 'users', share = 2 }\n", "mongo.reviews.share", "between 0 and 1"),
    ("users = 5\n[redis]\nsession = { per = 'users', share = -1 }\n", "redis.session.share", "0 or more"),
    ("users = 5\n[redis]\nsession = { per = 'users', mean = true }\n", "redis.session.mean", "0 or more"),
    ("users = 5\npostgres = 3\n", "postgres", "must be a table"),
])
def test_malformed_profiles_name_the_file_and_the_key(tmp_path, text, where, problem):
    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(DeclarationError) as caught:
        load_profile(tmp_path, "bad")
    assert caught.value.where == where
    assert problem in caught.value.problem
    assert str(tmp_path / "bad.toml") in str(caught.value)


def test_invalid_toml_is_a_declaration_error(tmp_path):
    (tmp_path / "broken.toml").write_text("users = [\n")
    with pytest.raises(DeclarationError, match="not valid TOML"):
        load_profile(tmp_path, "broken")


def test_an_unknown_profile_lists_the_available_ones(tmp_path):
    (tmp_path / "small.toml").write_text("users = 1\n")
    with pytest.raises(ConfigError, match=r"No seed profile 'huge' .*profiles there: small\)"):
        load_profile(tmp_path, "huge")


def test_an_encrypted_column_without_any_key_is_a_config_error(tmp_path, monkeypatch):
    from sovren_db.core.config import load_settings
    from sovren_db.seeds.targets import Targets
    from tests.integration.conftest import copy_project

    root = copy_project(REPO_SEEDS.parent, tmp_path / "project")
    (root / "seeds" / "nokey.toml").write_text("users = 3\n[postgres]\ntransactions = 1\npayments = 1\n")
    monkeypatch.delenv("SOVREN_DB_ENCRYPTION_KEY", raising=False)
    settings = load_settings(root, environ={"SOVREN_DB_STORES": "postgres"})
    with pytest.raises(ConfigError, match=r"payments.provider_token is declared encrypted: set "
                                          r"SOVREN_DB_ENCRYPTION_KEY or encryption_key in .*nokey.toml"):
        Targets.of(settings, load_profile(root / "seeds", "nokey"))
    monkeypatch.setenv("SOVREN_DB_ENCRYPTION_KEY", "k")
    assert [e.column for e in Targets.of(settings, load_profile(root / "seeds", "nokey")).encrypted["payments"]] \
        == ["provider_token"]


@pytest.mark.parametrize("text, where, problem", [
    ("users = 5\n[postgres]\nwidgets = 1\n", "postgres.widgets", "no table 'widgets' is declared"),
    ("users = 5\n[postgres.users.columns]\nnickname = 'word'\n", "postgres.users.columns.nickname",
     "table users declares no column 'nickname'"),
    ("users = 5\n[postgres.payments]\nper = 'operations'\n", "postgres.payments.per",
     "table payments has no foreign key to 'operations'"),
    ("users = 5\n[postgres.users.columns]\nemail = 'telepathy'\n", "postgres.users.columns.email",
     "unknown generator 'telepathy'"),
    ("users = 5\n[postgres.operations]\nrows = 3\n", "postgres.operations.rows", "is a child of users"),
])
def test_a_profile_naming_what_the_schema_does_not_declare_names_the_file(tmp_path, text, where, problem):
    from sovren_db.postgres.declared import load_schema
    from sovren_db.seeds.declared import build_graph

    (tmp_path / "bad.toml").write_text(text)
    with pytest.raises(DeclarationError) as caught:
        build_graph(load_schema(REPO_SEEDS.parent / "postgres"), load_profile(tmp_path, "bad"), {})
    assert caught.value.where == where and problem in caught.value.problem
    assert str(tmp_path / "bad.toml") in str(caught.value)
