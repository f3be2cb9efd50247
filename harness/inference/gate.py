"""The launch gate: PASS / FAIL / INCONCLUSIVE (or NO_GATE) from paired comparisons.

Each criterion is tested twice, one-sided, on its delta oriented so that "gain" is
positive when the candidate is better (``direction``), on the absolute scale or, with
``relative: true``, on candidate / baseline - 1 (whose interval resamples the
baseline too, so a relative margin is not treated as a fixed number):

- the *pass* test: primary H1: gain > min_improvement (superiority); guardrail
  H1: gain > -max_regression (non-inferiority);
- the *fail* test: primary H1: gain < 0 (significantly worse); guardrail
  H1: gain < -max_regression (a regression beyond the margin).

Fail side: p-values are adjusted over the whole family the gate decides on (every
criterion x candidate): Holm by default (family-wise error), Benjamini-Hochberg or
none on request. Pass side: a PASS needs *every* criterion of every candidate to pass,
so the verdict PASS is an intersection-union test (Berger 1982): rejecting the union
of the nulls only when each level-alpha test rejects has size <= alpha with no
multiplicity adjustment, and adjusting would only cost power. ``p_adjusted`` of the
pass test is therefore its raw p-value.

Decision precedence, per criterion: FAIL (adjusted fail p < alpha) > INCONCLUSIVE
(the comparison carries a ``note``, e.g. too little overlap of an off-policy estimate:
it blocks a PASS, never a FAIL) > PASS (pass p < alpha) > INCONCLUSIVE, which then says
what would settle it: the minimum detectable effect at this sample size, the number of
units needed if the true delta were the observed one, or the number of resamples when
the resample count, not the data, is the limit (a bootstrap or Monte Carlo p-value is
never below 1 / (B + 1)). The verdict is FAIL if any criterion fails, else PASS if all
pass, else INCONCLUSIVE; with no criteria it is NO_GATE ("nothing decided").

References
----------
Berger, R. L. (1982). Multiparameter hypothesis testing and acceptance sampling.
*Technometrics* 24(4), 295-300 (intersection-union tests).
Holm, S. (1979). A simple sequentially rejective multiple test procedure. *Scand. J.
Statist.* 6, 65-70.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field

import numpy as np

from harness.inference.paired import MetricComparison
from harness.spec.config import GateCriterion
from harness.errors import ConfigError, DataValidationError
from harness.options import check_choice
from harness.metrics.stats import (CORRECTIONS, DeltaInference, ResampleFloorWarning, SkewWarning, adjust_p_values,
                                   minimum_detectable_effect, recommended_resamples, required_units,
                                   resamples_to_reach, smallest_level)

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
# the data cannot be trusted (a family's ``FamilyResult.invalid``, e.g. a sample ratio mismatch):
# whatever the criteria say; the CLI maps it to exit 4, which no --inconclusive policy passes
INVALID = "INVALID"
# no criteria: nothing was decided (the CLI maps it to exit 0, or 1 when CI requires a gate)
NO_GATE = "NO_GATE"
NO_GATE_REASON = "no gate: nothing decided (no gate criteria configured)"
# power at which an INCONCLUSIVE criterion's "units needed" is computed
POWER = 0.8


@dataclass
class CriterionResult:
    """One gate criterion for one candidate. ``delta``/``ci_*``/``margin`` are on the
    criterion's scale (relative when ``relative``); ``p_value`` is the pass test's and
    ``p_adjusted`` equals it (intersection-union: no adjustment on the pass side);
    ``p_regression`` is the fail test's, ``p_regression_adjusted`` adjusted over the
    family; ``units_needed`` is null unless INCONCLUSIVE; ``p_floor`` is the smallest
    p-value the method can give (1 / (B + 1) for B resamples) and ``resample_limited``
    says that it is too large for one of the two tests ever to reject."""

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
    p_floor: float = 0.0
    resample_limited: bool = False


@dataclass
class Verdict:
    """The gate's decision (PASS, FAIL, INCONCLUSIVE or NO_GATE), one reason per
    criterion, and ``warnings`` (e.g. a resample count too small for any decision);
    ``resample_limited`` is true when some criterion's test cannot reach its level."""

    decision: str
    reasons: list[str] = field(default_factory=list)
    criteria: list[CriterionResult] = field(default_factory=list)
    correction: str = "holm"
    warnings: list[str] = field(default_factory=list)
    resample_limited: bool = False

    def to_dict(self) -> dict:
        return {"decision": self.decision, "reasons": self.reasons, "correction": self.correction,
                "criteria": [asdict(c) for c in self.criteria], "warnings": self.warnings,
                "resample_limited": self.resample_limited}


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


def _floor_text(inf: DeltaInference, level: float) -> str:
    b = resamples_to_reach(level)
    return (f"the smallest p-value {inf.method} can give with these resamples is {inf.p_floor:.3g}, "
            f"not below the level {level:.3g}: use n_resamples >= {b:,} (or a t-test)")


def _settle(p: _Pending, alpha_pass: float, alpha_fail: float) -> tuple[float, float | None, str]:
    """(MDE, units needed to PASS, advice) for an INCONCLUSIVE criterion.

    The pass test is held to ``alpha_pass`` (alpha: intersection-union), the fail test
    to ``alpha_fail`` (the family's strictest level, alpha / K under Holm)."""
    inf, n = p.inf, p.inf.n_units
    mde = minimum_detectable_effect(inf.std_error, alpha=alpha_pass, power=POWER)
    gap = p.sign * inf.estimate - p.threshold
    if inf.p_floor >= alpha_pass:
        return mde, None, f"more data cannot make it PASS: {_floor_text(inf, alpha_pass)}"
    if gap > 0:
        need = required_units(gap, inf.std_error, n, alpha=alpha_pass, power=POWER)
        if need <= n:
            # a normal test would already reject: the data's shape (skew, ties), not n, is the limit
            return mde, None, (f"the observed delta is beyond the detectable margin at n={n} ({mde:.4g}), yet "
                               f"the {inf.method} test gives p={p.p_pass:.3g}: the per-unit values are far "
                               "from normal (skew, heavy tails or ties); more units would help, a count "
                               "cannot be given from the normal approximation")
        return mde, need, (f"detectable margin at n={n}: {mde:.4g}; to PASS at {POWER:.0%} power if the true "
                           f"delta is the observed one: ~{need:,.0f} units ({need / n:.1f}x)")
    worse_gap = -(p.sign * inf.estimate) if p.crit.role == "primary" else -gap
    tail = ""
    if worse_gap > 0:
        if inf.p_floor >= alpha_fail:
            tail = f"; to confirm the regression: {_floor_text(inf, alpha_fail)}"
        else:
            need_fail = required_units(worse_gap, inf.std_error, n, alpha=alpha_fail, power=POWER)
            tail = (f"; to confirm the regression: ~{need_fail:,.0f} units" if need_fail > n else
                    f"; the regression is within the detectable margin but the {inf.method} test gives "
                    f"p={p.p_fail:.3g} against the family level {alpha_fail:.3g}")
    return mde, None, (f"the observed delta does not meet the requirement, so more data would not make it "
                       f"PASS unless the true delta is better (detectable margin at n={n}: {mde:.4g}){tail}")


def decide(
    criteria: list[GateCriterion],
    comparisons: list[MetricComparison],
    *,
    correction: str = "holm",
) -> Verdict:
    """Apply the gate to the comparisons of every candidate.

    Parameters
    ----------
    criteria : list of GateCriterion
    comparisons : list of MetricComparison
        Every gated metric of every candidate; ``note`` set on a comparison that must
        not PASS (too little overlap, ...).
    correction : {"holm", "bh", "none"}
        Multiplicity adjustment of the fail tests over the family of every
        (candidate, criterion) pair.

    Returns
    -------
    Verdict
        ``NO_GATE`` when ``criteria`` is empty; otherwise FAIL > INCONCLUSIVE > PASS.

    Notes
    -----
    A ``SkewWarning`` is issued (and added to ``warnings``) for each criterion whose
    inference carries a ``reliability`` note, such as a bootstrap on a skewed metric.

    Criterion outcome: FAIL if adj_fail_p < alpha; else INCONCLUSIVE if the comparison
    has a note; else PASS if pass_p < alpha (unadjusted: intersection-union, Berger
    1982); else INCONCLUSIVE. A ``ResampleFloorWarning`` is issued, and
    ``resample_limited`` set, when a test's smallest attainable p-value
    (``DeltaInference.p_floor``) is not below its level: alpha for the pass test,
    :func:`~harness.metrics.stats.smallest_level` (alpha / K under Holm) for the fail test.
    """
    check_choice(correction, CORRECTIONS, name="correction")
    if not criteria:
        return Verdict(NO_GATE, [NO_GATE_REASON], correction=correction)
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
    # intersection-union on the pass side: each criterion at its own alpha, no adjustment
    p_pass = np.array([p.p_pass for p in pending])
    p_fail_adj = adjust_p_values(np.array([p.p_fail for p in pending]), correction)
    results, notes, unreliable = [], [], []
    for p, pa, fa in zip(pending, p_pass, p_fail_adj):
        crit, comp, inf = p.crit, p.comp, p.inf
        if inf.reliability:
            unreliable.append(f"{comp.candidate} {crit.metric}: {inf.reliability}")
        margin = p.threshold if crit.role == "primary" else -p.threshold
        fail_level = smallest_level(crit.alpha, len(pending), correction)
        floor = inf.p_floor
        limited = floor >= crit.alpha or floor >= fail_level
        if limited:
            sides = ([f"PASS needs p < {crit.alpha:.3g}"] if floor >= crit.alpha else []) + (
                [f"FAIL needs p < {fail_level:.3g} ({correction} over {len(pending)} tests)"]
                if floor >= fail_level else [])
            notes.append((f"{comp.candidate} {crit.metric} ({comp.method}: p >= {floor:.3g}; "
                          f"{' and '.join(sides)})", min(crit.alpha, fail_level), crit.alpha))
        mde = need = None
        if fa < crit.alpha:
            outcome = FAIL
            why = ("significantly worse" if crit.role == "primary"
                   else f"regression beyond the margin {margin:.4g}")
        elif comp.note:
            outcome, why = INCONCLUSIVE, f"cannot PASS on this data: {comp.note}"
        elif pa < crit.alpha:
            outcome, why = PASS, f"shown to {p.text}"
        else:
            outcome = INCONCLUSIVE
            mde, need, advice = _settle(p, crit.alpha, fail_level)
            why = f"not shown to {p.text}; {advice}"
        scale = "relative delta" if crit.relative else "delta"
        reason = (f"{outcome}: {comp.candidate} {crit.metric} ({crit.role}, {crit.direction} is better) "
                  f"{scale}={inf.estimate:+.4g} {comp.confidence * 100:g}% CI [{inf.ci_low:+.4g}, {inf.ci_high:+.4g}] "
                  f"p={pa:.3g} / regression p_adj={fa:.3g} ({comp.method}, {correction}): {why}")
        results.append(CriterionResult(
            metric=crit.metric, candidate=comp.candidate, role=crit.role, direction=crit.direction,
            criterion=p.text, delta=inf.estimate, ci_low=inf.ci_low, ci_high=inf.ci_high,
            margin=margin, p_value=p.p_pass, p_adjusted=float(pa), p_regression=p.p_fail,
            p_regression_adjusted=float(fa), outcome=outcome, reason=reason, relative=crit.relative,
            alpha=crit.alpha, mde=mde, n_units=inf.n_units, units_needed=need, p_floor=float(floor),
            resample_limited=bool(limited)))
    messages = []
    if notes:
        floor_b = max(resamples_to_reach(level) for _, level, _ in notes)
        advised = max(recommended_resamples(len(pending), a, correction=correction) for _, _, a in notes)
        messages.append(f"n_resamples is too small for the gate to decide {len(notes)} of {len(pending)} "
                        f"criteria whatever the data: " + "; ".join(text for text, _, _ in notes[:3])
                        + ("; ..." if len(notes) > 3 else "")
                        + f". Use n_resamples >= {floor_b:,} (recommended {advised:,}) or method t_test")
        warnings.warn(messages[0], ResampleFloorWarning, stacklevel=2)
    for text in unreliable:
        warnings.warn(text, SkewWarning, stacklevel=2)
        messages.append(text)
    outcomes = {r.outcome for r in results}
    decision = FAIL if FAIL in outcomes else PASS if outcomes == {PASS} else INCONCLUSIVE
    return Verdict(decision, [r.reason for r in results], results, correction, warnings=messages,
                   resample_limited=bool(notes))


def invalidate(verdict: Verdict, problems: list[str]) -> Verdict:
    """The verdict INVALID when a family found its data untrustworthy (``problems``, e.g.
    a sample ratio mismatch); the criteria stay, for information only."""
    if not problems:
        return verdict
    import dataclasses

    return dataclasses.replace(verdict, decision=INVALID, reasons=[
        *(f"INVALID: {p} (criteria below for information only)" for p in problems), *verdict.reasons])


def comparison_rows(comparisons: list[MetricComparison], verdict: Verdict) -> list[dict]:
    """``results.json`` comparison rows: each comparison with its gate criterion's
    ``criterion``, ``outcome`` and the p-value of the test that decided it: the fail
    test's (``p_value`` raw, ``p_adjusted`` adjusted over the family) on FAIL rows, the
    pass test's otherwise (``p_adjusted`` = ``p_value``: intersection-union);
    ``p_test`` names which ("regression" or "pass"). All None when not gated."""
    gated = {(c.candidate, c.metric): c for c in verdict.criteria}
    rows = []
    for comp in comparisons:
        row = comp.to_row()
        crit = gated.get((comp.candidate, comp.metric))
        if crit is None:
            row.update(p_value=None, p_adjusted=None, p_test=None, criterion=None, outcome=None)
        elif crit.outcome == FAIL:
            row.update(p_value=crit.p_regression, p_adjusted=crit.p_regression_adjusted, p_test="regression",
                       criterion=crit.criterion, outcome=crit.outcome)
        else:
            row.update(p_value=crit.p_value, p_adjusted=crit.p_adjusted, p_test="pass",
                       criterion=crit.criterion, outcome=crit.outcome)
        rows.append(row)
    return rows


def resample_count(criteria: list[GateCriterion], n_candidates: int, correction: str) -> int:
    """Resamples for a gate of ``criteria`` x ``n_candidates`` tests at its strictest alpha:
    enough that the floor 1 / (B + 1) of a resampled p-value never blocks a decision
    (see :func:`harness.metrics.stats.recommended_resamples`); 2000 without criteria."""
    from harness.metrics.stats import recommended_resamples

    if not criteria:
        return 2000
    alpha = min(c.alpha for c in criteria)
    return recommended_resamples(len(criteria) * max(n_candidates, 1), alpha, correction=correction)
