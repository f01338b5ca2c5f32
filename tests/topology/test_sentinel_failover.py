"""Sentinel failovers that lose writes the master acknowledged, in the middle of migrate, seed and
erase: each stops in one sentence, and a plain rerun (no --resync) converges on the promoted replica.

The replica is cut off its master first (:func:`isolate_replica`), so everything the master
acknowledges afterwards is lost when it is killed with kill -9 and Sentinel promotes the replica.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time

import pytest
import redis as redis_py

from sovren_db.core.config import load_settings
from sovren_db.core.errors import StoreUnavailable
from sovren_db.seeds import engine
from sovren_db.seeds.redis_load import KeyWriter
from tests.integration.chain_moves import FAMILY, FAMILY_V2, LEDGER, POSITION, REGISTRY, STREAM
from tests.integration.conftest import add_revision
from tests.seeds.helpers import redis_snapshot
from tests.topology import conftest as topology
from tests.topology.conftest import isolate_replica, promoted
from tests.topology.test_sentinel import run

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
PROBE_2, PROBE_3 = "fa1100000002", "fa1100000003"
WRITE = KeyWriter.write
KEYS = 3000   # probe keys whose TTL a revision backfills at 1000 a second: a step of about 3 s


def client(group, port: int | None = None) -> redis_py.Redis:
    return redis_py.Redis(port=port or group.master.port, password=group.password, decode_responses=True)


def replicated(group) -> None:
    assert client(group).execute_command("WAIT", 1, 5000) == 1


def test_a_failover_mid_migrate_that_loses_a_committed_revision_converges_on_a_plain_rerun(
        sentinel_project, sentinel_group):
    group = sentinel_group
    assert run("migrate").exit_code == 0
    head = client(group).get(POSITION)
    replicated(group)
    add_revision(sentinel_project, PROBE_2,
                 f"    op.redis_declare_family(family={FAMILY!r})\n"
                 "    op.redis_set_config(name='maxmemory-samples', value='7', previous='5')\n"
                 f"    op.redis_create_group(key={STREAM!r}, group='readers')")
    add_revision(sentinel_project, PROBE_3,
                 "    from tests.topology.conftest import fire_failover\n"
                 "    fire_failover()\n"
                 f"    op.redis_declare_family(family={FAMILY_V2!r}, previous={FAMILY!r})")
    isolate_replica(group)
    topology.ARMED.append(group)

    # PROBE_2 commits in Postgres and on the master only; PROBE_3 starts, the master dies, redis-py's
    # Sentinel pool reconnects to the promoted replica, which misses PROBE_2: the run stops there
    killed = run("migrate")
    assert killed.exit_code == 2, killed.output
    assert "the master changed during the run" in killed.output and "Traceback" not in killed.output
    new = client(group, group.replica.port)
    assert new.get(POSITION) == head and not new.hexists(REGISTRY, "family:probe")

    again = run("migrate")
    assert again.exit_code == 0, again.output
    assert f"applied {PROBE_3}" in again.output and f"redis: brought from {head}" in again.output
    assert new.get(POSITION) == PROBE_3
    assert '"description": "A probe, described again."' in new.hget(REGISTRY, "family:probe")
    assert new.config_get("maxmemory-samples") == {"maxmemory-samples": "7"}
    assert [g["name"] for g in new.xinfo_groups(STREAM)] == ["readers"]
    assert {k for k in new.hkeys(LEDGER) if k.startswith("fa11")} == {
        f"{PROBE_2}:up:0", f"{PROBE_2}:up:1", f"{PROBE_2}:up:2", f"{PROBE_3}:up:0"}
    status = run("status")
    assert status.exit_code == 0, status.output


@pytest.fixture
def seeded_project(sentinel_project, sentinel_group, monkeypatch):
    assert run("migrate").exit_code == 0
    replicated(sentinel_group)
    monkeypatch.setenv("SOVREN_REDIS_REPLICA_WAIT", "1")
    return sentinel_project


def cut_after_first_batch(monkeypatch, group, fault) -> None:
    """The seed's first key batch reaches the replica; then ``fault`` happens."""
    def once(self, batch):
        written = WRITE(self, batch)
        if not getattr(self, "faulted", False):
            self.faulted = True
            self.finish()
            replicated(group)
            fault(group)
        return written

    monkeypatch.setattr(KeyWriter, "write", once)


@pytest.mark.parametrize("fault", ["replica cut off", "master killed"])
def test_a_failover_mid_seed_converges_on_a_plain_rerun(seeded_project, sentinel_group, monkeypatch, fault):
    group = sentinel_group
    cut_after_first_batch(monkeypatch, group, isolate_replica if fault == "replica cut off" else promoted)
    with pytest.raises(StoreUnavailable) as failed:
        engine.seed(load_settings(seeded_project), "ci")
    if fault == "replica cut off":   # every key written, none recorded: the replica does not have them
        assert "0 of 1 replica(s)" in str(failed.value) and "SOVREN_REDIS_REPLICA_WAIT" in str(failed.value)
        wrote = redis_snapshot(f"redis://:{group.password}@127.0.0.1:{group.master.port}/0")
        promoted(group)
    monkeypatch.setattr(KeyWriter, "write", WRITE)
    new_url = f"redis://:{group.password}@127.0.0.1:{group.replica.port}/0"
    lost = redis_snapshot(new_url)

    again = engine.seed(load_settings(seeded_project), "ci")
    assert again.stores["redis"].state == "seeded" and again.stores["postgres"].state == "already seeded"
    assert redis_snapshot(new_url) != lost
    if fault == "replica cut off":
        assert redis_snapshot(new_url) == wrote
    assert sum(again.stores["redis"].counts.values()) == again.stores["redis"].total > 0
    assert engine.seed(load_settings(seeded_project), "ci").status == "already seeded"


def test_erase_through_sentinel_is_recorded_only_once_a_replica_holds_it(seeded_project, sentinel_group,
                                                                         monkeypatch):
    group = sentinel_group
    assert run("seed", "--profile", "ci").exit_code == 0
    session = next(k for k in client(group).scan_iter("session:5eed*") if k.count(":") == 1)
    subject = session.split(":", 1)[1]
    isolate_replica(group)
    failed = run("erase", "--subject", subject)
    assert failed.exit_code == 2 and "acknowledged the erasure of" in failed.output, failed.output
    promoted(group)   # the replica still holds the subject's keys: the erasure was not recorded done
    assert client(group, group.replica.port).exists(session)

    erased = run("erase", "--subject", subject)
    assert erased.exit_code == 0, erased.output
    assert not client(group, group.replica.port).exists(session)
    verified = run("erase", "--verify", "--subject", subject)
    assert verified.exit_code == 0, verified.output


@pytest.mark.parametrize("trial,cut_off", [(0, False), (1, True), (2, True)])
def test_kill_9_of_the_master_at_a_random_point_of_migrate_then_a_plain_rerun_converges(
        sentinel_project, sentinel_group, trial, cut_off):
    group = sentinel_group
    assert run("migrate").exit_code == 0
    client(group).mset({f"probe:{i}": "x" for i in range(KEYS)})
    replicated(group)
    add_revision(sentinel_project, PROBE_2,
                 f"    op.redis_declare_family(family={FAMILY!r})\n"
                 "    op.redis_set_config(name='maxmemory-samples', value='7', previous='5')\n"
                 f"    op.redis_create_group(key={STREAM!r}, group='readers')")
    add_revision(sentinel_project, PROBE_3, f"    op.redis_backfill_ttl(family={FAMILY!r}, ttl=3600)")
    child = subprocess.Popen([sys.executable, "-m", "sovren_db.cli.main", "migrate", "--redis-rate", "1000",
                              "--redis-batch", "100"], cwd=sentinel_project, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 60
    while not client(group).hexists(LEDGER, f"{PROBE_2}:up:0"):   # the run reached the probes
        assert time.monotonic() < deadline and child.poll() is None, child.communicate()[0]
        time.sleep(0.05)
    if cut_off:   # what the master acknowledges from here on is lost with it (cut off only briefly:
        isolate_replica(group)   # Sentinel does not promote a replica whose link is down for long)
    time.sleep(random.Random(trial).uniform(0, KEYS / 1000))   # somewhere in the TTL backfill, or after it
    promoted(group)
    output = child.communicate(timeout=120)[0]
    assert child.returncode in (0, 2) and "Traceback" not in output, output

    again = run("migrate")
    assert again.exit_code == 0, again.output
    new = client(group, group.replica.port)
    assert new.get(POSITION) == PROBE_3 and new.hexists(REGISTRY, "family:probe")
    assert new.config_get("maxmemory-samples") == {"maxmemory-samples": "7"}
    assert [g["name"] for g in new.xinfo_groups(STREAM)] == ["readers"]
    ttls = {new.ttl(f"probe:{i}") for i in range(0, KEYS, 7)}
    assert min(ttls) > 0, sorted(ttls)[:5]
    assert run("status").exit_code == 0
