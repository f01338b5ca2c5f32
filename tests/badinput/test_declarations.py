"""Broken declarations and seed profiles: one sentence naming the file, exit 2, in every format, nothing applied.

Each case edits one file of the copied project (a Postgres model, a Mongo collection or its JSON Schema, a
Redis family, a seed profile) and runs the command that reads it against a real Postgres at head.
"""

from __future__ import annotations

import pytest

from .conftest import FORMATS, refused, run
from .test_secrets import head_url, migrated  # noqa: F401  (the project at head on a real Postgres)

# (case, file, text replaced (None: appended), replacement, words the sentence must hold)
DECLARATIONS = [
    ("redis unknown type", "redis/sessions.toml", 'type = "set"', 'type = "sett"', "unknown type 'sett'"),
    ("redis bad duration", "redis/sessions.toml", 'max = "30d", default = "30d"', 'max = "a month", default = "30d"',
     "session_devices"),
    ("redis unknown key", "redis/sessions.toml", "max_elements = 64", 'max_elements = 64\ncolour = "red"', "colour"),
    ("redis not toml", "redis/sessions.toml", None, "\n[families.broken\n", "sessions.toml"),
    ("redis same pattern twice", "redis/sessions.toml", None,
     '\n[families.again]\npattern = "session:{user_id}"\ntype = "string"\nowner = "x"\n'
     'ttl = { policy = "none" }\ndescription = "d"\n', "session"),
    ("redis negative size", "redis/sessions.toml", "max_elements = 64", "max_elements = -64", "max_elements"),
    ("mongo unknown option", "mongo/executives.toml", 'validationLevel = "strict"', 'validationLevel = "strictest"',
     "validationLevel"),
    ("mongo not toml", "mongo/executives.toml", None, "\n[[indexes]\n", "executives.toml"),
    ("mongo schema not json", "mongo/executives.schema.json", '"bsonType": "object",', '"bsonType": "object"',
     "executives.schema.json"),
    ("mongo schema bad type", "mongo/executives.schema.json", '"_id": {"bsonType": "objectId"}',
     '"_id": {"bsonType": "objectIdd"}', "executives"),
    ("mongo index without key", "mongo/executives.toml", "key = { executiveId = 1 }\n", "", "executives.toml"),
    ("postgres syntax error", "postgres/tables.py", None, "\nthis is not python\n", "tables.py"),
    ("postgres import error", "postgres/tables.py", None, "\nimport no_such_module_here\n", "tables.py"),
]


def edit(root, path: str, old: str | None, new: str) -> None:
    target = root / path
    text = target.read_text()
    assert old is None or old in text, f"{old!r} not in {path}: the case no longer edits anything"
    target.write_text(text + new if old is None else text.replace(old, new, 1))


@pytest.mark.postgres
@pytest.mark.parametrize("case, path, old, new, words", DECLARATIONS, ids=[d[0] for d in DECLARATIONS])
def test_a_broken_declaration_is_one_sentence_naming_its_file(migrated, monkeypatch, case, path, old, new, words):
    monkeypatch.setenv("SOVREN_DB_STORES", "postgres,mongo,redis")  # mongo and redis from the chain: no server
    edit(migrated, path, old, new)
    for fmt in FORMATS:
        result = run("check", "--format", fmt)
        sentence = refused(result, fmt)
        assert path.rsplit("/", 1)[-1] in sentence and words in sentence, sentence
        if fmt == "github":
            assert f"file={path}" in result.stdout, result.stdout


# (case, file, text replaced (None: appended), replacement, words)
PROFILES = [
    ("negative users", "users = 120", "users = -5", "users"),
    ("users as text", "users = 120", 'users = "many"', "users"),
    ("unknown key", "users = 120", "users = 120\nadmins = 3", "admins"),
    ("unknown table", "operations = 6.0", "operations = 6.0\nno_such_table = 1.0", "no_such_table"),
    ("unknown family", "[redis.session]", '[redis.no_such_family]\nper = "users"\nshare = 0.5\n[redis.session]',
     "no_such_family"),
    ("share above one", "share = 1.0", "share = 7.0", "payments"),
    ("not toml", "users = 120", "users = = 120", "ci.toml"),
]


@pytest.mark.postgres
@pytest.mark.parametrize("case, old, new, words", PROFILES, ids=[p[0] for p in PROFILES])
def test_a_broken_seed_profile_is_one_sentence_naming_it(migrated, case, old, new, words):
    edit(migrated, "seeds/ci.toml", old, new)
    for fmt in FORMATS:
        sentence = refused(run("seed", "-p", "ci", "--format", fmt), fmt)
        assert "ci.toml" in sentence and words in sentence, sentence


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unknown_profile_names_the_ones_there_are(bare, fmt):
    sentence = refused(run("seed", "-p", "nosuch", "--format", fmt), fmt)
    assert "nosuch" in sentence and "ci" in sentence, sentence
