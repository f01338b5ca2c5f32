"""Index build settings and the progress line."""

from __future__ import annotations

import pytest

from sovren_db.core.config import load_settings
from sovren_db.core.errors import ConfigError
from sovren_db.postgres.indexbuild import describe_progress


def test_progress_says_the_phase_and_how_much_is_done():
    assert describe_progress("ix", "ops_2026_01", ("building index: scanning table", 300, 1200, 0, 0)) == \
        "building index ix on ops_2026_01: building index: scanning table, 25% of 1,200 blocks"
    assert describe_progress("ix", "ops", ("building index: loading tuples in tree", 0, 0, 50, 200)) == \
        "building index ix on ops: building index: loading tuples in tree, 25% of 200 tuples"
    assert describe_progress("ix", "ops", ("waiting for old snapshots", 0, 0, 0, 0)) == \
        "building index ix on ops: waiting for old snapshots"


@pytest.mark.parametrize("line, message", [
    ("index_build_workers = -1", "index_build_workers = -1 must be a whole number"),
    ("index_build_workers = \"two\"", "index_build_workers = 'two' must be a whole number"),
    ("index_build_memory = \"lots\"", "index_build_memory = 'lots' is not a memory size"),
])
def test_bad_index_build_keys_name_file_and_key(tmp_path, line, message):
    (tmp_path / "pyproject.toml").write_text(f"[tool.sovren-db]\n{line}\n")
    with pytest.raises(ConfigError, match=r"pyproject.toml: \[tool.sovren-db\] " + message):
        load_settings(tmp_path, environ={})


def test_index_build_keys_are_read(tmp_path):
    root = tmp_path
    (root / "pyproject.toml").write_text('[tool.sovren-db]\nindex_build_workers = 2\nindex_build_memory = "1 GB"\n')
    settings = load_settings(root, environ={})
    assert (settings.index_build_workers, settings.index_build_memory) == (2, "1GB")
    (root / "pyproject.toml").write_text("[tool.sovren-db]\n")
    settings = load_settings(root, environ={})
    assert (settings.index_build_workers, settings.index_build_memory) == (0, None)
