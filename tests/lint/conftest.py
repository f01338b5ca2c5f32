"""A project copy per test (declarations, revisions, lint.toml) and a way to add revisions to it."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from sovren_db.cli.main import cli
from tests.integration.conftest import copy_project

from alembic.script import ScriptDirectory

# The head of the repository's chain: the revisions a test adds come after it, and lint looks at those only.
_SCRIPT = ScriptDirectory(str(Path(__file__).resolve().parents[2] / "migrations"))
INITIAL = _SCRIPT.get_current_head()
CHAIN = [s.revision for s in reversed(list(_SCRIPT.walk_revisions()))]   # the repository's revisions, oldest first
HEAD = INITIAL
TEMPLATE = '''"""{doc}"""
from alembic import op
import sqlalchemy as sa

revision = {rev!r}
down_revision = {down!r}
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    pass
'''


class LintProject:
    def __init__(self, root: Path):
        self.root = root
        self.head = HEAD
        self.added = 0

    def add_revision(self, body: str, *, rev: str | None = None, doc: str = "change", comment: str = "") -> Path:
        """Write a revision after the current head; ``body`` is upgrade()'s code (not indented)."""
        self.added += 1
        rev = rev or f"a{self.added:011d}"
        code = textwrap.indent(textwrap.dedent(body).strip(), "    ")
        text = TEMPLATE.format(doc=doc, rev=rev, down=self.head, body=code)
        if comment:
            text = text.replace("def upgrade", f"{comment}\n\n\ndef upgrade", 1)
        path = self.versions / f"{rev}_{doc.replace(' ', '_')}.py"
        path.write_text(text)
        self.head = rev
        return path

    @property
    def versions(self) -> Path:
        return self.root / "migrations" / "versions"

    def lint(self, *args: str):
        return CliRunner().invoke(cli, ["lint", "--base", HEAD, *args], catch_exceptions=False)


def line_of(path: Path, needle: str) -> int:
    """The 1-based line of ``path`` holding ``needle`` (where a finding must point)."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


@pytest.fixture
def lint_project(tmp_path: Path, repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> LintProject:
    """The repository's project copied, its lint.toml included, no server configured."""
    root = copy_project(repo_root, tmp_path / "project")
    shutil.copy2(repo_root / "lint.toml", root / "lint.toml")
    for var in ("CI", "POSTGRES_URL", "MONGO_URL", "REDIS_URL", "SOVREN_ENV", "SOVREN_DB_STORES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(root)
    return LintProject(root)
