"""Front door for off-policy evaluation: several estimators, intervals and diagnostics in
one call, and paired comparisons of two policies on the same logged rows.

This is what the runner (``evaluate.off_policy`` in the config) calls: every estimate
carries its weight diagnostics, and ``gate_cap`` says when a low effective sample size
forbids a PASS.

Examples
--------
>>> import numpy as np
>>> from harness.metrics import OPEInputs, evaluate_off_policy
>>> data = OPEInputs(reward=np.array([1.0, 0.0, 1.0, 0.0]), pscore=np.full(4, 0.5),
...                  pi_e=np.array([1.0, 0.0, 0.5, 0.5]))
>>> res = evaluate_off_policy(data, ["ips", {"name": "snips"}], min_ess=1)
>>> [round(r["value"], 4) for r in res.rows]   # IPS (2 + 1) / 4; SNIPS 3 / 4
[0.75, 0.75]
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from scipy import special

from harness.errors import ConfigError, DataValidationError

from ._ope_inputs import OPEInputs
from .off_policy import ESTIMATORS, OffPolicyEstimator, OPEInterval, estimate_intervals
from .ope_diagnostics import WeightDiagnostics, weight_diagnostics

__all__ = ["OffPolicyResult", "compare_policies", "evaluate_off_policy", "make_estimator"]

EstimatorSpec = str | Mapping[str, Any] | OffPolicyEstimator
_LABEL = re.compile(r"[A-Za-z0-9_.@-]+")


def make_estimator(spec: EstimatorSpec) -> OffPolicyEstimator:
    """An estimator from a name (``"snips"``), a mapping (``{"name": "ips", "lambda_": 20,
    "label": "ips_clip20"}``; ``label`` is optional) or an instance."""
    if isinstance(spec, OffPolicyEstimator):
        return spec
    params: dict[str, Any] = {}
    if isinstance(spec, Mapping):
        params = dict(spec)
        name = params.pop("name", None)
    else:
        name = spec
    if name not in ESTIMATORS:
        raise ConfigError(f"unknown off-policy estimator {name!r}; known: {sorted(ESTIMATORS)}")
    label = params.get("label")
    if label is not None and not (isinstance(label, str) and _LABEL.fullmatch(label)):
        raise ConfigError(f"estimator {name!r}: label must be letters, digits and _ . @ - "
                          f"(it names a metric), got {label!r}")
    try:
        return ESTIMATORS[name](**params)
    except TypeError as exc:
        raise ConfigError(f"estimator {name!r}: bad parameters {sorted(params)} ({exc})") from exc


@dataclass(frozen=True)
class OffPolicyResult:
    """Estimates, intervals, diagnostics and per-row values of one policy.

    ``rows``: one dict per estimator with ``estimator, value, ci_low, ci_high, se,
    n_units, method`` and the diagnostics (``ess, ess_ratio, max_weight, ...,
    low_ess``) and ``gate_cap`` (``"INCONCLUSIVE"`` or None). ``per_unit[name]``: the
    influence values (mean = estimate), for paired comparisons.
    """

    rows: list[dict[str, Any]]
    intervals: dict[str, OPEInterval]
    diagnostics: dict[str, WeightDiagnostics]
    per_unit: dict[str, np.ndarray] = field(repr=False)


def evaluate_off_policy(
    data: OPEInputs, estimators: Sequence[EstimatorSpec] = ("ips", "snips", "dr"), *,
    alpha: float = 0.05, method: str = "analytic", n_bootstrap: int = 1000, seed: int = 0,
    resampling: str = "multinomial", min_ess: float = 100.0, min_ess_ratio: float = 0.01,
    unsupported_mass: np.ndarray | None = None, bounds: tuple[float, float] | None = None,
    estimate: Callable[..., dict[str, OPEInterval]] = estimate_intervals,
) -> OffPolicyResult:
    """Evaluate one policy with several estimators; see ``estimate_intervals`` for the
    interval options (``bounds``: the reward range, which holds every policy value) and
    ``weight_diagnostics`` for the diagnostics thresholds. ``estimate`` computes the
    intervals (``estimate_intervals``'s signature): another engine's, e.g. Spark's."""
    ests = [make_estimator(s) for s in estimators]
    intervals = estimate(ests, data, alpha=alpha, method=method, n_bootstrap=n_bootstrap,
                                   seed=seed, resampling=resampling, bounds=bounds)
    rows, diags, per_unit = [], {}, {}
    by_clip: dict[float, WeightDiagnostics] = {}  # the weights are shared; only the clip differs
    for est in ests:
        iv = intervals[est.key]
        clip = est._clip_threshold()
        if clip not in by_clip:
            by_clip[clip] = weight_diagnostics(data.pi_e, data.pscore, clip=clip, min_ess=min_ess,
                                               min_ess_ratio=min_ess_ratio, unsupported_mass=unsupported_mass,
                                               actions=getattr(data, "action", None))
        diag = diags[est.key] = by_clip[clip]
        per_unit[est.key] = est.influence_values(data)
        rows.append({"estimator": est.key, "value": iv.estimate, "ci_low": iv.low, "ci_high": iv.high,
                     "se": iv.se, "n_units": iv.n_units, "method": iv.method,
                     **{k: v for k, v in diag.to_dict().items() if k not in ("min_ess", "min_ess_ratio")},
                     "gate_cap": diag.gate_outcome_cap})
    return OffPolicyResult(rows, intervals, diags, per_unit)


def compare_policies(baseline: OffPolicyResult, candidate: OffPolicyResult, *,
                     alpha: float = 0.05) -> list[dict[str, Any]]:
    """Paired differences candidate - baseline per estimator, on the same logged rows.

    The difference of the two estimates has per-row influence values ``psi_c - psi_b``;
    its interval is ``delta +- z_{1-alpha/2} sd(psi_c - psi_b) / sqrt(n)`` (the CLT on
    paired units), which is far tighter than two separate intervals because both
    policies are evaluated on the same contexts. ``gate_cap`` is INCONCLUSIVE when
    either side's overlap is low (``low_overlap``: ESS, Pareto k-hat, thin actions,
    mean weight), and ``overlap_reason`` says why.
    """
    out = []
    z = float(special.ndtri(1 - alpha / 2))
    for name, psi_c in candidate.per_unit.items():
        if name not in baseline.per_unit:
            continue
        psi_b = baseline.per_unit[name]
        if psi_b.shape != psi_c.shape:
            raise DataValidationError(f"{name}: baseline has {psi_b.shape[0]} units, candidate {psi_c.shape[0]}; "
                                      f"a paired comparison needs the same logged rows")
        diff = psi_c - psi_b
        delta, se = float(diff.mean()), float(diff.std(ddof=1) / math.sqrt(diff.shape[0]))
        p_value = float(2 * special.ndtr(-abs(delta) / se)) if se > 0 else (1.0 if delta == 0 else 0.0)
        sides = (("baseline", baseline.diagnostics[name]), ("candidate", candidate.diagnostics[name]))
        reason = "; ".join(f"{side}: {d.overlap_reason}" for side, d in sides if d.low_overlap)
        out.append({"metric": name, "baseline": float(psi_b.mean()), "candidate": float(psi_c.mean()),
                    "delta": delta, "ci_low": delta - z * se, "ci_high": delta + z * se, "se": se,
                    "p_value": p_value, "gate_cap": "INCONCLUSIVE" if reason else None,
                    "overlap_reason": reason or None})
    return out
