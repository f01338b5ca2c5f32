"""doctor's MongoDB judgements on server-shaped replies (no mongod on this machine; see DEVELOPERS.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pymongo.errors import OperationFailure

from sovren_db.doctor.model import Examination
from sovren_db.doctor.mongo import (_reading, judge_balancer, judge_chunks, judge_index_stats, judge_operations,
                                    judge_page_faults, page_fault_rate)
from sovren_db.doctor.thresholds import Thresholds
from sovren_db.mongo.declared import load_declared
from tests.doctor import mongo_doctor_replies as r

REPO = Path(__file__).resolve().parents[2]
LIMITS = Thresholds()


@pytest.fixture(scope="module")
def declared():
    return load_declared(REPO / "mongo").collections


def _values(exam: Examination, name: str) -> list[float]:
    return [s.value for s in exam.samples if s.name == name]


def test_page_faults_from_two_samples_against_h4():
    rate = page_fault_rate(r.server_status(3_600_000, 10_000), r.server_status(3_602_000, 14_000))
    assert rate == 2000.0
    exam = Examination("mongo")
    judge_page_faults(rate, exam, LIMITS)
    assert exam.findings[0].code == "mongo-page-faults" and "above 1000/s" in exam.findings[0].message
    calm = Examination("mongo")
    judge_page_faults(page_fault_rate(r.server_status(1000, 5), r.server_status(2000, 600)), calm, LIMITS)
    assert calm.findings == [] and _values(calm, "mongo_page_faults_per_second") == [595.0]


def test_long_operations_and_scans_on_indexed_shapes_name_fields_never_values(declared):
    reply = r.current_op_reply(
        r.current_op(75, "COLLSCAN", {"userId": "5eed-alice", "status": "failed"}),
        r.current_op(2, "IXSCAN { userId: 1, timestamp: -1 }", {"userId": "5eed-bob"}, opid=48214),
        r.current_op(3, "COLLSCAN", {"subject": "hello"}, opid=48215))
    exam = Examination("mongo")
    judge_operations(reply, declared, "sovren_ai", exam, LIMITS)
    by_code = {f.code: f for f in exam.findings}
    assert "running for 75 s" in by_code["mongo-long-operation"].message
    scan = by_code["mongo-collection-scan"]
    assert scan.object == "operation 48213 (query on sovren_ai.communications)"
    assert "declared index userId_" in scan.message and "(fields userId, status)" in scan.message
    text = " ".join(f.sentence() for f in exam.findings)
    assert "alice" not in text and "failed" not in text.replace("failed_by", "")
    assert _values(exam, "mongo_long_operations") == [1] and _values(exam, "mongo_collection_scans") == [1]


def test_declared_indexes_unused_since_start_are_warnings(declared):
    spec = declared["communications"]
    stats = [r.index_stats(index.name, dict(index.key), 0 if index.name == "userId_1_messageId_1" else 40)
             for index in spec.indexes]
    exam = Examination("mongo")
    assert judge_index_stats("communications", stats, spec, exam) == 1
    assert exam.findings[0].object == "index userId_1_messageId_1 on communications"
    assert exam.findings[0].severity == "warning"


def test_balancer_off_and_chunks_spread_within_a_zone():
    exam = Examination("mongo")
    judge_balancer(r.BALANCER_OFF, exam)
    judge_balancer(r.BALANCER_ON, Examination("mongo"))
    chunks = (r.chunk_counts(r.COMMUNICATIONS_UUID, shard_eu=40, shard_eu2=4, shard_us=12)
              + r.chunk_counts(r.EXECUTIVES_UUID, shard_eu=3, shard_eu2=2, shard_us=1))
    judge_chunks(chunks, r.COLLECTIONS, r.SHARDS, exam, LIMITS)
    by_code = {f.code: f for f in exam.findings}
    assert "sh.startBalancer()" in by_code["mongo-balancer"].message
    spread = [f for f in exam.findings if f.code == "mongo-chunk-spread"]
    assert [f.object for f in spread] == ["collection sovren_ai.communications in zone eu"]
    assert "shard_eu 40, shard_eu2 4" in spread[0].message and _values(exam, "mongo_chunk_imbalance") == [36]


def test_a_missing_privilege_names_the_role():
    exam = Examination("mongo")
    with _reading("serverStatus", exam):
        raise OperationFailure("not authorized on admin to execute command { serverStatus: 1 }", code=13,
                               details={"ok": 0.0, "errmsg": "not authorized", "code": 13, "codeName": "Unauthorized"})
    assert exam.findings[0].code == "unexamined" and "clusterMonitor" in exam.findings[0].message
