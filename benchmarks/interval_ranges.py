"""Intervals kept inside a metric's range: coverage kept, length saved, by simulation.

A confidence set intersected with the parameter space keeps its coverage (when the truth
lies in [a, b], "theta in [L, U]" and "theta in [max(L, a), min(U, b)]" are the same
event). For each case, ``--runs`` seeded samples; printed: coverage of the raw and the
clipped interval (equal by construction; MC SE sqrt(c (1 - c) / runs)), the share of
runs whose interval was clipped, and the mean length saved.

Cases: the t interval of a rate (hit rate, CTR) at small n; the paired delta of two
rates with ``t_test`` and ``randomization`` (clipped to [-1, 1], relative delta to
[-1, inf)); the analytic IPS interval of a rare click rate (clipped to the reward range
[0, 1]).

    .venv/bin/python benchmarks/interval_ranges.py [--runs 4000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from harness.metrics.off_policy import IPS, OPEInputs
from harness.metrics.stats import infer_paired_means, mean_confidence_interval


def report(label: str, raw: np.ndarray, clipped: np.ndarray, truth: float) -> None:
    """raw, clipped: (runs, 2) intervals."""
    runs = raw.shape[0]
    c_raw = np.mean((raw[:, 0] <= truth) & (truth <= raw[:, 1]))
    c_clip = np.mean((clipped[:, 0] <= truth) & (truth <= clipped[:, 1]))
    changed = (raw != clipped).any(axis=1)
    finite = np.isfinite(raw).all(axis=1)  # a relative delta's upper end may be +inf
    length = raw[finite, 1] - raw[finite, 0]
    saved = length - (clipped[finite, 1] - clipped[finite, 0])
    print(f"{label:<52s} coverage raw {c_raw:.3f} clipped {c_clip:.3f} (MC SE {np.sqrt(c_raw * (1 - c_raw) / runs):.3f})"
          f" | clipped in {np.mean(changed):6.1%} of runs, mean finite length -{saved.sum() / length.sum():5.1%}")


def rate_case(rng: np.random.Generator, runs: int, n: int, p: float) -> None:
    raw, clip = np.empty((runs, 2)), np.empty((runs, 2))
    for r in range(runs):
        x = (rng.random(n) < p).astype(float)
        raw[r] = mean_confidence_interval(x)
        clip[r] = mean_confidence_interval(x, bounds=(0.0, 1.0))
    report(f"t interval of a rate p={p}, n={n}", raw, clip, p)


def delta_case(rng: np.random.Generator, runs: int, n: int, pc: float, pb: float, method: str) -> None:
    raw, clip = np.empty((runs, 2)), np.empty((runs, 2))
    rraw, rclip = np.full((runs, 2), np.nan), np.full((runs, 2), np.nan)
    for r in range(runs):
        c, b = (rng.random(n) < pc).astype(float), (rng.random(n) < pb).astype(float)
        (a0,), (r0,) = infer_paired_means(c, b, method=method, n_resamples=999, seed=r)
        (a1,), (r1,) = infer_paired_means(c, b, method=method, n_resamples=999, seed=r, bounds=[(0.0, 1.0)])
        raw[r], clip[r] = (a0.ci_low, a0.ci_high), (a1.ci_low, a1.ci_high)
        if r0 is not None:
            rraw[r], rclip[r] = (r0.ci_low, r0.ci_high), (r1.ci_low, r1.ci_high)
    report(f"{method} delta of rates {pc} vs {pb}, n={n}", raw, clip, pc - pb)
    ok = ~np.isnan(rraw[:, 0])
    report(f"{method} relative delta, n={n} ({ok.mean():.0%} defined)", rraw[ok], rclip[ok], pc / pb - 1)


def ips_case(rng: np.random.Generator, runs: int, n: int, ctr: float) -> None:
    raw, clip = np.empty((runs, 2)), np.empty((runs, 2))
    for r in range(runs):
        pi_e = rng.uniform(0.0, 1.0, n)
        data = OPEInputs(reward=(rng.random(n) < ctr).astype(float), pscore=np.full(n, 0.5), pi_e=pi_e)
        a, b = IPS().estimate_interval(data), IPS().estimate_interval(data, bounds=(0.0, 1.0))
        raw[r], clip[r] = (a.low, a.high), (b.low, b.high)
    # the policy's value: E[pi_e / 0.5 * r] = E[pi_e] * 2 * ctr ... with pi_e ~ U(0, 1): ctr
    report(f"analytic IPS interval, click rate {ctr}, n={n}", raw, clip, ctr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    for n, p in ((30, 0.03), (100, 0.02), (100, 0.1), (1000, 0.002)):
        rate_case(rng, args.runs, n, p)
    for method in ("t_test", "randomization"):
        for n in (8, 20):
            delta_case(rng, args.runs // 4, n, 0.7, 0.4, method)
    for n, ctr in ((300, 0.01), (3000, 0.002)):
        ips_case(rng, args.runs, n, ctr)
    print(f"({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
