"""Metric-at-k curves of every model: computed once per model, plotted, logged with step = k."""

from __future__ import annotations

from typing import Any

import pandas as pd

CURVE_METRICS = ("ndcg", "recall", "precision", "map", "mrr", "hit_rate")


def curve_names(metrics: list[str]) -> list[str]:
    """Metric names (without cut-off) of the configured metrics that have a cut-off."""
    names = [m.split("@", 1)[0] for m in metrics if "@" in m]
    return [n for n in dict.fromkeys(names) if n in CURVE_METRICS]


def plot_metric_curves(curves: dict[str, pd.DataFrame]) -> Any:
    """One panel per metric, one line per model: mean metric@k against k.

    ``curves[model]`` is a DataFrame indexed by k with one column per metric, as
    returned by ``harness.metrics.metric_curves``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(next(iter(curves.values())).columns)
    n = len(names)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, name in zip(axes.ravel(), names):
        for model, frame in curves.items():
            ax.plot(frame.index, frame[name], label=model, linewidth=1.8)
        ax.set_title(f"{name}@k")
        ax.set_xlabel("k")
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Metric at cut-off k (mean over queries)")
    fig.tight_layout()
    return fig
