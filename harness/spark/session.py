"""The Spark session and tables of the Spark backend; the only door to pyspark.

pyspark is an optional extra (``pip install 'recsys-harness[spark]'``): it is imported
here, inside functions, so that ``import harness`` never needs it, and a config or call
that asks for Spark without it gets a ``ConfigError`` saying what to install.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

from harness.errors import ConfigError, DataValidationError, HarnessError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

INSTALL_HINT = "pip install 'recsys-harness[spark]'"
# Defaults of a session the harness creates: few shuffle partitions (the backend's
# groups are large), Arrow on, no UI port to collide with other sessions, Python workers
# forked with the harness's kernels already loaded (:mod:`harness.spark.daemon`), and no
# DataFrame debugging context: with it, every Column function the driver calls walks the
# Python stack and makes ~8 extra calls to the JVM to record where it was called from
# (F.col: 2.2 ms instead of 0.5 ms), a third of a warm config run's driver time; all it
# adds is, in Spark's analysis errors, the line of the harness's code that built the
# column (a user's bad data gets the harness's own errors, checked first).
DEFAULT_CONF: dict[str, str] = {
    "spark.python.daemon.module": "harness.spark.daemon",
    "spark.python.sql.dataFrameDebugging.enabled": "false",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
}


def require_pyspark() -> None:
    """Refuse clearly when pyspark is missing (a config error, exit code 2)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ConfigError(f"the Spark engine needs pyspark, which is not installed: {INSTALL_HINT}") from None
    # pyspark warns on pandas 3 (it works for the Arrow paths used here); keep stderr clean
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pyspark")


def spark_session(master: str | None = None, *, app_name: str = "recsys-harness",
                  conf: Mapping[str, Any] | None = None, log_level: str | None = None) -> "SparkSession":
    """The active Spark session, or a new one on ``master`` with ``conf`` (and Spark's
    log at ``log_level``, e.g. "ERROR"; an active session's level is left as it is).

    Python workers run this interpreter (``PYSPARK_PYTHON`` unless set), so that the
    kernels they call are the ones the driver imports.
    """
    require_pyspark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    for key, value in {**DEFAULT_CONF, **{k: str(v) for k, v in (conf or {}).items()}}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    if log_level is not None:
        session.sparkContext.setLogLevel(log_level)
    return session


def read_table(spark: "SparkSession", source: str | Path) -> "DataFrame":
    """A Parquet file or folder (a local path, relative to the working directory), or a
    table the session's catalog knows by name (Hive, Delta, ...: ``db.table``)."""
    text = str(source)
    path = Path(text)
    if path.suffix == ".parquet" or path.exists() or "/" in text:
        if not path.exists():
            raise ConfigError(f"Spark table {text!r}: no such Parquet file or folder")
        # relative to this process's working directory, not the JVM's (started elsewhere)
        return spark.read.parquet(str(path.resolve()))
    if not spark.catalog.tableExists(text):
        raise ConfigError(f"Spark table {text!r}: not a Parquet path and not a table of the session's "
                          "catalog (give a path ending in .parquet, or db.table)")
    return spark.table(text)


def require_columns(frame: "DataFrame", columns: list[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataValidationError(f"{name}: missing column(s) {missing}; has {frame.columns}")


# The message of a harness error raised in a Python worker, inside Spark's traceback.
_WORKER_ERROR = re.compile(r"harness\.errors\.(\w+): (.*?)(?:\n\S|\Z)", re.S)


@contextmanager
def worker_errors() -> Iterator[None]:
    """Re-raise a harness error a Python worker raised (bad data seen by a kernel) as
    itself on the driver, without Spark's JVM and worker tracebacks."""
    from pyspark.errors import PythonException

    try:
        yield
    except PythonException as exc:
        found = _WORKER_ERROR.search(str(exc))
        if found is None:
            raise
        import harness.errors as errors

        kind = getattr(errors, found.group(1), HarnessError)
        raise kind(found.group(2).strip()) from None
