"""SOVREN_REDIS_REPLICA_WAIT: how long seed and erase wait for Redis replicas (redis/replication.py)."""

from __future__ import annotations

import pytest

from sovren_db.core.errors import ConfigError
from sovren_db.redis.replication import DEFAULT_WAIT, wait_seconds


@pytest.mark.parametrize("raw,seconds", [("", DEFAULT_WAIT), ("2.5", 2.5), ("0", 0.0)])
def test_the_bound_is_read_in_seconds(monkeypatch, raw, seconds):
    monkeypatch.setenv("SOVREN_REDIS_REPLICA_WAIT", raw)
    assert wait_seconds() == seconds


@pytest.mark.parametrize("raw", ["soon", "-1"])
def test_a_bound_that_is_not_seconds_is_one_sentence_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv("SOVREN_REDIS_REPLICA_WAIT", raw)
    with pytest.raises(ConfigError, match=rf"^SOVREN_REDIS_REPLICA_WAIT '{raw}' must be a number of seconds, 0 or more\.$"):
        wait_seconds()
