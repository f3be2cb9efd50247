"""The cache warm-up (``make install`` runs ``python -m harness.metrics._warm``) compiles
every numba kernel: no kernel module is left for a test worker or ``harness run`` to
compile on its own."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numba.core.registry

from harness.metrics import _warm

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"harness": ROOT / "harness", "harness.metrics": ROOT / "metrics",
           "harness.models": ROOT / "models", "harness.datasets": ROOT / "datasets"}


def _modules_with_kernels() -> set[str]:
    found = set()
    for package, folder in SOURCES.items():
        for path in folder.rglob("*.py"):
            if path.is_relative_to(ROOT / "harness") and package != "harness":
                continue
            if package == "harness" and path.relative_to(folder).parts[0] in ("metrics", "models", "datasets"):
                continue  # the symlinked folders, listed under their own package
            text = path.read_text()
            if (re.search(r"\bnumba\.(njit|jit|vectorize|guvectorize|cfunc)\(", text)
                    or re.search(r"from numba import [^\n]*\b(njit|jit|vectorize|guvectorize|cfunc)\b", text)):
                rel = path.relative_to(folder).with_suffix("")
                found.add(".".join([package, *(p for p in rel.parts if p != "__init__")]))
    return found


def test_every_kernel_module_is_warmed() -> None:
    assert _modules_with_kernels() == set(_warm.KERNEL_MODULES)


def test_warm_leaves_each_kernel_with_its_compiled_signatures() -> None:
    _warm.warm()
    entry_points = []
    for name in _warm.KERNEL_MODULES:
        module = importlib.import_module(name)
        for obj in vars(module).values():
            if isinstance(obj, numba.core.registry.CPUDispatcher) and obj.targetoptions.get("parallel"):
                entry_points.append(obj)
    assert entry_points, "the parallel entry points are found"
    for kernel in entry_points:  # explicit signatures: compiled at import, and nothing else
        assert kernel.signatures and not kernel._can_compile, kernel.py_func.__name__


def test_install_warms_the_cache() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("$(STAMP):"):makefile.index("install: $(STAMP)")]
    assert "-m harness.metrics._warm" in recipe
