"""The families' figures: metric@k curves, reliability diagrams with Wilson intervals
and a histogram of p, calibration by segment.

Figures are built with matplotlib's Agg backend (no display needed) and returned to
the caller; :func:`save_figure` writes a PNG and closes the figure.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import pandas as pd

from harness.errors import DataValidationError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CURVE_COLUMNS = ("lower", "upper", "count", "mean_predicted", "observed_rate", "ci_low", "ci_high")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_reliability(curves: pd.DataFrame | Mapping[str, pd.DataFrame], *, title: str | None = None,
                     metrics: Mapping[str, Mapping[str, float]] | None = None) -> "Figure":
    """Reliability diagram (top) and histogram of predicted probabilities (bottom).

    Parameters
    ----------
    curves : DataFrame or mapping of name -> DataFrame
        Output(s) of :func:`harness.metrics.calibration.reliability_curve`, one per
        model. Each model is a line of observed rate against mean predicted
        probability over its non-empty bins, with Wilson-interval error bars; the
        dashed diagonal is perfect calibration.
    title : str, optional
        Figure title.
    metrics : mapping of name -> {metric: value}, optional
        Shown in the legend, e.g. ``{"model": {"ece": 0.012}}``.

    Returns
    -------
    matplotlib.figure.Figure
        The histogram panel shows each model's row count per bin (log scale), drawn
        as steps over the bin edges.
    """
    if isinstance(curves, pd.DataFrame):
        curves = {"model": curves}
    if not curves:
        raise DataValidationError("curves: nothing to plot (no reliability curves given)")
    for name, curve in curves.items():
        missing = [c for c in CURVE_COLUMNS if c not in curve.columns]
        if missing:
            raise DataValidationError(f"curves[{name!r}]: missing columns {missing}; "
                                      "pass the output of reliability_curve()")
    plt = _pyplot()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(6.0, 7.0), sharex=True,
                                   gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfectly calibrated")
    for name, curve in curves.items():
        filled = curve[curve["count"] > 0]
        label = name
        if metrics and name in metrics:
            label += " (" + ", ".join(f"{k}={v:.4f}" for k, v in metrics[name].items()) + ")"
        x, rate = filled["mean_predicted"].to_numpy(), filled["observed_rate"].to_numpy()
        err = np.vstack([rate - filled["ci_low"].to_numpy(), filled["ci_high"].to_numpy() - rate])
        line = ax.errorbar(x, rate, yerr=err, marker="o", markersize=4, linewidth=1.6, capsize=2,
                           label=label)
        edges = np.append(curve["lower"].to_numpy(), curve["upper"].to_numpy()[-1])
        hist.stairs(curve["count"].to_numpy(), edges, color=line[0].get_color(), linewidth=1.4)
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_ylabel("observed positive rate")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax.set_title(title or "Reliability diagram (95% Wilson intervals)")
    hist.set_yscale("log")
    hist.set_xlabel("predicted probability")
    hist.set_ylabel("rows per bin")
    hist.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_calibration_by_segment(tables: Mapping[str, pd.DataFrame], *, metrics: tuple[str, ...] = ("ece", "oe_ratio"),
                                title: str | None = None) -> "Figure":
    """Grouped bars of calibration metrics per segment, one bar per model.

    Parameters
    ----------
    tables : mapping of name -> DataFrame
        Outputs of :func:`harness.metrics.calibration.calibration_by_segment`, one per
        model, over the same segments.
    metrics : tuple of str
        Columns to plot, one panel each; ``oe_ratio`` gets a reference line at 1
        (calibrated in the large), the others at 0.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not tables:
        raise DataValidationError("tables: nothing to plot (no per-segment tables given)")
    for name, table in tables.items():
        missing = [m for m in (*metrics, "n") if m not in table.columns]
        if missing:
            raise DataValidationError(f"tables[{name!r}]: missing columns {missing}; "
                                      "pass the output of calibration_by_segment()")
    segments = list(next(iter(tables.values())).index)
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 3.8), squeeze=False)
    width = 0.8 / len(tables)
    x = np.arange(len(segments))
    for ax, metric in zip(axes[0], metrics):
        for j, (name, table) in enumerate(tables.items()):
            ax.bar(x + (j - (len(tables) - 1) / 2) * width, table.reindex(segments)[metric].to_numpy(),
                   width=width, label=name)
        ax.axhline(1.0 if metric == "oe_ratio" else 0.0, color="grey", linestyle="--", linewidth=1)
        ax.set_xticks(x)
        counts = next(iter(tables.values()))["n"].reindex(segments)
        ax.set_xticklabels([f"{s}\n(n={c})" for s, c in zip(segments, counts)], fontsize=8)
        ax.set_title(metric)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper right", ncol=len(tables), fontsize=8)
    fig.suptitle(title or "Calibration by segment", x=0.02, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def plot_metric_curves(curves: dict[str, pd.DataFrame]) -> "Figure":
    """One panel per metric, one line per model: mean metric@k against k.

    ``curves[model]`` is a DataFrame indexed by k with one column per metric, as
    returned by ``harness.metrics.metric_curves``.
    """
    plt = _pyplot()
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


def plot_attribution_waterfall(metric: str, start: tuple[str, float], end: tuple[str, float],
                               steps: list[tuple[str, float, float, float]],
                               notes: list[str] | None = None) -> "Figure":
    """Waterfall of a metric change: the baseline's value, one floating bar per stage's
    Shapley value (green up, red down) with its interval as a whisker at the bar's end,
    the candidate's value. The steps sum to the change exactly (Shapley efficiency).

    Parameters
    ----------
    metric : str
        The metric, for the title and the y label.
    start, end : (label, value)
        The baseline's and the candidate's value.
    steps : list of (label, estimate, ci_low, ci_high)
        One per stage, in pipeline order.
    notes : list of str, optional
        Lines printed under the bars (e.g. interaction terms).
    """
    if not steps:
        raise DataValidationError(f"waterfall of {metric}: no stage to draw")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.6 * (len(steps) + 2) + 2.4, 4.2 + 0.22 * len(notes or [])))
    x = np.arange(len(steps) + 2)
    ax.bar(x[0], start[1], color="#8c8c8c", width=0.6)
    level = start[1]
    for i, (label, est, low, high) in enumerate(steps, start=1):
        ax.bar(x[i], est, bottom=level, color="#2a9d55" if est >= 0 else "#d1495b", width=0.6)
        top = level + est
        ax.errorbar(x[i], top, yerr=[[est - low], [high - est]], color="black", capsize=5, linewidth=1.2)
        ax.plot([x[i - 1] + 0.3, x[i] - 0.3], [level, level], color="#555555", linewidth=0.8, linestyle=":")
        ax.annotate(f"{est:+.4f}", (x[i], max(top, level)), textcoords="offset points", xytext=(12, 4), fontsize=8)
        level = top
    ax.plot([x[-2] + 0.3, x[-1] - 0.3], [level, level], color="#555555", linewidth=0.8, linestyle=":")
    ax.bar(x[-1], end[1], color="#3b6ea8", width=0.6)
    for i, value in ((0, start[1]), (len(x) - 1, end[1])):
        ax.annotate(f"{value:.4f}", (x[i], value), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    ax.set_xticks(x, [start[0]] + [s[0] for s in steps] + [end[0]], rotation=15)
    values = [start[1], end[1]] + [v for s in steps for v in s[2:]]
    low, high = min(0.0, *values), max(values)
    ax.set_ylim(low, high + 0.12 * (high - low or 1.0))
    ax.set_ylabel(metric)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(f"{metric}: Shapley attribution of the change to the pipeline stages")
    if notes:
        fig.text(0.01, 0.01, "\n".join(notes), fontsize=8, va="bottom", family="monospace")
        fig.tight_layout(rect=(0, 0.04 + 0.035 * len(notes), 1, 1))
    else:
        fig.tight_layout()
    return fig


def save_figure(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG (creating folders) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    _pyplot().close(fig)
    return path
