"""No import cycles among the modules that had hidden ones (imports inside functions count too)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "sovren_db"
PAIRS = [  # each once closed a cycle through an import inside a function
    ("sovren_db.commands", "sovren_db.resync"),
    ("sovren_db.core.runtime", "sovren_db.core.guard"),
    ("sovren_db.core.runtime", "sovren_db.core.storeops"),
    ("sovren_db.core.errors", "sovren_db.core.urls"),
]
LOWER = ["sovren_db.core.context", "sovren_db.core.redaction", "sovren_db.offline"]


def module_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imported(module: str, path: Path, node: ast.AST, files: dict[str, Path]) -> list[str]:
    """The sovren_db modules one import statement names (``from x import y``: x.y when it is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = module.split(".")[: None if path.name == "__init__.py" else -1]
    target = ".".join(base[: len(base) - node.level + 1] + [node.module or ""]).rstrip(".") if node.level \
        else node.module or ""
    return [f"{target}.{alias.name}" if f"{target}.{alias.name}" in files else target for alias in node.names]


def import_graph() -> dict[str, set[str]]:
    """Every import that can run (those under ``if TYPE_CHECKING:`` never do)."""
    files, graph = module_files(), {}
    for module, path in files.items():
        tree = ast.parse(path.read_text())
        typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and "TYPE_CHECKING" in ast.unparse(block.test) for n in ast.walk(block)}
        graph[module] = {name for node in ast.walk(tree) if id(node) not in typing_only
                         for name in imported(module, path, node, files) if name in files and name != module}
    return graph


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in graph[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


@pytest.mark.parametrize("pair", PAIRS, ids="<->".join)
def test_the_pair_is_no_cycle(pair):
    graph = import_graph()
    first, second = pair
    assert not (second in reachable(graph, first) and first in reachable(graph, second)), pair


def test_the_lower_layers_import_nothing_above_them():
    graph = import_graph()
    for module in LOWER:
        assert module not in reachable(graph, module), f"{module} is in a cycle"


def test_the_graph_sees_an_import_inside_a_function(tmp_path):
    graph = import_graph()
    assert "sovren_db.plugin" in graph["sovren_db.resync"]  # imported inside a function there


@pytest.mark.parametrize("module", sorted({m for pair in PAIRS for m in pair} | set(LOWER)))
def test_each_module_imports_alone_in_a_fresh_interpreter(module):
    done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
