"""``[tool.sovren-db]`` and the settings' environment variables, validated at load: each bad value is one
sentence naming the file (or variable) and the key, exit 2, in every format, before any server is asked."""

from __future__ import annotations

import pytest

from sovren_db.core.config import load_settings
from sovren_db.core.errors import ConfigError

from .conftest import FORMATS, refused, run

# (what [tool.sovren-db] gets appended, words the sentence must hold)
BAD_KEYS = [
    ('lock_timeout = "five seconds"', "lock_timeout in [tool.sovren-db] is 'five seconds', which Postgres does not"),
    ('lock_timeout = "5 seconds"', "does not read as a duration"),
    ('lock_timeout = "5S"', "does not read as a duration"),
    ('statement_timeout = "-1s"', "Postgres accepts 0 to 2147483647 ms"),
    ('statement_timeout = "30d"', "Postgres accepts 0 to 2147483647 ms"),
    ("lock_timeout = true", "lock_timeout in [tool.sovren-db] must be a string or an integer or a number"),
    ("colour = 'blue'", "unknown key 'colour' in [tool.sovren-db]"),
    ('stores = "postgres"', "stores in [tool.sovren-db] must be a list of strings, not 'postgres'"),
    ("stores = ['postgres', 'cassandra']", "unknown store 'cassandra'"),
    ('protected_environments = "production"', "protected_environments in [tool.sovren-db] must be a list"),
    ("protected_environments = [1]", "protected_environments.0 in [tool.sovren-db] must be a string, not 1"),
    ("postgres_dir = 5", "postgres_dir in [tool.sovren-db] must be a string, not 5"),
    ('mongo_database = ""', "mongo_database in [tool.sovren-db] must not be empty"),
    ('environment = ["prod"]', "environment in [tool.sovren-db] must be a string"),
    ('targets = "primary"', "targets in [tool.sovren-db] must be a table, not 'primary'"),
    ("doctor = 3", "doctor in [tool.sovren-db] must be a table, not 3"),
]


def append_tool(root, text: str) -> None:
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("[tool.sovren-db]\n", f"[tool.sovren-db]\n{text}\n", 1))


def set_tool(root, line: str) -> None:
    """``key = value`` in [tool.sovren-db]: the project's own line replaced, else the line added."""
    pyproject = root / "pyproject.toml"
    key = line.split(" =")[0]
    lines = pyproject.read_text().splitlines()
    if any(l.startswith(f"{key} =") for l in lines):
        pyproject.write_text("\n".join(line if l.startswith(f"{key} =") else l for l in lines) + "\n")
    else:
        append_tool(root, line)


@pytest.mark.parametrize("line, words", BAD_KEYS, ids=[b[0] for b in BAD_KEYS])
def test_a_bad_key_is_refused_at_load_naming_the_file_and_key(bare, line, words):
    text = bare / "pyproject.toml"
    set_tool(bare, line)
    for fmt in FORMATS:
        result = run("migrate", "--format", fmt)
        sentence = refused(result, fmt)
        assert str(text) in sentence and words in sentence, sentence
        if fmt == "github" and "unknown store" not in words:  # the annotation points at the key's line
            assert result.stdout.startswith("::error file=pyproject.toml,line="), result.stdout


@pytest.mark.parametrize("variable, value, words", [
    ("SOVREN_LOCK_TIMEOUT", "abc", "the environment variable SOVREN_LOCK_TIMEOUT is 'abc'"),
    ("SOVREN_STATEMENT_TIMEOUT", "1e12", "the environment variable SOVREN_STATEMENT_TIMEOUT is '1e12': Postgres"),
    ("SOVREN_DB_STORES", "postgres,cassandra", "unknown store 'cassandra'"),
])
def test_a_bad_environment_variable_is_refused_naming_it(bare, variable, value, words):
    for fmt in FORMATS:
        assert words in refused(run("check", "--format", fmt, env={variable: value}), fmt)


def test_a_file_that_is_not_toml_or_a_tool_table_that_is_not_a_table(bare):
    pyproject = bare / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "\n[broken\n")
    for fmt in FORMATS:
        assert "is not valid TOML" in refused(run("status", "--format", fmt), fmt)
    pyproject.write_text('[project]\nname = "p"\n[tool]\nsovren-db = "on"\n')
    for fmt in FORMATS:
        assert "[tool.sovren-db] must be a table" in refused(run("status", "--format", fmt), fmt)


@pytest.mark.parametrize("value, kept", [
    ('"5s"', "5s"), ('"5 s"', "5 s"), ("5000", "5000"), ('"1.5min"', "1.5min"), ('"0"', "0"), ('"250ms"', "250ms"),
    ('"2147483647ms"', "2147483647ms"), ('"100us"', "100us"), ('"24h"', "24h"),
])
def test_durations_postgres_accepts_are_accepted_as_written(bare, value, kept):
    set_tool(bare, f"statement_timeout = {value}")
    assert load_settings(bare, environ={}).statement_timeout == kept


def test_sub_tables_of_other_parts_are_accepted_as_tables(bare):
    append_tool(bare, "[tool.sovren-db.targets.replica]\nurl_env = 'REPLICA_URL'\n[tool.sovren-db.doctor]\nx = 1")
    load_settings(bare, environ={})
    with pytest.raises(ConfigError, match="unknown key 'target'"):
        append_tool(bare, "target = 1")
        load_settings(bare, environ={})
