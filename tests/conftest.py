"""The test harness: real servers started by the project (see sovren_db.testing.fixtures)."""

from pathlib import Path

import pytest

pytest_plugins = ["sovren_db.testing.fixtures"]

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
