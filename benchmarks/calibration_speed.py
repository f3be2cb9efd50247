"""Speed of the calibration metrics at 1M rows, beside scikit-learn where it has one.

Best of 3 warm calls (the bootstrap: one call). Labels are drawn from the true
probabilities p ~ Beta(2, 5); segments are 50 equally likely codes.

    .venv/bin/python benchmarks/calibration_speed.py [--n 1000000] [--n-resamples 1000]
"""

from __future__ import annotations

import argparse
import time
from typing import Callable

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss
from sklearn.metrics import log_loss as sk_log_loss

from harness.metrics.calibration import (brier_score, calibration_by_segment, calibration_slope_intercept,
                                         calibration_summary, expected_calibration_error, log_loss,
                                         reliability_curve)
from harness.metrics.calibration_stats import ece_bootstrap


def best_of(fn: Callable[[], object], repeats: int = 3) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--n-resamples", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    p = rng.beta(2, 5, args.n)
    y = (rng.random(args.n) < p).astype(np.int64)
    seg = rng.integers(0, 50, args.n)
    rows = [
        ("ece, 15 uniform bins", lambda: expected_calibration_error(y, p), None),
        ("ece, 15 quantile bins", lambda: expected_calibration_error(y, p, strategy="quantile"), None),
        ("reliability curve (uniform)", lambda: reliability_curve(y, p), lambda: calibration_curve(y, p, n_bins=15)),
        ("brier", lambda: brier_score(y, p), lambda: brier_score_loss(y, p)),
        ("log loss", lambda: log_loss(y, p), lambda: sk_log_loss(y, y_proba=p)),
        ("slope + intercept (exact MLE)", lambda: calibration_slope_intercept(y, p), None),
        ("all metrics (summary)", lambda: calibration_summary(y, p), None),
        ("all metrics x 50 segments, uniform", lambda: calibration_by_segment(y, p, seg), None),
        ("all metrics x 50 segments, quantile", lambda: calibration_by_segment(y, p, seg, strategy="quantile"), None),
    ]
    print(f"n = {args.n:,} rows")
    print(f"{'operation':40s} {'harness':>10s} {'sklearn':>10s}")
    for name, ours, theirs in rows:
        ref = f"{best_of(theirs):9.3f}s" if theirs else f"{'-':>10s}"
        print(f"{name:40s} {best_of(ours):9.3f}s {ref}")
    start = time.perf_counter()
    ece_bootstrap(y, p, n_resamples=args.n_resamples, seed=0)
    print(f"{f'ece bootstrap, {args.n_resamples} resamples':40s} {time.perf_counter() - start:9.2f}s {'-':>10s}")


if __name__ == "__main__":
    main()
