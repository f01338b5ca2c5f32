"""Protected environments cannot be dodged by spelling; an unknown environment is allowed but printed."""

from __future__ import annotations

import psycopg
import pytest

from sovren_db.core.config import load_settings
from tests.integration.conftest import add_revision

from .conftest import FORMATS, refused, run

SPELLINGS = ["production", "PRODUCTION", "Production", " production", "production\t", " Staging "]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_of_a_protected_name_is_protected(bare, spelling):
    assert load_settings(bare, environ={"SOVREN_ENV": spelling}).protected


@pytest.fixture
def at_head_with_a_drop(project, pg_url):
    assert run("migrate").exit_code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE doomed (id int, gone text)")
    add_revision(project, "d1", "    op.drop_column('doomed', 'gone')")
    return pg_url


@pytest.mark.postgres
@pytest.mark.parametrize("spelling, fmt", list(zip(SPELLINGS[1:4], FORMATS)))
def test_a_drop_column_and_a_reseed_are_refused_however_production_is_spelled(at_head_with_a_drop, monkeypatch,
                                                                              spelling, fmt):
    monkeypatch.setenv("SOVREN_ENV", spelling)
    assert "is protected" in refused(run("migrate", "--format", fmt), fmt)
    with psycopg.connect(at_head_with_a_drop) as conn:  # nothing half applied
        assert conn.execute("SELECT count(*) FROM information_schema.columns WHERE table_name = 'doomed'"
                            ).fetchone()[0] == 2
    assert "Seeding refused" in refused(run("seed", "-p", "ci", "--reset", "--format", fmt), fmt)
    assert "protected" in refused(run("downgrade", "-1", "--format", fmt), fmt)


def test_an_unknown_environment_is_allowed_and_printed(bare):
    settings = load_settings(bare, environ={"SOVREN_ENV": "prodution"})
    assert not settings.protected
    assert "'prodution' is not one this project knows" in settings.environment_note
    assert load_settings(bare, environ={"SOVREN_ENV": " Development "}).environment_note is None
    result = run("lint", "--list-rules", env={"SOVREN_ENV": "prodution"})
    assert result.exit_code == 0
    # lint --list-rules reads no settings: the note comes with the commands that do
    result = run("plan", env={"SOVREN_ENV": "prodution", "POSTGRES_URL": ""})
    assert "note: environment 'prodution' is not one this project knows" in result.stderr
