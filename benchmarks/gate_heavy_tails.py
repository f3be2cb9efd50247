"""A/A false FAIL and interval coverage by method, metric kind and sample size.

Run: ``.venv/bin/python benchmarks/gate_heavy_tails.py [--sims S] [--n 30 100 300 1000]
[--n-resamples B] [--seed SEED]``. Prints a markdown table (the one in docs/ci-gate.md).

Each simulation is one column of the per-unit tables handed to the public
``infer_paired_means``: the columns share the resample weights (which do not depend
on the data) but not the data, so every column is an independent replicate of the
comparison. A single-criterion primary gate FAILs exactly when ``p_less(0) < alpha``
(Holm over one test is the raw p), so the false-FAIL rate is read from that.

Data (paired units; ``ratio`` = candidate / baseline scale):

- ``bounded``: b ~ Beta(2, 5), c = b + N(delta, 0.1) (A/A: delta = 0 and each unit's
  two values swapped at random, so the pair is exchangeable);
- ``lognormal``: b, c independent lognormal(0, 1.5) (revenue-like: skewness ~33),
  c scaled by ``ratio``;
- ``lognormal-paired``: a shared unit effect, b = exp(mu + e1), c = ratio exp(mu + e2)
  with mu ~ N(0, 1.2), e ~ N(0, 0.9) (the same marginal lognormal(0, 1.5)).

"t_delta (old)" is the symmetric delta-method interval of the relative delta the
t-test used before Fieller (computed here from its formula), for comparison.
Monte Carlo SE of a rate p over S simulations: sqrt(p (1 - p) / S) (0.49 points at 5%
with S = 2000; 1.0 point at 95% coverage with S = 500).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import special
from threadpoolctl import threadpool_limits

from harness.metrics.stats import infer_paired_means

ALPHA = 0.05
MEAN_LN = float(np.exp(1.5**2 / 2))


def draw(kind: str, n: int, sims: int, rng: np.random.Generator, *, effect: bool) -> tuple:
    """(candidate, baseline, true absolute delta, true relative delta), arrays (n, sims)."""
    if kind == "bounded":
        b = rng.beta(2, 5, (n, sims))
        delta = 0.01 if effect else 0.0
        c = b + delta + rng.normal(0, 0.1, (n, sims))
        if not effect:
            swap = rng.random((n, sims)) < 0.5
            b, c = np.where(swap, c, b), np.where(swap, b, c)
        return c, b, delta, delta / (2 / 7)
    ratio = 1.1 if effect else 1.0
    if kind == "lognormal":
        b = rng.lognormal(0, 1.5, (n, sims))
        c = ratio * rng.lognormal(0, 1.5, (n, sims))
    else:
        mu = rng.normal(0, 1.2, (n, sims))
        b = np.exp(mu + rng.normal(0, 0.9, (n, sims)))
        c = ratio * np.exp(mu + rng.normal(0, 0.9, (n, sims)))
    return c, b, (ratio - 1) * MEAN_LN, ratio - 1


def t_delta_relative(c: np.ndarray, b: np.ndarray, true_rel: float) -> tuple[float, float]:
    """The old t-test relative interval r -+ q SE (delta method): (false FAIL, coverage)."""
    n = c.shape[0]
    cm, bm = c.mean(0), b.mean(0)
    r = cm / bm - 1
    se = (c - (1 + r) * b).std(0, ddof=1) / (bm * np.sqrt(n))
    q = special.stdtrit(n - 1, 0.975)
    p_less = special.stdtr(n - 1, r / se)
    return float((p_less < ALPHA).mean()), float(((r - q * se <= true_rel) & (true_rel <= r + q * se)).mean())


def rates(kind: str, n: int, method: str, sims: int, seed: int, n_resamples: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    out: dict[str, float] = {}
    c, b, _, _ = draw(kind, n, sims, rng, effect=False)
    absolute, relative = infer_paired_means(c, b, method=method, n_resamples=n_resamples, seed=seed)
    out["ff_abs"] = float(np.mean([a.p_less(0.0) < ALPHA for a in absolute]))
    out["ff_rel"] = float(np.mean([r.p_less(0.0) < ALPHA for r in relative]))
    c, b, true_abs, true_rel = draw(kind, n, sims, rng, effect=True)
    absolute, relative = infer_paired_means(c, b, method=method, n_resamples=n_resamples, seed=seed + 1)
    out["cov_abs"] = float(np.mean([a.ci_low <= true_abs <= a.ci_high for a in absolute]))
    out["cov_rel"] = float(np.mean([r.ci_low <= true_rel <= r.ci_high for r in relative]))
    out["miss_rel_low"] = float(np.mean([r.ci_high < true_rel for r in relative]))
    out["miss_rel_high"] = float(np.mean([r.ci_low > true_rel for r in relative]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=2000, help="simulations for t_test / t_delta / auto")
    parser.add_argument("--resampling-sims", type=int, default=500, help="simulations for resampling methods")
    parser.add_argument("--n", type=int, nargs="+", default=[30, 100, 300, 1000])
    parser.add_argument("--n-resamples", type=int, default=1000)
    parser.add_argument("--kinds", nargs="+", default=["bounded", "lognormal", "lognormal-paired"])
    parser.add_argument("--methods", nargs="+", default=["t_test", "auto", "bootstrap", "bca", "randomization"])
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    print("| metric kind | n | method | A/A false FAIL, delta | A/A false FAIL, relative | coverage, delta "
          "| coverage, relative (misses low / high) | sims |")
    print("|---|---|---|---|---|---|---|---|")
    with threadpool_limits(1, user_api="blas"):
        for kind in args.kinds:
            for n in args.n:
                rng = np.random.default_rng(args.seed + n)
                c, b, _, _ = draw(kind, n, args.sims, rng, effect=False)
                ff_old, _ = t_delta_relative(c, b, 0.0)
                c, b, _, true_rel = draw(kind, n, args.sims, rng, effect=True)
                _, cov_old = t_delta_relative(c, b, true_rel)
                print(f"| {kind} | {n} | t_delta (old) | — | {ff_old:.1%} | — | {cov_old:.1%} | {args.sims} |",
                      flush=True)
                for method in args.methods:
                    sims = args.sims if method in ("t_test", "auto") else args.resampling_sims
                    start = time.perf_counter()
                    r = rates(kind, n, method, sims, args.seed + n, args.n_resamples)
                    print(f"| {kind} | {n} | {method} | {r['ff_abs']:.1%} | {r['ff_rel']:.1%} | {r['cov_abs']:.1%} | "
                          f"{r['cov_rel']:.1%} ({r['miss_rel_low']:.1%} / {r['miss_rel_high']:.1%}) | {sims} |"
                          f" <!-- {time.perf_counter() - start:.0f}s -->", flush=True)


if __name__ == "__main__":
    main()
