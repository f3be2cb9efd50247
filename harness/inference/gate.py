"""The launch gate: PASS / FAIL / INCONCLUSIVE from paired comparisons.

Each criterion is tested twice, one-sided, on its delta oriented so that "gain" is
positive when the candidate is better (``direction``), on the absolute scale or, with
``relative: true``, on candidate / baseline - 1 (whose interval resamples the
baseline too, so a relative margin is not treated as a fixed number):

- the *pass* test: primary H1: gain > min_improvement (superiority); guardrail
  H1: gain > -max_regression (non-inferiority);
- the *fail* test: primary H1: gain < 0 (significantly worse); guardrail
  H1: gain < -max_regression (a regression beyond the margin).

p-values of each kind are adjusted over the whole family the gate decides on (every
criterion x candidate): Holm by default (family-wise error), Benjamini-Hochberg or
none on request. A criterion FAILs when its adjusted fail p-value < alpha, PASSes when
its adjusted pass p-value < alpha, else is INCONCLUSIVE, and then says what would
settle it: the minimum detectable effect at this sample size and the number of units
needed if the true delta were the observed one. The verdict is FAIL if any criterion
fails, PASS if all pass, else INCONCLUSIVE.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from harness.inference.paired import MetricComparison
from harness.spec.config import GateCriterion
from harness.errors import ConfigError, DataValidationError
from harness.metrics.stats import (CORRECTIONS, DeltaInference, adjust_p_values, minimum_detectable_effect,
                                   required_units)

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
# power at which an INCONCLUSIVE criterion's "units needed" is computed
POWER = 0.8


@dataclass
class CriterionResult:
    """One gate criterion for one candidate. ``delta``/``ci_*``/``margin`` are on the
    criterion's scale (relative when ``relative``); ``p_value`` is the pass test's,
    ``p_regression`` the fail test's; ``units_needed`` is null unless INCONCLUSIVE."""

    metric: str
    candidate: str
    role: str
    direction: str
    criterion: str
    delta: float
    ci_low: float
    ci_high: float
    margin: float
    p_value: float
    p_adjusted: float
    p_regression: float
    p_regression_adjusted: float
    outcome: str
    reason: str = ""
    relative: bool = False
    alpha: float = 0.05
    mde: float | None = None
    n_units: int = 0
    units_needed: float | None = None


@dataclass
class Verdict:
    decision: str
    reasons: list[str] = field(default_factory=list)
    criteria: list[CriterionResult] = field(default_factory=list)
    correction: str = "holm"

    def to_dict(self) -> dict:
        return {"decision": self.decision, "reasons": self.reasons, "correction": self.correction,
                "criteria": [asdict(c) for c in self.criteria]}


@dataclass
class _Pending:
    crit: GateCriterion
    comp: MetricComparison
    inf: DeltaInference
    sign: float
    threshold: float  # the pass test: sign * estimand > threshold
    p_pass: float
    p_fail: float
    text: str


def _plan(crit: GateCriterion, comp: MetricComparison) -> _Pending:
    inf = comp.relative_inference if crit.relative else comp.inference
    if inf is None:
        raise DataValidationError(f"gate: {crit.metric!r} has a relative margin but the baseline "
                                  f"{comp.baseline!r} scores 0 on it (overall, or in resamples of its "
                                  f"{comp.n_units} units), so a relative change is undefined; "
                                  "use an absolute margin")
    sign = 1.0 if crit.direction == "higher" else -1.0
    better = inf.p_greater if sign > 0 else inf.p_less
    worse = inf.p_less if sign > 0 else inf.p_greater
    scale = " (relative)" if crit.relative else ""
    if crit.role == "primary":
        threshold = crit.min_improvement
        return _Pending(crit, comp, inf, sign, threshold, better(sign * threshold), worse(0.0),
                        f"improve by more than {threshold:g}{scale}")
    threshold = -float(crit.max_regression or 0.0)
    return _Pending(crit, comp, inf, sign, threshold, better(sign * threshold), worse(sign * threshold),
                    f"regress by less than {-threshold:g}{scale}")


def _settle(p: _Pending, alpha: float) -> tuple[float, float | None, str]:
    """(MDE, units needed to PASS, advice) for an INCONCLUSIVE criterion."""
    inf, n = p.inf, p.inf.n_units
    mde = minimum_detectable_effect(inf.std_error, alpha=alpha, power=POWER)
    gap = p.sign * inf.estimate - p.threshold
    if gap > 0:
        need = required_units(gap, inf.std_error, n, alpha=alpha, power=POWER)
        return mde, need, (f"detectable margin at n={n}: {mde:.4g}; to PASS at {POWER:.0%} power if the true "
                           f"delta is the observed one: ~{need:,.0f} units ({need / n:.1f}x)")
    worse_gap = -(p.sign * inf.estimate) if p.crit.role == "primary" else -gap
    tail = ""
    if worse_gap > 0:
        need_fail = required_units(worse_gap, inf.std_error, n, alpha=alpha, power=POWER)
        tail = f"; to confirm the regression: ~{need_fail:,.0f} units"
    return mde, None, (f"the observed delta does not meet the requirement, so more data would not make it "
                       f"PASS unless the true delta is better (detectable margin at n={n}: {mde:.4g}){tail}")


def decide(
    criteria: list[GateCriterion],
    comparisons: list[MetricComparison],
    *,
    correction: str = "holm",
) -> Verdict:
    """Apply the gate to the comparisons of every candidate.

    The family adjusted for multiplicity is every (candidate, criterion) pair.
    """
    if correction not in CORRECTIONS:
        raise ConfigError(f"correction: unknown value {correction!r}; use one of {', '.join(CORRECTIONS)}")
    if not criteria:
        return Verdict(PASS, ["no gate criteria configured"], correction=correction)
    by_key = {(c.candidate, c.metric): c for c in comparisons}
    candidates = list(dict.fromkeys(c.candidate for c in comparisons))
    pending: list[_Pending] = []
    for candidate in candidates:
        for crit in criteria:
            if (candidate, crit.metric) not in by_key:
                have = sorted({c.metric for c in comparisons if c.candidate == candidate})
                raise ConfigError(f"gate: metric {crit.metric!r} was not compared for {candidate!r}; "
                                  f"compared: {have}")
            pending.append(_plan(crit, by_key[(candidate, crit.metric)]))
    p_pass_adj = adjust_p_values(np.array([p.p_pass for p in pending]), correction)
    p_fail_adj = adjust_p_values(np.array([p.p_fail for p in pending]), correction)
    # what an INCONCLUSIVE criterion would need: the strictest per-test level of the family
    per_test = (lambda a: a / len(pending)) if correction == "holm" else (lambda a: a)
    results = []
    for p, pa, fa in zip(pending, p_pass_adj, p_fail_adj):
        crit, comp, inf = p.crit, p.comp, p.inf
        margin = p.threshold if crit.role == "primary" else -p.threshold
        mde = need = None
        if comp.note:
            outcome, why = INCONCLUSIVE, f"cannot be settled by this data: {comp.note}"
        elif fa < crit.alpha:
            outcome = FAIL
            why = ("significantly worse" if crit.role == "primary"
                   else f"regression beyond the margin {margin:.4g}")
        elif pa < crit.alpha:
            outcome, why = PASS, f"shown to {p.text}"
        else:
            outcome = INCONCLUSIVE
            mde, need, advice = _settle(p, per_test(crit.alpha))
            why = f"not shown to {p.text}; {advice}"
        scale = "relative delta" if crit.relative else "delta"
        reason = (f"{outcome}: {comp.candidate} {crit.metric} ({crit.role}, {crit.direction} is better) "
                  f"{scale}={inf.estimate:+.4g} {comp.confidence * 100:g}% CI [{inf.ci_low:+.4g}, {inf.ci_high:+.4g}] "
                  f"p_adj={pa:.3g} / regression p_adj={fa:.3g} ({comp.method}, {correction}): {why}")
        results.append(CriterionResult(
            metric=crit.metric, candidate=comp.candidate, role=crit.role, direction=crit.direction,
            criterion=p.text, delta=inf.estimate, ci_low=inf.ci_low, ci_high=inf.ci_high,
            margin=margin, p_value=p.p_pass, p_adjusted=float(pa), p_regression=p.p_fail,
            p_regression_adjusted=float(fa), outcome=outcome, reason=reason, relative=crit.relative,
            alpha=crit.alpha, mde=mde, n_units=inf.n_units, units_needed=need))
    outcomes = {r.outcome for r in results}
    decision = FAIL if FAIL in outcomes else PASS if outcomes == {PASS} else INCONCLUSIVE
    return Verdict(decision, [r.reason for r in results], results, correction)


def comparison_rows(comparisons: list[MetricComparison], verdict: Verdict) -> list[dict]:
    """``results.json`` comparison rows: each comparison with its gate criterion's
    ``p_value``, ``p_adjusted``, ``criterion`` and ``outcome`` (None when not gated)."""
    gated = {(c.candidate, c.metric): c for c in verdict.criteria}
    rows = []
    for comp in comparisons:
        row = comp.to_row()
        crit = gated.get((comp.candidate, comp.metric))
        row.update(p_value=crit.p_value if crit else None, p_adjusted=crit.p_adjusted if crit else None,
                   criterion=crit.criterion if crit else None, outcome=crit.outcome if crit else None)
        rows.append(row)
    return rows
