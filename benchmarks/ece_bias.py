"""Bias and interval coverage of the debiased ECE against the plug-in ECE, by simulation.

Rows: p ~ U(0, 1), true click probability pi = slope p + (1 - slope) / 2 (slope 1:
calibrated; 0.9 and 0.8: over-confident), labels y ~ Bernoulli(pi); 15 uniform bins.
For each setting, ``--runs`` samples of n rows; in each, the estimate and the 95%
percentile bootstrap interval (``--resamples``, the harness's calibration family path:
``calibration_statistics`` + ``bootstrap_statistics``) of

- ``ece_debiased``: sqrt(max(0, CE2)), CE2 the debiased squared error (Broecker 2012;
  Kumar, Liang & Ma 2019), resamples corrected twice (see ``SumStatistic.resample_combine``);
- the plug-in l2 ECE (the same scale, ``expected_calibration_error(norm="l2")``);
- the plug-in l1 ECE (metric ``ece``), against the l1 truth.

Printed per setting: bias (mean estimate - truth) with its Monte Carlo SE; coverage of
the truth with its MC SE (sqrt(c (1 - c) / runs)); the estimate's mean position in its
own interval ((estimate - low) / (high - low): 0 = at the lower edge); mean width.

    .venv/bin/python benchmarks/ece_bias.py [--runs 1000] [--sizes 500,2000,10000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from harness.metrics.calibration_stats import calibration_statistics
from harness.metrics.stats import bootstrap_statistics

N_BINS = 15
METRICS = {"ece_debiased": "l2", "_ece_l2": "l2", "ece": "l1"}
LABELS = {"ece_debiased": "debiased l2", "_ece_l2": "plug-in l2", "ece": "plug-in l1"}


def truths(slope: float) -> dict[str, float]:
    """Population binned errors: the gap E[p | b] - E[pi | b] = (1 - slope)(mid_b - 1/2)."""
    gap = (1 - slope) * ((np.arange(N_BINS) + 0.5) / N_BINS - 0.5)
    return {"l2": float(np.sqrt(np.mean(gap**2))), "l1": float(np.mean(np.abs(gap)))}


def simulate(n: int, slope: float, runs: int, seed: int, n_resamples: int) -> dict[str, dict[str, float]]:
    rng = np.random.default_rng(seed)
    truth = truths(slope)
    est = {m: np.empty(runs) for m in METRICS}
    cover = {m: np.zeros(runs, bool) for m in METRICS}
    pos = {m: np.full(runs, np.nan) for m in METRICS}
    width = {m: np.empty(runs) for m in METRICS}
    for r in range(runs):
        p = rng.random(n)
        y = (rng.random(n) < slope * p + (1 - slope) / 2).astype(float)
        stats = calibration_statistics(y, p, list(METRICS), n_bins=N_BINS)
        for m, inf in zip(METRICS, bootstrap_statistics(list(stats.values()), n_resamples=n_resamples, seed=r)):
            t = truth[METRICS[m]]
            est[m][r] = inf.estimate
            cover[m][r] = inf.ci_low <= t <= inf.ci_high
            width[m][r] = inf.ci_high - inf.ci_low
            if width[m][r] > 0:
                pos[m][r] = (inf.estimate - inf.ci_low) / width[m][r]
    out = {}
    for m in METRICS:
        t = truth[METRICS[m]]
        c = cover[m].mean()
        out[m] = dict(truth=t, bias=est[m].mean() - t, bias_se=est[m].std(ddof=1) / np.sqrt(runs),
                      coverage=c, coverage_se=np.sqrt(c * (1 - c) / runs) if 0 < c < 1 else 0.5 / runs,
                      position=float(np.nanmean(pos[m])), width=width[m].mean())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--sizes", default="500,2000,10000")
    parser.add_argument("--slopes", default="1.0,0.9,0.8")
    parser.add_argument("--resamples", type=int, default=400)
    args = parser.parse_args()
    print(f"{args.runs} runs per setting, {N_BINS} uniform bins, 95% percentile intervals from "
          f"{args.resamples} resamples")
    print(f"{'n':>6} {'slope':>5} {'estimator':<12} {'truth':>7} {'bias':>9} {'(MC SE)':>8} "
          f"{'coverage':>8} {'(MC SE)':>7} {'position':>8} {'width':>7}")
    for n in (int(s) for s in args.sizes.split(",")):
        for slope in (float(s) for s in args.slopes.split(",")):
            t0 = time.perf_counter()
            res = simulate(n, slope, args.runs, seed=n + int(100 * slope), n_resamples=args.resamples)
            for m, r in res.items():
                print(f"{n:>6} {slope:>5.2f} {LABELS[m]:<12} {r['truth']:>7.4f} {r['bias']:>+9.4f} "
                      f"{r['bias_se']:>8.4f} {r['coverage']:>8.3f} {r['coverage_se']:>7.3f} "
                      f"{r['position']:>8.2f} {r['width']:>7.4f}")
            print(f"{'':>6} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
