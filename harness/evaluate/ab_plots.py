"""The ``ab`` family's figures: every treatment's relative lift with its interval (a forest
plot) and a holdout's effect curve over time windows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from harness.evaluate.plots import house_style
from harness.metrics.ab import ABEffect

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def effects_figure(effects: list[ABEffect]) -> "Figure":
    """Relative lift of every treatment on every metric with its interval."""
    rows = [(f"{e.treatment.variant}: {e.metric}", e.relative) for e in effects if e.relative is not None]
    with house_style() as plt:
        fig, ax = plt.subplots(figsize=(7, 0.45 * len(rows) + 1.2))
        for y, (_, inf) in enumerate(rows):
            lo, hi = (np.clip([inf.ci_low, inf.ci_high], -1e3, 1e3) * 100)  # Fieller's may be unbounded
            ax.plot([lo, hi], [y, y], color="tab:blue", lw=2)
            ax.plot(inf.estimate * 100, y, "o", color="tab:blue")
        ax.axvline(0, color="grey", lw=1)
        ax.set_yticks(range(len(rows)), [label for label, _ in rows])
        ax.invert_yaxis()
        ax.set_xlabel(f"relative lift vs {effects[0].control.variant} (%)" if effects else "relative lift (%)")
        ax.set_title("A/B relative lifts with their intervals")
        fig.tight_layout()
    return fig


def effect_curve_figure(windows: list[dict[str, Any]], control: str, window: str) -> "Figure":
    """A holdout's effect curve: each metric's relative lift per window with its band
    (Bonferroni over the windows: all windows covered together), one panel a metric."""
    metrics = list(dict.fromkeys(r["metric"] for r in windows))
    with house_style() as plt:
        fig, axes = plt.subplots(len(metrics), 1, figsize=(7, 2.6 * len(metrics)), squeeze=False, sharex=True)
        for ax, metric in zip(axes[:, 0], metrics):
            for treatment in dict.fromkeys(r["treatment"] for r in windows):
                rows = [r for r in windows if r["metric"] == metric and r["treatment"] == treatment
                        and r["relative_delta"] is not None]
                x = np.arange(len(rows))
                y = np.array([r["relative_delta"] for r in rows]) * 100
                lo = np.clip([r["relative_ci_low"] for r in rows], -10, 10) * 100
                hi = np.clip([r["relative_ci_high"] for r in rows], -10, 10) * 100
                ax.plot(x, y, "o-", label=treatment)
                ax.fill_between(x, lo, hi, alpha=0.2)
                ax.set_xticks(x, [str(r["window"]) for r in rows])
            ax.axhline(0, color="grey", lw=1)
            ax.set_ylabel(f"{metric}\nlift (%)")
            ax.legend(loc="best", fontsize=8)
        level = windows[0]["confidence"]
        n = len({r["window"] for r in windows})
        axes[0, 0].set_title(f"effect over time vs {control} ({level:.2%} intervals: Bonferroni over {n} windows)")
        axes[-1, 0].set_xlabel(window)
        fig.tight_layout()
    return fig
