"""``sovren-db --help`` lists every command from the table in cli/main.py, importing none of them."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from sovren_db.cli.main import COMMANDS, cli


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_the_listed_help_is_the_command_s_own(name):
    command = cli.get_command(click.Context(cli), name)
    assert COMMANDS[name][1] == command.get_short_help_str(limit=1000), f"update COMMANDS[{name!r}]"


def test_group_help_imports_no_command_module():
    probe = (
        "import sys\n"
        "from sovren_db.cli.main import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('sovren_db.cli.') and m not in "
        "('sovren_db.cli.main', 'sovren_db.cli.options')))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    lines = result.stdout.strip().splitlines()
    assert lines[-1] == "[]"
    listed = [line.split()[0] for line in lines if line.startswith("  ") and line.split()[0] in COMMANDS]
    assert listed == sorted(COMMANDS)
