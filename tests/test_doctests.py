"""Every docstring example of the package runs, as a user would type it, and passes.

Each docstring's examples run in a namespace of their own (not the module's globals),
so an example that forgets an import fails here rather than in a user's shell. A module
has examples when its source has a ``>>>`` line, and every one of those lines must be
attempted: an example the doctest parser cannot see fails too.
"""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import io
import pkgutil
import re
from pathlib import Path

import pytest

PACKAGES = ("harness", "harness.metrics", "harness.models", "harness.datasets")
PROMPT = re.compile(r"^\s*>>>", re.MULTILINE)


def _module_names() -> list[str]:
    """Every module of the package (walking each folder it installs; importing only packages)."""
    names = set(PACKAGES)
    for package in PACKAGES:
        path = importlib.import_module(package).__path__
        names.update(info.name for info in pkgutil.walk_packages(path, package + "."))
    return sorted(names)


def _prompts(name: str) -> int:
    """Number of ``>>>`` lines in the module's source file."""
    origin = importlib.util.find_spec(name).origin
    return len(PROMPT.findall(Path(origin).read_text(encoding="utf-8")))


MODULES = _module_names()
WITH_EXAMPLES = [name for name in MODULES if _prompts(name) > 0]


@pytest.mark.parametrize("name", WITH_EXAMPLES)
def test_docstring_examples_run_and_pass(name: str) -> None:
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(verbose=False)
    report = io.StringIO()
    for test in doctest.DocTestFinder().find(module, name, globs={}):
        runner.run(test, out=report.write)
    assert runner.failures == 0, report.getvalue()
    assert runner.tries == _prompts(name) > 0


def test_every_module_imports_and_the_source_scan_finds_every_example() -> None:
    # the walk covers all four folders, and the modules known to carry examples are found
    assert {name.split(".")[1] for name in MODULES if "." in name} >= {"metrics", "models", "datasets", "evaluate"}
    assert {"harness.metrics.stats", "harness.metrics.ranking", "harness.datasets.splits"} <= set(WITH_EXAMPLES)
    # importing every module, doctest finds examples in exactly the modules the scan lists
    found = [name for name in MODULES
             if any(t.examples for t in doctest.DocTestFinder().find(importlib.import_module(name), name))]
    assert found == WITH_EXAMPLES
