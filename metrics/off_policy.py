"""Off-policy (counterfactual) estimators of a policy's value from logged bandit feedback.

Every estimator is a small dataclass on ``OffPolicyEstimator``. It turns the logged rows
into a few per-row columns once (IPS: ``w r``; SNIPS: ``w r`` and ``w``) and writes its
value as a smooth function of their means; the point estimate, the analytic (CLT /
delta-method) interval, the bootstrap interval and the per-row values all come from
those same columns. Semantics follow Open Bandit Pipeline 0.5.7 (``obp.ope``): on the
same inputs the point estimates and ``per_row_contributions`` (OBP's round rewards)
are equal.

Notation: ``w_i = pi_e(a_i | x_i, pos_i) / pi_b(a_i | x_i, pos_i)``, ``q_hat_i`` the
reward model at the logged action, ``v_hat_i = sum_a pi_e(a | x_i, pos_i) q_hat(x_i,
a, pos_i)``, ``E_n`` the mean over the n logged rows.

Examples
--------
>>> import numpy as np
>>> from harness.metrics.off_policy import IPS, SNIPS, OPEInputs
>>> data = OPEInputs(reward=np.array([1.0, 0.0]), pscore=np.array([0.5, 0.5]),
...                  pi_e=np.array([1.0, 0.5]))
>>> IPS().estimate_policy_value(data)   # (2 * 1 + 1 * 0) / 2
1.0
>>> SNIPS().estimate_policy_value(data)  # 2 / (2 + 1)
0.6666666666666666
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import numpy as np
from scipy import special

from harness.errors import DataValidationError
from harness.options import check_bounds, check_choice, check_integer, check_number, check_probability

from ._resample import weighted_sums
from ._ope_inputs import OPEInputs
from .ope_diagnostics import WeightDiagnostics, weight_diagnostics

__all__ = [
    "DM", "DR", "DRos", "IPS", "OPEInputs", "OPEInterval", "OffPolicyEstimator", "SNDR", "SNIPS",
    "SwitchDR", "estimate_intervals", "ESTIMATORS",
]

INTERVAL_METHODS = ("analytic", "bootstrap")
RESAMPLING = ("multinomial", "poisson")


@dataclass(frozen=True)
class OPEInterval:
    """A policy-value estimate with its ``1 - alpha`` confidence interval.

    ``se`` is the delta-method standard error of the estimate (both methods report it);
    ``n_units`` is the number of resampled units (logged rows, or slates).
    """

    estimator: str
    estimate: float
    low: float
    high: float
    se: float
    alpha: float
    method: str
    n_units: int

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _check_nonnegative(value: float, name: str) -> None:
    """Hyperparameters (clipping, switching, shrinkage): a number in [0, inf]."""
    check_number(value, name=name, low=0.0)


@dataclass(frozen=True)
class OffPolicyEstimator(ABC):
    """Shared base: the value is ``combine(E_n[columns])``.

    Subclasses define ``_columns`` (n, k), ``_combine`` (means -> value, vectorised over
    leading axes) and ``_gradient`` (d combine / d means), and ``per_row_contributions``
    when it differs from the single column of a linear estimator.

    ``label`` names the estimate in results (OBP's ``estimator_name``); it defaults to
    the estimator's ``name`` and lets one run hold the same estimator twice, e.g.
    ``IPS()`` and ``IPS(lambda_=20, label="ips_clip20")``.
    """

    name: ClassVar[str]
    needs_reward_model: ClassVar[bool] = False
    label: str | None = field(default=None, kw_only=True)

    @property
    def key(self) -> str:
        """What results call this estimate: ``label``, else ``name``."""
        return self.label or self.name

    @abstractmethod
    def _columns(self, data: Any) -> np.ndarray: ...

    def _combine(self, means: np.ndarray) -> np.ndarray:
        return means[..., 0]

    def _gradient(self, means: np.ndarray) -> np.ndarray:
        return np.ones(1)

    def _clip_threshold(self) -> float:
        return math.inf

    def per_row_contributions(self, data: Any) -> np.ndarray:
        """Per-row values whose mean is the estimate (OBP's ``_estimate_round_rewards``)."""
        return self._columns(data)[:, 0]

    def influence_values(self, data: Any) -> np.ndarray:
        """Linearised per-row values: ``estimate + (columns_i - means) . gradient``.

        Their mean is the estimate and their variance / n the delta-method variance, so
        they are the per-unit values for paired comparisons of self-normalised
        estimators (for linear estimators they equal ``per_row_contributions``).
        """
        cols = self._columns(data)
        means = cols.mean(axis=0)
        return float(self._combine(means)) + (cols - means) @ self._gradient(means)

    def estimate_policy_value(self, data: Any) -> float:
        """Point estimate of the evaluation policy's value."""
        return float(self._combine(self._columns(data).mean(axis=0)))

    def estimate_interval(self, data: Any, *, alpha: float = 0.05, method: str = "analytic",
                          n_bootstrap: int = 1000, seed: int = 0, resampling: str = "multinomial",
                          bounds: tuple[float, float] | None = None) -> OPEInterval:
        """Estimate with a ``1 - alpha`` interval; see ``estimate_intervals``."""
        return estimate_intervals([self], data, alpha=alpha, method=method, n_bootstrap=n_bootstrap,
                                  seed=seed, resampling=resampling, bounds=bounds)[self.key]

    def diagnostics(self, data: OPEInputs, **thresholds: Any) -> WeightDiagnostics:
        """Weight diagnostics of ``data`` with this estimator's clipping threshold."""
        thresholds.setdefault("actions", getattr(data, "action", None))
        return weight_diagnostics(data.pi_e, data.pscore, clip=self._clip_threshold(), **thresholds)


def estimate_intervals(
    estimators: Sequence[OffPolicyEstimator], data: Any, *, alpha: float = 0.05,
    method: str = "analytic", n_bootstrap: int = 1000, seed: int = 0,
    resampling: str = "multinomial", bounds: tuple[float, float] | None = None,
) -> dict[str, OPEInterval]:
    """Point estimates and ``1 - alpha`` intervals of several estimators on the same data.

    Parameters
    ----------
    estimators : sequence of OffPolicyEstimator
        Distinct keys (``label`` or ``name``); they share one pass of bootstrap resamples.
    data : OPEInputs (or SlateInputs for slate estimators)
    alpha : float, default 0.05
    method : {"analytic", "bootstrap"}
        ``analytic``: ``estimate +- z_{1-alpha/2} se`` with ``se^2 = g' S g / n``, S the
        sample covariance (ddof = 1) of the columns and g the gradient of the combining
        function (the CLT for means; the delta method for ratios such as SNIPS).
        ``bootstrap``: percentile interval of the estimator recomputed on ``n_bootstrap``
        resamples (the ratio is recomputed, not its linearisation).
    n_bootstrap : int, default 1000
    seed : int, default 0
        Bootstrap seed; the same seed gives the same interval on any number of threads.
    resampling : {"multinomial", "poisson"}
        Classic resampling of n rows with replacement (the resamples
        ``scipy.stats.bootstrap`` draws for the same seed), or independent Poisson(1)
        row weights (one parallel pass over the rows, faster at millions of rows); both
        from the harness's one weight generator, :mod:`harness.metrics._resample`. A
        Poisson replicate divides by its drawn total weight.
    bounds : (low, high), optional
        The range of the policy value, i.e. of the reward (``(0, 1)`` for clicks): both
        intervals are intersected with it (a confidence set intersected with the
        parameter space keeps its coverage), so that e.g. an analytic interval of a
        rare click rate does not go below 0. The estimate itself is not clipped.

    Returns
    -------
    dict mapping estimator key (``label`` or ``name``) to ``OPEInterval``.
    """
    check_choice(method, INTERVAL_METHODS, name="method")
    check_choice(resampling, RESAMPLING, name="resampling")
    alpha = check_probability(alpha, name="alpha", low_open=True, high_open=True)
    if method == "bootstrap":
        check_integer(n_bootstrap, name="n_bootstrap", minimum=2)
    bounds = check_bounds(bounds)
    names = [e.key for e in estimators]
    if not names:
        raise DataValidationError("estimators: give at least one estimator")
    if len(set(names)) != len(names):
        twice = sorted({k for k in names if names.count(k) > 1})
        raise DataValidationError(f"estimators: {twice} appear more than once; give each copy its own label "
                                  f"(e.g. {{name: ips, lambda_: 20, label: ips_clip20}})")
    blocks = [est._columns(data) for est in estimators]
    n = blocks[0].shape[0] if blocks else 0
    if n < 2:
        raise DataValidationError(f"an interval needs at least 2 units, got {n}")
    z = float(special.ndtri(1 - alpha / 2))
    boot = None
    if method == "bootstrap":
        unique, where = _dedupe_columns(blocks)
        boot = _bootstrap_means(np.column_stack(unique), n_bootstrap, seed, resampling)
    out: dict[str, OPEInterval] = {}
    start = 0
    for est, cols in zip(estimators, blocks):
        k = cols.shape[1]
        means = cols.mean(axis=0)
        value = float(est._combine(means))
        psi = (cols - means) @ est._gradient(means)
        se = float(np.sqrt(psi @ psi / (n - 1) / n))
        if boot is None:
            low, high = value - z * se, value + z * se
        else:
            reps = est._combine(boot[:, where[start:start + k]])
            low, high = (float(v) for v in np.quantile(reps, [alpha / 2, 1 - alpha / 2]))
        start += k
        if bounds is not None:
            low, high = min(max(low, bounds[0]), bounds[1]), max(min(high, bounds[1]), bounds[0])
        out[est.key] = OPEInterval(est.key, value, float(low), float(high), se, alpha, method, n)
    return out


def _bootstrap_means(cols: np.ndarray, n_boot: int, seed: int, resampling: str) -> np.ndarray:
    """Column means of ``cols`` (n, k) under each resample's weights: (n_boot, k).

    A Poisson replicate whose weights are all 0 (probability e^-n) gets the full-sample
    means."""
    sums, totals = weighted_sums(cols, n_boot, seed=seed, scheme=resampling)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = sums / totals[:, None]
    return np.where(totals[:, None] > 0, means, cols.mean(axis=0))


def _dedupe_columns(blocks: list[np.ndarray]) -> tuple[list[np.ndarray], list[int]]:
    """Distinct columns of all blocks (IPS's and SNIPS's ``w r`` are resampled once) and,
    for each input column in order, the index of its distinct column."""
    unique: list[np.ndarray] = []
    where: list[int] = []
    for col in (c for block in blocks for c in block.T):
        match = next((j for j, u in enumerate(unique) if np.array_equal(u, col)), None)
        if match is None:
            unique.append(col)
            match = len(unique) - 1
        where.append(match)
    return unique, where


@dataclass(frozen=True)
class IPS(OffPolicyEstimator):
    """Inverse propensity scoring with optional weight clipping.

    ``V_IPS = E_n[min(w_i, lambda_) r_i]``; unbiased when ``lambda_ = inf`` and pi_b
    covers pi_e (OBP's ``InverseProbabilityWeighting``).

    Parameters
    ----------
    lambda_ : float, default inf
        Clipping threshold of the importance weights, >= 0.

    References
    ----------
    Horvitz & Thompson, "A generalization of sampling without replacement from a finite
    universe", JASA 1952. Strehl, Langford, Li & Kakade, "Learning from logged implicit
    exploration data", NeurIPS 2010.
    """

    lambda_: float = math.inf
    name: ClassVar[str] = "ips"

    def __post_init__(self) -> None:
        _check_nonnegative(self.lambda_, "IPS.lambda_")

    def _clip_threshold(self) -> float:
        return self.lambda_

    def _columns(self, data: OPEInputs) -> np.ndarray:
        return (np.minimum(data.weight, self.lambda_) * data.reward)[:, None]


@dataclass(frozen=True)
class SNIPS(OffPolicyEstimator):
    """Self-normalised inverse propensity scoring.

    ``V_SNIPS = E_n[w_i r_i] / E_n[w_i]``: consistent, bounded by the reward range, and
    a small bias (OBP's ``SelfNormalizedInverseProbabilityWeighting``). Per-row
    contributions are OBP's ``w_i r_i / E_n[w]``; the delta-method influence values are
    ``V + w_i (r_i - V) / E_n[w]``.

    References
    ----------
    Swaminathan & Joachims, "The self-normalized estimator for counterfactual learning",
    NeurIPS 2015. Kallus & Uehara, "Intrinsically efficient, stable, and bounded
    off-policy evaluation for reinforcement learning", NeurIPS 2019.
    """

    name: ClassVar[str] = "snips"

    def _columns(self, data: OPEInputs) -> np.ndarray:
        w = _positive_total_weight(data, self.name)
        return np.column_stack([w * data.reward, w])

    def _combine(self, means: np.ndarray) -> np.ndarray:
        return means[..., 0] / means[..., 1]

    def _gradient(self, means: np.ndarray) -> np.ndarray:
        return np.array([1.0 / means[1], -means[0] / means[1] ** 2])

    def per_row_contributions(self, data: OPEInputs) -> np.ndarray:
        w = data.weight
        return w * data.reward / w.mean()


@dataclass(frozen=True)
class DM(OffPolicyEstimator):
    """Direct method: ``V_DM = E_n[v_hat_i] = E_n[sum_a pi_e(a | x_i, pos_i) q_hat(x_i, a, pos_i)]``.

    Unbiased only when the reward model is; its interval reflects the sampling of
    contexts, not the model's error (OBP's ``DirectMethod``).

    References
    ----------
    Beygelzimer & Langford, "The offset tree for learning with partial labels", KDD 2009.
    """

    name: ClassVar[str] = "dm"
    needs_reward_model: ClassVar[bool] = True

    def _columns(self, data: OPEInputs) -> np.ndarray:
        return data.require_reward_model(self.name)[1][:, None]


def _positive_total_weight(data: OPEInputs, name: str) -> np.ndarray:
    """The weights, refusing data where every weight is 0 (a ratio 0 / 0)."""
    w = data.weight
    if not (w > 0).any():
        raise DataValidationError(f"{name}: pi_e is 0 on all {w.shape[0]} logged rows, so the "
                                  f"self-normalised estimate is 0 / 0; the logs carry no information "
                                  f"about this policy")
    return w


def _dr_columns(data: OPEInputs, name: str, weight: np.ndarray) -> np.ndarray:
    q_hat, v_hat = data.require_reward_model(name)
    return (v_hat + weight * (data.reward - q_hat))[:, None]


@dataclass(frozen=True)
class DR(OffPolicyEstimator):
    """Doubly robust: ``V_DR = E_n[v_hat_i + min(w_i, lambda_) (r_i - q_hat_i)]``.

    Unbiased if either the propensities or the reward model are correct (``lambda_ =
    inf``); OBP's ``DoublyRobust``.

    Parameters
    ----------
    lambda_ : float, default inf
        Clipping threshold of the weights in the correction term.

    References
    ----------
    Dudik, Langford & Li, "Doubly robust policy evaluation and learning", ICML 2011.
    """

    lambda_: float = math.inf
    name: ClassVar[str] = "dr"
    needs_reward_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_nonnegative(self.lambda_, "DR.lambda_")

    def _clip_threshold(self) -> float:
        return self.lambda_

    def _columns(self, data: OPEInputs) -> np.ndarray:
        return _dr_columns(data, self.name, np.minimum(data.weight, self.lambda_))


@dataclass(frozen=True)
class SNDR(OffPolicyEstimator):
    """Self-normalised doubly robust: ``V = E_n[v_hat_i] + E_n[w_i (r_i - q_hat_i)] / E_n[w_i]``.

    OBP's ``SelfNormalizedDoublyRobust`` (per-row contributions ``v_hat_i + w_i (r_i -
    q_hat_i) / E_n[w]``).

    References
    ----------
    Kallus & Uehara, "Intrinsically efficient, stable, and bounded off-policy evaluation
    for reinforcement learning", NeurIPS 2019.
    """

    name: ClassVar[str] = "sndr"
    needs_reward_model: ClassVar[bool] = True

    def _columns(self, data: OPEInputs) -> np.ndarray:
        q_hat, v_hat = data.require_reward_model(self.name)
        w = _positive_total_weight(data, self.name)
        return np.column_stack([v_hat, w * (data.reward - q_hat), w])

    def _combine(self, means: np.ndarray) -> np.ndarray:
        return means[..., 0] + means[..., 1] / means[..., 2]

    def _gradient(self, means: np.ndarray) -> np.ndarray:
        return np.array([1.0, 1.0 / means[2], -means[1] / means[2] ** 2])

    def per_row_contributions(self, data: OPEInputs) -> np.ndarray:
        cols = self._columns(data)
        return cols[:, 0] + cols[:, 1] / cols[:, 2].mean()


@dataclass(frozen=True)
class SwitchDR(OffPolicyEstimator):
    """Switch doubly robust: ``V = E_n[v_hat_i + 1{w_i <= tau} w_i (r_i - q_hat_i)]``.

    Rows whose weight exceeds ``tau`` fall back to the direct method. ``tau = inf`` is
    DR and ``tau = 0`` is DM (OBP's ``SwitchDoublyRobust``, ``lambda_`` there).

    References
    ----------
    Wang, Agarwal & Dudik, "Optimal and adaptive off-policy evaluation in contextual
    bandits", ICML 2017.
    """

    tau: float = math.inf
    name: ClassVar[str] = "switch_dr"
    needs_reward_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_nonnegative(self.tau, "SwitchDR.tau")

    def _clip_threshold(self) -> float:
        return self.tau

    def _columns(self, data: OPEInputs) -> np.ndarray:
        w = data.weight
        return _dr_columns(data, self.name, np.where(w <= self.tau, w, 0.0))


@dataclass(frozen=True)
class DRos(OffPolicyEstimator):
    """Doubly robust with optimistic shrinkage: ``V = E_n[v_hat_i + w'_i (r_i - q_hat_i)]``
    with ``w'_i = lambda_ w_i / (w_i^2 + lambda_)``.

    ``lambda_ = inf`` is DR; ``lambda_ = 0`` is DM (``w' = 0``, also where ``w = 0``,
    where OBP divides 0 by 0). OBP's ``DoublyRobustWithShrinkage``.

    References
    ----------
    Su, Dimakopoulou, Krishnamurthy & Dudik, "Doubly robust off-policy evaluation with
    shrinkage", ICML 2020.
    """

    lambda_: float = math.inf
    name: ClassVar[str] = "dros"
    needs_reward_model: ClassVar[bool] = True

    def __post_init__(self) -> None:
        _check_nonnegative(self.lambda_, "DRos.lambda_")

    def _columns(self, data: OPEInputs) -> np.ndarray:
        w = data.weight
        if math.isinf(self.lambda_):
            shrunk = w
        else:
            den = w * w + self.lambda_
            shrunk = np.divide(self.lambda_ * w, den, out=np.zeros_like(w), where=den > 0)
        return _dr_columns(data, self.name, shrunk)


ESTIMATORS: dict[str, type[OffPolicyEstimator]] = {
    cls.name: cls for cls in (IPS, SNIPS, DM, DR, SNDR, SwitchDR, DRos)
}
