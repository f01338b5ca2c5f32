"""A few seeded crash trials (scripts/crash_trials.py runs 50 and more): sovren-db killed with -9 at a
random point of a migrate, and of a downgrade followed by a migrate; the stores then converge."""

from __future__ import annotations

import importlib.util
import random
import sys

import pytest

from tests.integration.conftest import copy_project

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


def crash_trials(repo_root):
    spec = importlib.util.spec_from_file_location("crash_trials", repo_root / "scripts" / "crash_trials.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind,seed", [("migrate", 11), ("downgrade-migrate", 12)])
def test_a_kill_9_at_a_random_point_converges(repo_root, tmp_path, postgres_server_url, redis_url, kind, seed):
    module = crash_trials(repo_root)
    trials = module.Trials(postgres_server_url, redis_url, copy_project(repo_root, tmp_path / "project"))
    converged, detail = trials.trial(kind, random.Random(seed))
    assert converged, detail
