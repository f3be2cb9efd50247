"""Compile every numba kernel once and write it to numba's on-disk cache.

``make install`` runs ``python -m harness.metrics._warm`` after installing, so that a
fresh clone pays the kernels' compilation (about a minute and a half of CPU) once, at
install time, and every later process (``harness run``, each pytest worker) only loads
them from the cache (a few seconds).

The kernels have explicit signatures, so importing their modules compiles them: there
is one compiled version per kernel, whatever the callers pass. The cache lies next to
the sources (``metrics/__pycache__``, ignored by git) when that folder is writable, else
in numba's per-user cache folder; ``NUMBA_CACHE_DIR`` moves it.
"""

from __future__ import annotations

import importlib
import os
import time

# Every module that defines a numba kernel (tests/test_warm.py checks the list).
KERNEL_MODULES = ("harness.metrics._ranking_kernels", "harness.metrics._resample")


def warm() -> float:
    """Import each kernel module (compiling its kernels, or loading them from the cache);
    return the CPU seconds it took. Importing any of them imports ``harness.metrics``."""
    before = os.times()
    for name in KERNEL_MODULES:
        importlib.import_module(name)
    after = os.times()
    return (after.user + after.system) - (before.user + before.system)


def main() -> None:
    # `python -m` has imported this package (and so compiled or loaded the kernels) before
    # main runs: report the process's CPU time since it started
    warm()
    print(f"numba kernels compiled or loaded from the cache ({time.process_time():.1f} CPU-s "
          "in this process, its start included)")


if __name__ == "__main__":
    main()
