"""The Python daemon of the sessions the harness starts (``spark.python.daemon.module``).

Spark forks each Python worker from one daemon per executor. pyspark's own daemon has
loaded nothing but pyspark, so every worker it forks imports what the harness's pandas
functions run (pandas, pyarrow, SciPy and the compiled numba kernels: ~2 CPU-s) before
its first batch, and a worker that ends on an error or an idle timeout is replaced by one
that imports them again. This daemon imports them once, then runs pyspark's: the forked
workers share the loaded modules. No kernel is called here, so the daemon starts no
thread (numba's thread pool starts in a worker, after the fork).
"""

from __future__ import annotations

import os

os.environ["NUMBA_THREADING_LAYER"] = "workqueue"
import pyarrow  # noqa: F401  (the workers' Arrow batches)
import pyspark.worker  # noqa: F401  (what each forked worker runs)
from pyspark.daemon import manager

# the modules whose functions run in the workers (applyInPandas / mapInPandas)
import harness.spark.backend  # noqa: F401
import harness.spark.collection  # noqa: F401  (a collection's fingerprint: _row_hashes)
import harness.spark.off_policy  # noqa: F401
import harness.spark.ranking  # noqa: F401
import harness.spark.resample  # noqa: F401
import harness.spark.units  # noqa: F401

if __name__ == "__main__":
    manager()
