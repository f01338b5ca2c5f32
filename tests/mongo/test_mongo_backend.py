"""MongoBackend without a server: configuration and unreachable servers give one sentence."""

from __future__ import annotations

import pytest
from mongo_support import make_settings
from pymongo.errors import OperationFailure

from sovren_db.core.errors import ConfigError, StoreUnavailable
from sovren_db.core.stores import backend_class
from sovren_db.mongo.backend import MongoBackend, unavailable_reason
from sovren_db.mongo.checks import check_findings, violation_finding


def test_the_core_finds_the_mongo_backend():
    assert backend_class("mongo") is MongoBackend


def test_no_url_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="MONGO_URL is not set"):
        MongoBackend(make_settings(tmp_path)).connect()


def test_unreachable_server_is_one_sentence_without_the_password(tmp_path, monkeypatch):
    monkeypatch.setattr(MongoBackend, "server_timeout_ms", 200)
    backend = MongoBackend(make_settings(tmp_path, "mongodb://sovren:pw-123@127.0.0.1:1/sovren_ai"))
    with pytest.raises(StoreUnavailable) as caught:
        backend.connect()
    message = str(caught.value)
    assert message.startswith(
        "mongo server at mongodb://sovren:***@127.0.0.1:1/sovren_ai is not usable: "
        "no server answered within 0.2s"
    )
    assert "pw-123" not in message and "\n" not in message
    assert backend.client is None


def test_authentication_failure_reason():
    failure = OperationFailure(
        "Authentication failed.",
        18,
        {"ok": 0.0, "errmsg": "Authentication failed.", "code": 18, "codeName": "AuthenticationFailed"},
    )
    assert (
        unavailable_reason(failure, 3000)
        == "authentication failed (check the user and password of MONGO_URL)"
    )


def test_check_findings_needs_data_and_a_backend(tmp_path):
    settings = make_settings(tmp_path)
    assert check_findings(settings, None, data=True) == []
    assert check_findings(settings, object(), data=False) == []


def test_violation_finding_names_collection_count_and_ids():
    finding = violation_finding("communications", 2, ["a", 7])
    assert (finding.store, finding.object, finding.code) == (
        "mongo",
        "collection communications",
        "invalid-documents",
    )
    assert finding.message == '2 document(s) violate the current validator (e.g. _id "a", 7)'
