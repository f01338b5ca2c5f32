"""Which locks a DDL statement takes (the manual's table), durations, and the conflict matrix."""

from __future__ import annotations

import pytest

from sovren_db.core.errors import ConfigError
from sovren_db.postgres.lockwait import (ACCESS_EXCLUSIVE, ACCESS_SHARE, ROW_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE,
                                         SHARE_UPDATE_EXCLUSIVE, Blocker, LockPolicy, blocks_workload,
                                         duration_seconds, lock_targets)


@pytest.mark.parametrize("sql, expected", [
    ("ALTER TABLE operations ADD CONSTRAINT f FOREIGN KEY(account_id) REFERENCES accounts (account_id) NOT VALID",
     [("operations", SHARE_ROW_EXCLUSIVE), ("accounts", SHARE_ROW_EXCLUSIVE)]),
    ("ALTER TABLE operations ADD COLUMN note text", [("operations", ACCESS_EXCLUSIVE)]),
    ("-- squawk-ignore prefer-robust-stmts\nALTER TABLE operations VALIDATE CONSTRAINT f",
     [("operations", SHARE_UPDATE_EXCLUSIVE)]),
    ('ALTER TABLE ONLY public."Ops" ATTACH PARTITION ops_2026 FOR VALUES FROM (1) TO (2)',
     [('public."Ops"', SHARE_UPDATE_EXCLUSIVE), ("ops_2026", ACCESS_EXCLUSIVE)]),
    ("ALTER TABLE ops DETACH PARTITION ops_2020", [("ops", ACCESS_EXCLUSIVE), ("ops_2020", ACCESS_EXCLUSIVE)]),
    ("ALTER TABLE ops DETACH PARTITION ops_2020 CONCURRENTLY",
     [("ops", SHARE_UPDATE_EXCLUSIVE), ("ops_2020", SHARE_UPDATE_EXCLUSIVE)]),
    ("ALTER TABLE IF EXISTS users ENABLE ROW LEVEL SECURITY", [("users", ACCESS_EXCLUSIVE)]),
    ("ALTER TABLE users RENAME COLUMN a TO b", [("users", ACCESS_EXCLUSIVE)]),
    ("CREATE UNIQUE INDEX IF NOT EXISTS ix ON ONLY operations (a)", [("operations", SHARE)]),
    ("CREATE INDEX CONCURRENTLY IF NOT EXISTS ix ON operations (a)", []),
    ("CREATE TRIGGER t BEFORE INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION f()",
     [("accounts", SHARE_ROW_EXCLUSIVE)]),
    ("DROP TRIGGER IF EXISTS t ON accounts", [("accounts", ACCESS_EXCLUSIVE)]),
    ("CREATE POLICY tenant ON users USING (tenant_id = 1)", [("users", ACCESS_EXCLUSIVE)]),
    ("SELECT 1", []),
    ("INSERT INTO alembic_version VALUES ('x')", []),
])
def test_lock_targets_follow_the_manual(sql, expected):
    assert lock_targets(sql) == expected


def test_only_modes_that_stop_reads_or_writes_are_guarded():
    assert blocks_workload(ACCESS_EXCLUSIVE) and blocks_workload(SHARE_ROW_EXCLUSIVE) and blocks_workload(SHARE)
    assert not blocks_workload(SHARE_UPDATE_EXCLUSIVE) and not blocks_workload(ROW_EXCLUSIVE)
    assert not blocks_workload(ACCESS_SHARE)


@pytest.mark.parametrize("value, seconds", [("4ms", 0.004), ("2.5s", 2.5), ("10min", 600.0), ("1h", 3600.0), (3, 3.0)])
def test_durations(value, seconds):
    assert duration_seconds(value, "k") == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["fast", "-1s", "", True, "5 minutes"])
def test_a_bad_duration_names_its_key(value):
    with pytest.raises(ConfigError, match="latency_budget"):
        duration_seconds(value, "latency_budget")


def test_policy_lock_timeout_is_the_budget_in_ms_and_backoff_is_bounded():
    policy = LockPolicy(attempt=0.004, poll=0.2)
    assert policy.lock_timeout == "4ms"
    assert all(0.002 <= policy.backoff(n) <= 0.2 for n in range(1, 20))


def test_a_blocker_is_described_without_its_query():
    text = Blocker(42, "web", "idle in transaction", 3.04, "accounts", "RowExclusiveLock").describe()
    assert text == "pid 42 (application 'web', idle in transaction, transaction open 3.0 s, " \
                   "holding RowExclusiveLock on accounts)"


def test_a_bad_latency_budget_in_pyproject_names_file_and_key(tmp_path):
    from sovren_db.core.config import load_settings

    (tmp_path / "pyproject.toml").write_text('[tool.sovren-db]\nlatency_budget = "soon"\n')
    with pytest.raises(ConfigError, match=r"pyproject.toml: \[tool.sovren-db\] latency_budget = 'soon' is not"):
        load_settings(tmp_path, environ={})
    (tmp_path / "pyproject.toml").write_text('[tool.sovren-db]\nlatency_budget = "10ms"\n')
    policy = LockPolicy.from_settings(load_settings(tmp_path, environ={}))
    assert policy.lock_timeout == "10ms" and policy.deadline == 300.0
