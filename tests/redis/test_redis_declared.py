"""Pure: loading redis/*.toml, and every declaration error naming its file and entry."""

from __future__ import annotations

import pytest

from sovren_db.core.errors import DeclarationError
from sovren_db.redis.declared import load_declarations
from sovren_db.redis.state import KeyFamily, parse_duration

from redis_helpers import REPO, write_project


def test_sovren_declarations_load_and_cover_section_2():
    state = load_declarations(REPO / "redis")
    session = state.families["session"]
    assert (session.pattern, session.pii, session.subject, session.ttl.policy) == (
        "session:{user_id}", True, "user_id", "required")
    assert state.families["analytics_cache"].ttl.max == 3600
    assert state.families["comms_outbox"].groups == ("dispatchers",)
    assert state.families["comms_outbox"].hash_tag == "comms"
    assert all(f.foreign for n, f in state.families.items() if n.startswith(("celery", "kombu")))
    assert {"executive_live", "user_live"} <= set(state.channels)
    assert state.server["maxmemory-policy"] == "volatile-lru"
    assert str(state.sources["families.session"]).endswith("sessions.toml")


def test_a_stream_names_its_subject_in_a_field_and_publishes_it():
    families = load_declarations(REPO / "redis").families
    outbox = families["comms_outbox"]
    assert (outbox.pii, outbox.subject, outbox.subject_field) == (True, "user_id", "userId")
    assert outbox.to_json()["subject_field"] == "userId" and "subject_field" not in families["session"].to_json()
    assert KeyFamily.from_json(outbox.to_json()) == outbox


def test_family_json_round_trip():
    family = load_declarations(REPO / "redis").families["comms_outbox"]
    assert KeyFamily.from_json(family.to_json()) == family


def test_a_missing_folder_declares_nothing(tmp_path):
    assert load_declarations(tmp_path / "absent").families == {}


FAMILY = 'pattern = "session:{user_id}"\ntype = "string"\n'


@pytest.mark.parametrize("body, problem", [
    ('pattern = "session:{user id}"\ntype = "string"', "malformed pattern"),
    ('pattern = "session:{u}"\ntype = "document"', "unknown type 'document'"),
    (FAMILY + "pii = true", "names no subject placeholder"),
    (FAMILY + 'pii = true\nsubject = "email"', "subject 'email' is not a placeholder"),
    (FAMILY + 'ttl = "sometimes"', "unknown ttl policy"),
    (FAMILY + 'ttl = { policy = "required", min = "2h", max = "1h" }', "0 < min <= default <= max"),
    (FAMILY + 'ttl = { policy = "none", max = "1h" }', "only apply to policy 'required'"),
    (FAMILY + 'ttl = { max = "soon" }', "is not a duration"),
    (FAMILY + 'hash_tag = "user_id"', "is not the pattern's cluster hash tag"),
    (FAMILY + 'groups = ["g"]', "only for stream families"),
    (FAMILY + "max_elements = -1", "must be a positive integer"),
    (FAMILY + 'max_bytes = "lots"', "or a size such as '64kb'"),
    (FAMILY + 'colour = "red"', "unknown setting 'colour'"),
    (FAMILY + 'renamed_from = "sess:{id}"', "same placeholders"),
    ('pattern = "outbox"\ntype = "stream"\npii = true\nsubject = "user_id"', "name the field holding it"),
    ('pattern = "devices"\ntype = "set"\npii = true\nsubject = "user_id"\nsubject_field = "userId"',
     "subject_field is for stream, hash, string families, not set"),
    ('pattern = "outbox"\ntype = "stream"\nsubject_field = "userId"', "must be pii = true with a subject"),
    ('pattern = "outbox"\ntype = "stream"\npii = true\nsubject = "user_id"\nsubject_field = 3',
     "subject_field must be a field name"),
])
def test_family_errors_name_file_and_entry(tmp_path, body, problem):
    root = write_project(tmp_path, {"bad.toml": f"[families.session]\n{body}\n"})
    with pytest.raises(DeclarationError) as caught:
        load_declarations(root / "redis")
    message = str(caught.value)
    assert problem in message
    assert message.startswith(f"{root / 'redis' / 'bad.toml'} at families.session: ")
    assert "\n" not in message


def test_overlapping_families_are_refused_with_a_witness(tmp_path):
    root = write_project(tmp_path, {
        "a.toml": '[families.one]\npattern = "cache:{key}"\ntype = "string"\n',
        "b.toml": '[families.two]\npattern = "cache:{kind}"\ntype = "hash"\n',
    })
    with pytest.raises(DeclarationError, match=r"b\.toml at families\.two: .* overlaps families\.one .*'cache:x'"):
        load_declarations(root / "redis")


def test_a_family_may_not_take_the_framework_keys(tmp_path):
    root = write_project(tmp_path, {"a.toml": '[families.mine]\npattern = "{{sovren-db}}:{x}"\ntype = "hash"\n'})
    with pytest.raises(DeclarationError, match="overlaps families.sovren_db_ledger"):
        load_declarations(root / "redis")


def test_overlapping_channels_and_duplicates_and_bad_files(tmp_path):
    channels = write_project(tmp_path / "c", {"c.toml": '[channels.a]\npattern = "live:{x}"\n'
                                                        '[channels.b]\npattern = "live:{y}"\n'})
    with pytest.raises(DeclarationError, match="channels.b: pattern 'live:{y}' overlaps channels.a"):
        load_declarations(channels / "redis")
    twice = write_project(tmp_path / "d", {"a.toml": f"[families.s]\n{FAMILY}", "b.toml": f"[families.s]\n{FAMILY}"})
    with pytest.raises(DeclarationError, match=r"b\.toml at families\.s: is declared twice \(first in .*a\.toml\)"):
        load_declarations(twice / "redis")
    broken = write_project(tmp_path / "e", {"x.toml": "[families.s\n"})
    with pytest.raises(DeclarationError, match=r"x\.toml: is not valid TOML"):
        load_declarations(broken / "redis")
    stray = write_project(tmp_path / "f", {"x.toml": "[keys.s]\n"})
    with pytest.raises(DeclarationError, match="at keys: unknown table"):
        load_declarations(stray / "redis")


def test_server_expectations_must_agree_across_files(tmp_path):
    root = write_project(tmp_path, {"a.toml": '[server]\nmaxmemory-policy = "volatile-lru"\n',
                                    "b.toml": '[server]\nmaxmemory-policy = "allkeys-lru"\n'})
    with pytest.raises(DeclarationError, match="b.toml at server: maxmemory-policy is expected as 'volatile-lru'"):
        load_declarations(root / "redis")


@pytest.mark.parametrize("text, seconds", [(30, 30), ("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800),
                                           ("1w", 604800), ("1500ms", 1)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


def test_bad_durations():
    for bad in ("soon", True, -1, "5y"):
        with pytest.raises(ValueError):
            parse_duration(bad)
