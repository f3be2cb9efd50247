"""Packages whose public names load on first use (PEP 562).

A package's ``__init__`` that imported every submodule made importing any one of them
load them all: a Spark worker that evaluates ranking metrics loaded the calibration,
off-policy and A/B kernels too (and SciPy's statistics), ~1 s of CPU in each process.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``, whose public name ``n`` is defined in
    module ``exports[n]``, imported when ``n`` is first looked up (then kept in the
    package's namespace, so the next lookup is a plain attribute)."""
    namespace = importlib.import_module(package).__dict__
    names = sorted(exports)

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*names, *namespace})

    return __getattr__, __dir__
