"""Issue 13 at scale: intersection-union size and power, the resample floor, exact ties,
and the rare-action overlap cap. The in-suite versions are tests/test_gate_safety*.py.

Run: ``.venv/bin/python benchmarks/gate_safety.py [--sims S] [--seed SEED]``.
Prints one line per measurement with its Monte Carlo SE, sqrt(p (1 - p) / S).
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import pandas as pd
from scipy import stats as sps
from threadpoolctl import threadpool_limits

from harness.inference.paired import compare_models
from harness.spec.config import GateCriterion
from harness.inference.gate import FAIL, PASS, decide
from harness.metrics.ope_diagnostics import weight_diagnostics
from harness.metrics.stats import ResampleFloorWarning, holm_adjust, infer_paired_means, sign_flip_means

ALPHA = 0.05


def frames(base: np.ndarray, cand: np.ndarray) -> dict[str, pd.DataFrame]:
    index = pd.Index([f"q{i}" for i in range(base.shape[0])])
    cols = [f"m{j}@10" for j in range(base.shape[1])]
    return {"prod": pd.DataFrame(base, index=index, columns=cols), "cand": pd.DataFrame(cand, index=index, columns=cols)}


def primaries(k: int) -> list[GateCriterion]:
    return [GateCriterion(metric=f"m{j}@10", role="primary", direction="higher") for j in range(k)]


def say(label: str, rate: float, sims: int) -> None:
    print(f"{label}: {rate:.4f} (MC SE {np.sqrt(max(rate * (1 - rate), 1e-12) / sims):.4f}, {sims} runs)", flush=True)


def iut(sims: int, seed: int) -> None:
    """Size at the least favourable null and power before/after, k = 2, 4, 6 primaries."""
    for k in (2, 4, 6):
        rng = np.random.default_rng(seed + k)
        crits, n, sd = primaries(k), 200, 0.1
        size = before = after = 0
        effect = (sps.norm.ppf(1 - ALPHA) + sps.norm.ppf(0.9)) * sd / np.sqrt(n)
        for sim in range(sims):
            base = rng.beta(2, 5, (n, k))
            shift = np.r_[0.0, np.full(k - 1, 0.1)]
            comps = compare_models(frames(base, base + shift + rng.normal(0, sd, base.shape)), baseline="prod",
                                   candidates=["cand"], metrics=[c.metric for c in crits], method="t_test", seed=sim)
            size += decide(crits, comps).decision == PASS
            comps = compare_models(frames(base, base + effect + rng.normal(0, sd, base.shape)), baseline="prod",
                                   candidates=["cand"], metrics=[c.metric for c in crits], method="t_test", seed=sim)
            verdict = decide(crits, comps)
            after += verdict.decision == PASS
            before += (all(c.outcome != FAIL for c in verdict.criteria)
                       and bool((holm_adjust([c.p_value for c in verdict.criteria]) < ALPHA).all()))
        say(f"IUT size, {k} primaries, one at its null (PASS rate)", size / sims, sims)
        say(f"power, {k} primaries at 90% each, pass side Holm-adjusted (before)", before / sims, sims)
        say(f"power, {k} primaries at 90% each, intersection-union (after)", after / sims, sims)


def resample_floor() -> None:
    """17 candidates x 6 criteria at the default B = 2000, every candidate 35 SE better."""
    rng = np.random.default_rng(0)
    n, k, cands = 400, 6, [f"c{i}" for i in range(17)]
    base = rng.beta(2, 5, (n, k))
    per_unit = {"prod": frames(base, base)["prod"]}
    for c in cands:
        per_unit[c] = frames(base, base + 0.2 + rng.normal(0, 0.1, base.shape))["cand"]
    comps = compare_models(per_unit, baseline="prod", candidates=cands, metrics=[f"m{j}@10" for j in range(k)],
                           method="bootstrap", n_resamples=2000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        verdict = decide(primaries(k), comps)
    floor = [w for w in caught if issubclass(w.category, ResampleFloorWarning)]
    print(f"17 x 6 at B=2000: decision {verdict.decision}, PASS criteria "
          f"{sum(c.outcome == PASS for c in verdict.criteria)}/102, resample_limited={verdict.resample_limited}, "
          f"warning: {str(floor[0].message)[:160] if floor else None}", flush=True)


def ties(seed: int) -> None:
    """Values in quarters on 400 queries: the exact grouped null vs 20000 float64 Monte
    Carlo sign flips (ties counted), and vs flips that drop ties (the old defect)."""
    rng = np.random.default_rng(seed)
    b = rng.integers(0, 5, 400) / 4
    c = np.clip(b + rng.choice([-0.25, 0.0, 0.25], 400, p=[0.2, 0.55, 0.25]), 0, 1)
    (exact,), _ = infer_paired_means(c, b, method="randomization")
    d = c - b
    flips, _ = sign_flip_means(d[:, None], n_resamples=20000, seed=seed)
    tol = exact.tolerance(0.0)
    p_mc = (1 + np.count_nonzero(flips[:, 0] >= d.mean() - tol)) / 20001
    p_drop = (1 + np.count_nonzero(flips[:, 0] > d.mean() + tol)) / 20001
    print(f"ties, 400 queries in quarters ({np.count_nonzero(d == 0)} equal): exact={exact.exact}, "
          f"p={exact.p_greater(0.0):.5f}; Monte Carlo with ties {p_mc:.5f}, dropping ties {p_drop:.5f} "
          f"(MC SE {np.sqrt(p_mc * (1 - p_mc) / 20000):.5f})", flush=True)


def rare_action(sims: int, seed: int) -> None:
    """Issue 13 case 5: flag rates, and IPS interval coverage in the unflagged runs."""
    rng = np.random.default_rng(seed)
    p_b = np.r_[0.0065, np.full(9, 0.9935 / 9)]
    p_e = np.r_[0.3, np.full(9, 0.7 / 9)]
    mean_r = np.linspace(0.9, 0.1, 10)
    truth = float(p_e @ mean_r)
    flagged = low_ess = covered_unflagged_old = unflagged_old = 0
    for _ in range(sims):
        a = rng.choice(10, 1000, p=p_b)
        r = (rng.random(1000) < mean_r[a]).astype(float)
        w = p_e[a] / p_b[a]
        diag = weight_diagnostics(p_e[a], p_b[a], actions=a)
        flagged += diag.low_overlap
        low_ess += diag.low_ess
        est, se = (w * r).mean(), (w * r).std(ddof=1) / np.sqrt(1000)
        if not diag.low_ess:
            unflagged_old += 1
            covered_unflagged_old += abs(est - truth) <= 1.96 * se
    say("rare action: low_overlap (after)", flagged / sims, sims)
    say("rare action: low_ess only (before)", low_ess / sims, sims)
    if unflagged_old:
        say("rare action: IPS 95% coverage in runs low_ess let through", covered_unflagged_old / unflagged_old,
            unflagged_old)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    with threadpool_limits(1, user_api="blas"):
        ties(args.seed)
        resample_floor()
        rare_action(args.sims, args.seed)
        iut(args.sims, args.seed)


if __name__ == "__main__":
    main()
