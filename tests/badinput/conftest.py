"""The bad-input corpus: every case must be refused with exit 2, one sentence, no traceback, no secret.

``refused(result, fmt)`` is the one check every case goes through: the format of the refusal
(text: one ``error:`` line on stderr; json: one JSON document on stdout whose ``error`` names its
kind and message; github: an ``::error`` annotation) and the absence of every secret given.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sovren_db.cli.main import cli
from tests.integration.conftest import copy_project, project  # noqa: F401  (same per-test project)

FORMATS = ("text", "json", "github")
SUBJECT = "5eed0000-0000-8000-8000-000000000001"


def run(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def refused(result: Result, fmt: str = "text", secrets: tuple[str, ...] = ()) -> str:
    """Assert ``result`` is a clean refusal in ``fmt``; return its sentence."""
    everything = result.stdout + result.stderr
    assert result.exit_code == 2, everything
    assert "Traceback" not in everything, everything
    for secret in secrets:
        assert secret not in everything, f"{secret!r} printed: {everything}"
    if fmt == "json":
        document = json.loads(result.stdout)
        error = document["error"]
        assert {"kind", "message", "store", "file"} <= set(error), error
        assert document["exit_code"] == 2
        sentence = error["message"]
    elif fmt == "github":
        errors = [line for line in result.stdout.splitlines() if line.startswith("::error")]
        assert len(errors) == 1, result.stdout
        sentence = errors[0].split("::", 2)[2]
    else:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        sentence = lines[0].removeprefix("error: ")
    assert "\n" not in sentence.strip() and sentence.rstrip().endswith((".", ")")), sentence
    return sentence


@pytest.fixture
def bare(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project copied, no server configured, commands run from its root."""
    root = copy_project(repo_root, tmp_path / "project")
    for var in ("CI", "POSTGRES_URL", "MONGO_URL", "REDIS_URL", "SOVREN_ENV", "SOVREN_DB_STORES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(root)
    return root
