"""No import cycles inside the layers below the engine (``datasets``, ``models``,
``metrics``), counting imports inside functions too: a lazy import that closes a cycle
is still a cycle (``datasets.interactions`` <-> ``datasets.movielens`` was one)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("datasets", "models", "metrics")


def _module_graph(folder: str) -> dict[str, set[str]]:
    """``module -> modules of the same folder it imports`` (top level and lazy)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).glob("*.py")):
        mod = path.stem
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:  # from .x import y / from . import x
                    targets = [node.module] if node.module else [a.name for a in node.names]
                elif node.level == 0 and node.module and node.module.startswith(f"harness.{folder}."):
                    targets = [node.module.split(".")[2]]
                elif node.level == 0 and node.module == f"harness.{folder}":
                    targets = ["__init__"]
                else:
                    targets = []
                deps.update(t.split(".")[0] for t in targets)
            elif isinstance(node, ast.Import):
                deps.update(a.name.split(".")[2] for a in node.names if a.name.startswith(f"harness.{folder}."))
        graph[mod] = {d for d in deps if (ROOT / folder / f"{d}.py").is_file() and d != mod}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every cycle reachable by depth-first search (as the path that closes it)."""
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == "open":
                found.append(path[path.index(dep):] + [node, dep] if dep in path else [node, dep])
            elif dep not in state:
                visit(dep, path + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_the_cycle_finder_finds_a_two_module_cycle():
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b", "a"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


@pytest.mark.parametrize("folder", LAYERS)
def test_no_import_cycles_within_a_layer(folder):
    graph = _module_graph(folder)
    assert graph, f"no modules found under {folder}/"
    # a package's __init__ re-exports its modules; a module importing the package is the
    # lazy-export pattern, not a cycle between modules
    cycles = _cycles({k: v - {"__init__"} for k, v in graph.items() if k != "__init__"})
    assert cycles == [], f"{folder}: import cycles {cycles}"


def test_interactions_and_movielens_no_longer_import_each_other():
    graph = _module_graph("datasets")
    assert "interactions" not in graph["movielens"]
    assert {"build"} <= graph["movielens"] and {"build", "movielens"} <= graph["interactions"]


@pytest.mark.parametrize("module", ["harness.datasets.movielens", "harness.datasets.interactions",
                                    "harness.datasets.build"])
def test_each_dataset_module_imports_first_in_a_fresh_interpreter(module):
    proc = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
