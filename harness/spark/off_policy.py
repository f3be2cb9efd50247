"""Off-policy estimates on Spark: per-row columns in the workers, sums in Spark.

Each estimator's value is ``combine(E_n[columns])`` (:mod:`harness.metrics.off_policy`).
The columns of every logged row are computed by the estimators' own ``_columns`` on
Arrow batches (no formula is written twice); Spark then sums them (the estimate), sums
the squared linearised deviations ``((columns_i - means) . gradient)^2`` in a second
pass (the analytic interval: the local two-pass variance, not raw moments, so large
means do not cancel), and, for bootstrap intervals, the columns under every Poisson
replicate (:mod:`harness.spark.resample`). Only sums reach the driver.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np
import pandas as pd
from scipy import special

from harness.errors import DataValidationError
from harness.metrics._ope_inputs import OPEInputs
from harness.metrics.off_policy import OffPolicyEstimator, OPEInterval
from harness.metrics.ope_evaluate import EstimatorSpec, make_estimator
from harness.options import check_bounds, check_choice, check_integer, check_probability

from .resample import POSITION, poisson_sums, with_positions
from .session import require_columns, worker_errors

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

INPUTS = ("reward", "pscore", "pi_e", "q_hat", "v_hat")
# A row appended to every batch and dropped again: a self-normalised estimator refuses
# data whose weights are all 0, which one batch may be while the whole data set is not
# (checked over all rows on the driver). Columns are row-wise, so other rows are unchanged.
_SENTINEL = {"reward": 0.0, "pscore": 1.0, "pi_e": 1.0, "q_hat": 0.0, "v_hat": 0.0}


@dataclass
class SparkOffPolicyResult:
    """Estimates with intervals (``intervals[key]``: the local ``OPEInterval``) and the
    per-row influence values (``per_unit``: ``_position`` and one column per estimator
    key, mean = estimate), which stay distributed (persisted) for paired comparisons;
    ``release()`` frees them."""

    intervals: dict[str, OPEInterval]
    per_unit: "DataFrame"
    cached: list["DataFrame"] = field(default_factory=list, repr=False)

    @property
    def values(self) -> dict[str, float]:
        return {k: v.estimate for k, v in self.intervals.items()}

    def release(self) -> None:
        """Unpersist the logged rows' positions and columns held for ``per_unit``."""
        for frame in self.cached:
            frame.unpersist()


def _needs_positive_weight(est: OffPolicyEstimator) -> bool:
    """Whether the estimator refuses logs whose weights are all 0 (self-normalised ones,
    0 / 0): asked of its own code, on one such row."""
    try:
        est._columns(OPEInputs(**{c: np.array([0.0 if c == "pi_e" else v]) for c, v in _SENTINEL.items()}))
    except DataValidationError:
        return True
    return False


def _column_names(estimators: Sequence[OffPolicyEstimator], widths: list[int]) -> list[list[str]]:
    return [[f"{e.key}#{j}" for j in range(k)] for e, k in zip(estimators, widths)]


def _batch_columns(batches: Iterator[pd.DataFrame], *, estimators: list[OffPolicyEstimator],
                   names: list[list[str]], inputs: list[str]) -> Iterator[pd.DataFrame]:
    """Every estimator's per-row columns of each batch, by the estimators' own code."""
    for batch in batches:
        arrays = {c: np.append(batch[c].to_numpy(dtype=np.float64), _SENTINEL[c]) for c in inputs}
        data = OPEInputs(**arrays)
        out = {POSITION: batch[POSITION].to_numpy()}
        for est, cols in zip(estimators, names):
            block = est._columns(data)[:-1]
            out.update({name: block[:, j] for j, name in enumerate(cols)})
        yield pd.DataFrame(out)


def estimate_off_policy(
    logged: "DataFrame", estimators: Sequence[EstimatorSpec], *, alpha: float = 0.05, method: str = "analytic",
    n_bootstrap: int = 1000, seed: int = 0, bounds: tuple[float, float] | None = None,
    order_by: str | None = None,
) -> SparkOffPolicyResult:
    """:func:`harness.metrics.off_policy.estimate_intervals` on a Spark DataFrame of
    logged rows.

    Parameters
    ----------
    logged : Spark DataFrame
        One row per logged round (or impression): ``reward``, ``pscore``, ``pi_e`` and,
        for model-based estimators, ``q_hat`` and ``v_hat`` (see ``OPEInputs``).
    estimators : names, mappings or estimator instances
        As :func:`harness.metrics.evaluate_off_policy` takes them (``"snips"``,
        ``{"name": "ips", "lambda_": 20, "label": "ips_clip20"}``).
    method : {"analytic", "bootstrap"}
        ``analytic``: ``estimate +- z se`` with ``se^2 = sum_i psi_i^2 / (n (n - 1))``,
        ``psi_i = (columns_i - means) . gradient``. ``bootstrap``: Poisson bootstrap
        (the only scheme that needs no shuffle of rows: each weight is a function of
        (seed, b, i)); equal to the local intervals with ``resampling="poisson"``.
    order_by : str, optional
        A unique column giving the rows' order, i.e. the unit positions i of the
        bootstrap; default: the DataFrame's own order (a Parquet file's row order).

    Returns
    -------
    SparkOffPolicyResult
    """
    from pyspark import StorageLevel
    from pyspark.sql import functions as F
    from pyspark.sql.types import DoubleType, LongType, StructField, StructType

    check_choice(method, ("analytic", "bootstrap"), name="method")
    alpha = check_probability(alpha, name="alpha", low_open=True, high_open=True)
    if method == "bootstrap":
        check_integer(n_bootstrap, name="n_bootstrap", minimum=2)
    bounds = check_bounds(bounds)
    ests = [make_estimator(e) for e in estimators]
    keys = [e.key for e in ests]
    if not ests or len(set(keys)) != len(keys):
        raise DataValidationError(f"estimators: give at least one, each key once; got {keys}")
    model_based = any(e.needs_reward_model for e in ests)
    inputs = [c for c in INPUTS if c in ("reward", "pscore", "pi_e") or (model_based and c in logged.columns)]
    require_columns(logged, ["reward", "pscore", "pi_e"], "logged feedback")
    # widths of each estimator's columns, from its own code on the sentinel row
    probe = OPEInputs(**{c: np.array([_SENTINEL[c]]) for c in inputs})
    widths = [e._columns(probe).shape[1] for e in ests]
    names = _column_names(ests, widths)
    flat = [n for cols in names for n in cols]
    positioned, tagged = with_positions(logged.select(*inputs, *([order_by] if order_by else [])), order_by)
    schema = StructType([StructField(POSITION, LongType(), False),
                         *[StructField(n, DoubleType(), False) for n in flat]])
    fn = partial(_batch_columns, estimators=ests, names=names, inputs=inputs)
    cols = positioned.select(POSITION, *inputs).mapInPandas(fn, schema).persist(StorageLevel.MEMORY_AND_DISK)
    c = [F.col(f"`{n}`") for n in flat]
    with worker_errors():
        first = positioned.agg(F.count(F.lit(1)).alias("n"),
                               F.sum((F.col("pi_e") > 0).cast("long")).alias("pos")).first()
        n = int(first["n"])
        if n < 2:
            raise DataValidationError(f"an interval needs at least 2 units, got {n}")
        self_normalised = [e.key for e in ests if _needs_positive_weight(e)]
        if self_normalised and not first["pos"]:
            raise DataValidationError(f"{self_normalised[0]}: pi_e is 0 on all {n} logged rows, so the "
                                      "self-normalised estimate is 0 / 0")
        sums = np.array(cols.agg(*[F.sum(x) for x in c]).first(), dtype=np.float64)
    means = sums / n
    psis, start = [], 0
    for est, k in zip(ests, widths):
        m = means[start:start + k]
        g = np.broadcast_to(est._gradient(m), (k,)).astype(np.float64)
        psis.append(sum(((c[start + j] - float(m[j])) * float(g[j]) for j in range(k)), F.lit(0.0)))
        start += k
    with worker_errors():
        squares = cols.agg(*[F.sum(p * p) for p in psis]).first()
    boot = None
    if method == "bootstrap":
        with worker_errors():
            b_sums, totals = poisson_sums(cols, flat, n_bootstrap, seed=seed)
        with np.errstate(divide="ignore", invalid="ignore"):
            boot = np.where(totals[:, None] > 0, b_sums / totals[:, None], means)
    z = float(special.ndtri(1 - alpha / 2))
    out: dict[str, OPEInterval] = {}
    influence = []
    start = 0
    for est, k, psi, sq in zip(ests, widths, psis, squares):
        value = float(est._combine(means[start:start + k]))
        se = float(np.sqrt(float(sq) / (n - 1) / n))
        if boot is None:
            low, high = value - z * se, value + z * se
        else:
            reps = est._combine(boot[:, start:start + k])
            low, high = (float(v) for v in np.quantile(reps, [alpha / 2, 1 - alpha / 2]))
        if bounds is not None:
            low, high = min(max(low, bounds[0]), bounds[1]), max(min(high, bounds[1]), bounds[0])
        out[est.key] = OPEInterval(est.key, value, float(low), float(high), se, alpha, method, n)
        influence.append((F.lit(value) + psi).alias(est.key))
        start += k
    return SparkOffPolicyResult(out, cols.select(POSITION, *influence), cached=[cols, tagged])
