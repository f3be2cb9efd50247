"""The launch gate: PASS / FAIL / INCONCLUSIVE from paired comparisons.

Each criterion is tested twice, one-sided, on the delta oriented by its ``direction``:

- the *pass* test: primary H1: gain > min_improvement (superiority); guardrail
  H1: loss < max_regression (non-inferiority);
- the *fail* test: primary H1: the metric is worse (loss > 0); guardrail
  H1: loss > max_regression (a regression beyond the margin).

p-values of each kind are adjusted over the whole family the gate decides on (every
criterion x candidate), Holm by default. A criterion PASSes when its adjusted pass
p-value < alpha, FAILs when its adjusted fail p-value < alpha, else is INCONCLUSIVE.
The verdict is FAIL if any criterion fails, PASS if all pass, else INCONCLUSIVE.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from harness.compare import MetricComparison
from harness.config import GateCriterion
from harness.metrics.stats import adjust_p_values

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"


@dataclass
class CriterionResult:
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


@dataclass
class Verdict:
    decision: str
    reasons: list[str] = field(default_factory=list)
    criteria: list[CriterionResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"decision": self.decision, "reasons": self.reasons,
                "criteria": [asdict(c) for c in self.criteria]}


def _margin(crit: GateCriterion, baseline_value: float) -> float:
    margin = crit.min_improvement if crit.role == "primary" else float(crit.max_regression or 0.0)
    return margin * abs(baseline_value) if crit.relative else margin


def _tests(crit: GateCriterion, comp: MetricComparison, margin: float) -> tuple[float, float, str]:
    """(p_pass, p_fail, description) for one criterion on one comparison."""
    inf = comp.inference
    sign = 1.0 if crit.direction == "higher" else -1.0
    better = inf.p_greater if sign > 0 else inf.p_less
    worse = inf.p_less if sign > 0 else inf.p_greater
    unit = f"{crit.max_regression if crit.role == 'guardrail' else crit.min_improvement:g}" + (
        " (relative)" if crit.relative else "")
    if crit.role == "primary":
        return better(sign * margin), worse(0.0), f"improve by more than {unit}"
    return better(-sign * margin), worse(-sign * margin), f"regress by less than {unit}"


def decide(
    criteria: list[GateCriterion],
    comparisons: list[MetricComparison],
    *,
    correction: str = "holm",
) -> Verdict:
    """Apply the gate to the comparisons of every candidate."""
    if not criteria:
        return Verdict(PASS, ["no gate criteria configured"])
    by_key = {(c.candidate, c.metric): c for c in comparisons}
    candidates = list(dict.fromkeys(c.candidate for c in comparisons))
    pending = []
    for candidate in candidates:
        for crit in criteria:
            comp = by_key[(candidate, crit.metric)]
            margin = _margin(crit, comp.baseline_value)
            p_pass, p_fail, text = _tests(crit, comp, margin)
            pending.append((crit, comp, margin, p_pass, p_fail, text))
    p_pass_adj = adjust_p_values(np.array([p[3] for p in pending]), correction)
    p_fail_adj = adjust_p_values(np.array([p[4] for p in pending]), correction)
    results = []
    for (crit, comp, margin, p_pass, p_fail, text), pa, fa in zip(pending, p_pass_adj, p_fail_adj):
        if fa < crit.alpha:
            outcome = FAIL
            why = ("significantly worse" if crit.role == "primary"
                   else f"regression beyond the margin {margin:.4g}")
        elif pa < crit.alpha:
            outcome, why = PASS, f"shown to {text}"
        else:
            outcome = INCONCLUSIVE
            why = (f"not shown to {text}; detectable effect at this sample size "
                   f"~{comp.mde:.4g} (n={comp.n_units})")
        reason = (f"{outcome}: {comp.candidate} {crit.metric} ({crit.role}, {crit.direction} is better) "
                  f"delta={comp.delta:+.4g} CI [{comp.ci_low:+.4g}, {comp.ci_high:+.4g}] "
                  f"p_adj={pa:.3g} / regression p_adj={fa:.3g}: {why}")
        results.append(CriterionResult(
            metric=crit.metric, candidate=comp.candidate, role=crit.role, direction=crit.direction,
            criterion=text, delta=comp.delta, ci_low=comp.ci_low, ci_high=comp.ci_high,
            margin=margin, p_value=p_pass, p_adjusted=float(pa), p_regression=p_fail,
            p_regression_adjusted=float(fa), outcome=outcome, reason=reason))
    outcomes = {r.outcome for r in results}
    decision = FAIL if FAIL in outcomes else PASS if outcomes == {PASS} else INCONCLUSIVE
    return Verdict(decision, [r.reason for r in results], results)
