"""The personal-data map and pii_findings, from the declarations alone (no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sovren_db.compliance.coverage import looks_personal, pii_findings
from sovren_db.compliance.erase import erase
from sovren_db.compliance.pii import load_pii_map
from sovren_db.core.config import load_settings
from sovren_db.core.errors import ConfigError, DeclarationError, Refused
from sovren_db.postgres.state import PersonalData

from .conftest import copy_project

ALL_STORES = {"SOVREN_DB_STORES": "postgres,mongo,redis"}


@pytest.fixture
def copy(tmp_path: Path, repo_root: Path) -> Path:
    return copy_project(repo_root, tmp_path / "project")


def settings_of(root: Path, stores: str = "postgres,mongo,redis"):
    return load_settings(root, environ={"SOVREN_DB_STORES": stores})


def append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


def codes(findings) -> dict[str, str]:
    return {f.object: f.code for f in findings}


def test_sovren_declarations_cover_every_store_and_erase_children_first(copy):
    pii = load_pii_map(settings_of(copy))
    order = [t.table for t in pii.tables]
    assert order[-1] == "users"
    assert order.index("payments") < order.index("transactions") < order.index("subscriptions")
    assert [r.table for r in pii.retained] == ["audit_log"]
    assert {c.collection for c in pii.collections} == {"executives", "communications", "scenario_simulations",
                                                      "analytics_payloads"}
    assert {f.name for f in pii.families} == {"session", "session_devices", "ratelimit_user", "comms_outbox",
                                              "comms_dead", "comms_status", "executive_cache", "analytics_cache"}
    assert [e.key for e in pii.encrypted] == ["payments.provider_token"]
    assert pii_findings(settings_of(copy)) == []


def test_an_undeclared_pii_column_and_an_uncovered_table_are_findings(copy):
    append(copy / "postgres" / "tables.py", '''
newsletter_signups = Table(
    "newsletter_signups", metadata,
    Column("signup_id", UUID(as_uuid=True), primary_key=True),
    Column("user_id", UUID(as_uuid=True), ForeignKey("users.user_id", name="newsletter_signups_user_id_fkey")),
    Column("email", VARCHAR(255)),
)
leads = Table(
    "leads", metadata,
    Column("lead_id", UUID(as_uuid=True), primary_key=True),
    Column("phone", VARCHAR(40)),
    Column("homeAddress", Text),
)
''')
    findings = pii_findings(settings_of(copy, "postgres"))
    found = codes(findings)
    assert found["table newsletter_signups"] == "pii-uncovered"
    assert found["column newsletter_signups.email"] == "pii-undeclared"
    assert found["column leads.phone"] == "pii-undeclared"
    assert found["column leads.homeAddress"] == "pii-undeclared"
    assert "table leads" not in found  # no user reference: a warning per column only
    severities = {f.object: f.severity for f in findings}
    assert severities["table newsletter_signups"] == "error" and severities["column leads.phone"] == "warning"
    assert all(f.file == "postgres" for f in findings)


def test_a_table_with_a_user_id_but_no_foreign_key_is_uncovered(copy):
    append(copy / "postgres" / "tables.py", '''
exports = Table("exports", metadata, Column("export_id", BigInteger, primary_key=True), Column("user_id", UUID))
''')
    assert codes(pii_findings(settings_of(copy, "postgres")))["table exports"] == "pii-uncovered"


def test_a_personal_column_left_by_anonymisation_or_retention_has_no_erasure_rule(copy):
    privacy = copy / "postgres" / "privacy.py"
    text = privacy.read_text().replace('columns=("parameters", "result"), erase="anonymise"',
                                       'columns=("parameters", "result", "confidence"), erase="anonymise"')
    text = text.replace('PersonalData("audit_log", "user_id", erase="retain"',
                        'PersonalData("audit_log", "user_id", columns=("query",), erase="retain"')
    privacy.write_text(text)
    found = codes(pii_findings(settings_of(copy, "postgres")))
    assert found == {"column operations.confidence": "pii-no-erasure", "column audit_log.query": "pii-no-erasure"}


def test_mongo_collection_naming_a_user_without_erasure_rule_is_a_finding(copy):
    (copy / "mongo" / "notes.schema.json").write_text(
        '{"bsonType": "object", "properties": {"userId": {"bsonType": "string"}, "email": {"bsonType": "string"}}}')
    (copy / "mongo" / "contacts.schema.json").write_text(
        '{"bsonType": "object", "properties": {"recipient": {"bsonType": "string"}}}')
    found = codes(pii_findings(settings_of(copy)))
    assert found["collection notes"] == "pii-uncovered"
    assert found["field notes.email"] == "pii-undeclared"
    assert found["field contacts.recipient"] == "pii-undeclared"


def test_redis_families_that_erasure_would_not_reach_are_findings(copy):
    (copy / "redis" / "extra.toml").write_text('''
[families.user_prefs]
pattern = "prefs:{user_id}"
type = "hash"
ttl = "none"

[families.visitor]
pattern = "visitor:{ip}"
type = "string"
ttl = "none"
pii = true
subject = "ip"
''')
    found = codes(pii_findings(settings_of(copy, "postgres,redis")))
    assert found == {"key family user_prefs": "pii-uncovered", "key family visitor": "pii-no-erasure"}


def test_erase_refuses_while_a_place_has_no_erasure_rule(copy):
    append(copy / "postgres" / "tables.py", '''
exports = Table("exports", metadata, Column("export_id", BigInteger, primary_key=True), Column("user_id", UUID))
''')
    settings = load_settings(copy, environ={"SOVREN_DB_STORES": "postgres"})  # no server is reached
    with pytest.raises(Refused, match="table exports: has a user_id column"):
        erase(settings, "5eed0000-0000-8000-8000-000000000001")


@pytest.mark.parametrize("replace, problem", [
    (('columns=("username"', 'columns=("nickname"'), "column 'nickname' is not a column of users"),
    (('anonymise={"user_id": "NULL", ', 'anonymise={'), "must clear the subject column 'user_id'"),
    (('PersonalData("subscriptions", "user_id")', 'PersonalData("subscriptions", "user_id", erase="anonymise", '
      'anonymise={"user_id": "NULL"})'), "subscriptions.user_id is NOT NULL"),
    (('PersonalData("users", "user_id",', 'PersonalData("users", "user_id", erase="retain", reason="x",'),
     "no PersonalData names the data subject's own table"),
])
def test_inconsistent_declarations_are_declaration_errors(copy, replace, problem):
    privacy = copy / "postgres" / "privacy.py"
    assert replace[0] in privacy.read_text()
    privacy.write_text(privacy.read_text().replace(*replace))
    with pytest.raises(DeclarationError, match=problem):
        load_pii_map(settings_of(copy, "postgres"))


@pytest.mark.parametrize("text, problem", [
    ('[chats]\nsubject = "userId"\n', "mongo/privacy.cfg at chats: is not a declared collection"),
    ('[executives]\nsubject = "ownerId"\n', "field 'ownerId' is not a property"),
    ('[executives]\nerase = "anonymise"\n', "must be one of delete"),
    ('[executives]\nkeep = true\n', "unknown setting 'keep'"),
])
def test_mongo_marks_are_checked_against_the_collections(copy, text, problem):
    (copy / "mongo" / "privacy.cfg").write_text(text)
    with pytest.raises(DeclarationError, match=problem):
        load_pii_map(settings_of(copy))


def test_personal_data_declarations_check_themselves():
    with pytest.raises(ValueError, match="needs a reason"):
        PersonalData("audit_log", "user_id", erase="retain")
    with pytest.raises(ValueError, match="erase must be one of"):
        PersonalData("users", "user_id", erase="shred")
    with pytest.raises(ValueError, match="go with erase='anonymise' only"):
        PersonalData("users", "user_id", anonymise={"email": "NULL"})
    rule = PersonalData("operations", "user_id", erase="anonymise", anonymise={"user_id": "NULL", "result": "NULL"})
    assert rule.anonymise == (("result", "NULL"), ("user_id", "NULL")) and rule.key == "operations"


def test_subject_ids_are_checked_and_canonical(copy):
    pii = load_pii_map(settings_of(copy, "postgres"))
    assert pii.parse_subject(" 5EED0000-0000-8000-8000-00000000000A ") == "5eed0000-0000-8000-8000-00000000000a"
    with pytest.raises(ConfigError, match="must be a UUID"):
        pii.parse_subject("session:1")


@pytest.mark.parametrize("name, personal", [
    ("email", True), ("billing_email", True), ("homeAddress", True), ("first_name", True), ("ip_address", True),
    ("table_name", False), ("provider", False), ("created_at", False), ("emailVerified", False),
])
def test_names_that_look_like_personal_data(name, personal):
    assert looks_personal(name) is personal


def without_personal_data(copy: Path) -> Path:
    privacy = copy / "postgres" / "privacy.py"
    text = privacy.read_text()
    start = text.index("personal_data = [")
    privacy.write_text(text[:start] + "personal_data = []\n\n" + text[text.index("encrypted = ["):])
    return copy


def test_a_project_declaring_no_personal_data_is_valid(copy):
    """No PersonalData is a valid project (issue 12 part 8): coverage finds no error, erase says nothing is declared."""
    settings = settings_of(without_personal_data(copy), "postgres")
    findings = pii_findings(settings)
    assert [f for f in findings if f.severity == "error"] == []
    assert {f.code for f in findings} == {"pii-undeclared"}  # columns named like personal data are still shown
    outcome = erase(settings, "5eed0000-0000-8000-8000-000000000001")
    assert outcome.exit_code == 0 and outcome.data["status"] == "nothing declared"
    assert outcome.lines[0].endswith("postgres declares no personal data (no PersonalData): there is nothing to erase.")
