"""The layout is the architecture: every import points down the spine, and nothing cycles.

Stages, bottom to top (a module may import its own stage and the stages below it,
never one above; lazy imports inside functions count too):

    errors, types, options  <  metrics  <  datasets  <  models  <  spec  <  adapters
        <  evaluate  <  inference  <  spark  <  results  <  tracking  <  apps  <  harness (public API)

``spark`` (the optional Spark backend) sits above inference, whose comparison and gate
it reuses, and reaches the engine only through the backend object ``apps`` passes down.

Within a stage, modules may import each other, but the module graph as a whole has
no cycle.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the installed package maps these folders (pyproject.toml [tool.setuptools] package-dir)
SOURCES = {"harness": ROOT / "harness", "harness.metrics": ROOT / "metrics",
           "harness.models": ROOT / "models", "harness.datasets": ROOT / "datasets"}
STAGES = [
    {"harness.errors", "harness.interrupts", "harness.lazy", "harness.types", "harness.options", "harness.version"},
    {"harness.metrics"},
    {"harness.datasets"},
    {"harness.models"},
    {"harness.spec"},
    {"harness.adapters"},
    {"harness.evaluate"},
    {"harness.inference"},
    {"harness.spark"},
    {"harness.results"},
    {"harness.tracking"},
    {"harness.apps"},
    {"harness"},
]


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([package, *parts])
            if package == "harness" and parts and parts[0] in ("metrics", "models", "datasets"):
                continue
            out[name] = path
    return out


MODULES = _modules()


def stage_of(module: str) -> int:
    """Index of the stage a module belongs to: the longest stage prefix that names it."""
    best, best_len = None, -1
    for i, prefixes in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = i, len(prefix)
    assert best is not None, module
    return best


def _resolve(name: str) -> str | None:
    """The project module an import names (``harness.x.y`` may be a module or a name in one)."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


@functools.cache  # parsed when a test first needs it: collection stays cheap on every worker
def imports_of(module: str) -> frozenset[str]:
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for name in names:
            target = _resolve(name) if name.startswith("harness") else None
            if target is not None and target != module:
                found.add(target)
    return frozenset(found)


def test_every_module_has_a_stage() -> None:
    # the walk found the four source folders, and each module falls in exactly one stage
    assert {m.split(".")[1] for m in MODULES if m.count(".") >= 1} >= {"metrics", "models", "datasets", "evaluate"}
    assert "harness.types" in MODULES and "harness.metrics.stats" in MODULES
    assert all(0 <= stage_of(module) < len(STAGES) for module in MODULES)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_spine(module: str) -> None:
    own = stage_of(module)
    upward = sorted(t for t in imports_of(module) if stage_of(t) > own)
    assert not upward, f"{module} (stage {own}) imports from later stages: {upward}"


def test_no_import_cycles() -> None:
    # Tarjan's strongly connected components over the whole module graph
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in imports_of(v):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # a package __init__ re-exporting its own modules is not a cycle of dependencies
            real = [m for m in component if MODULES[m].name != "__init__.py"]
            if len(real) > 1:
                cycles.append(sorted(component))

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


def test_the_checker_sees_a_planted_violation(tmp_path: Path) -> None:
    """The checks above are not vacuous: they see the imports they are meant to see."""
    assert "harness.errors" in imports_of("harness.types")
    assert stage_of("harness.inference.gate") > stage_of("harness.evaluate")
    assert stage_of("harness.metrics.stats") < stage_of("harness.spec.config")
    assert any(stage_of(t) == stage_of("harness.inference") for t in imports_of("harness.inference.gate"))
