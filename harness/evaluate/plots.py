"""The families' figures: metric@k curves with interval bands, reliability diagrams with
Wilson intervals and a histogram of p, calibration by segment.

Figures are built with matplotlib's Agg backend (no display needed) and returned to
the caller; :func:`save_figure` writes a PNG and closes the figure. One style for all
(:func:`house_style`): the Okabe-Ito palette, which stays distinguishable with the common
colour-vision deficiencies, labelled axes, legends outside the axes so they never hide
data, and log axes ticked in plain numbers (10, 100, 1,000).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np
import pandas as pd

from harness.errors import DataValidationError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CURVE_COLUMNS = ("lower", "upper", "count", "mean_predicted", "observed_rate", "ci_low", "ci_high")
# Okabe & Ito (2008), "Color Universal Design": blue, orange, green, purple, sky, vermillion, yellow, black
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
REFERENCE = "#6E6E6E"  # reference lines (perfect calibration, O/E = 1)
STYLE = {"axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
         "axes.titlesize": 11, "axes.labelsize": 10, "xtick.labelsize": 9, "ytick.labelsize": 9,
         "legend.fontsize": 9, "legend.frameon": False, "figure.titlesize": 12, "lines.linewidth": 1.8,
         # titles at a fixed height over the panel: placing them automatically measures every
         # tick label of the figure (to clear ticks on top, which no harness figure has), which
         # was a third of the time to save a figure
         "axes.titley": 1.0}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@contextlib.contextmanager
def house_style() -> Iterator[Any]:
    """The harness's plot style for the figures made inside the block; yields pyplot."""
    plt = _pyplot()
    from cycler import cycler

    with plt.rc_context({**STYLE, "axes.prop_cycle": cycler(color=PALETTE)}):
        yield plt


def _plain_log_ticks(axis: Any) -> None:
    """Log-scale ticks at 1, 2, 5 x 10^n, written as plain numbers (1,000, not 10^3)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def _legend_below(fig: Any, handles: list[Any], labels: list[str]) -> None:
    """The figure's legend under the axes (constrained layout makes room): never over data."""
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 3))


def _grid_margins(fig: Any, *, legend_rows: int) -> None:
    """Room around a grid of panels (each with a title, axis labels and tick labels) for
    the figure's title above and its legend below, in inches of the house style's font
    sizes. A fixed layout: constrained layout measures every text several times and
    doubled the time to save a many-panel figure, which every run pays."""
    width, height = fig.get_size_inches()
    grid = fig.axes[0].get_subplotspec().get_gridspec()
    title_lines = fig.get_suptitle().count("\n") + 1
    top = 0.55 + 0.2 * title_lines  # the figure's title, then a panel's title
    bottom = 0.55 + 0.25 * legend_rows  # x tick labels and x label, then the legend
    # wspace/hspace are fractions of a panel's width/height: the y label, the x label + title
    panel_w = (width - 1.05) / grid.ncols
    panel_h = (height - top - bottom) / grid.nrows
    fig.subplots_adjust(left=0.75 / width, right=1 - 0.3 / width, top=1 - top / height, bottom=bottom / height,
                        wspace=0.85 / panel_w, hspace=1.05 / panel_h)


SEGMENT_TITLES = {"ece": "ECE (0 = calibrated)", "oe_ratio": "observed / expected (1 = calibrated)"}


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
    with house_style() as plt:
        fig, (ax, hist) = plt.subplots(2, 1, figsize=(6.0, 7.4), sharex=True, layout="constrained",
                                       gridspec_kw={"height_ratios": [3, 1]})
        _draw_reliability(ax, hist, curves, metrics)
        ax.set_title(title or "Reliability diagram (95% Wilson intervals)")
        _legend_below(fig, *ax.get_legend_handles_labels())
    return fig


def _draw_reliability(ax: Any, hist: Any, curves: Mapping[str, pd.DataFrame],
                      metrics: Mapping[str, Mapping[str, float]] | None) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color=REFERENCE, linewidth=1, label="perfectly calibrated")
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
    hist.set_yscale("log")
    _plain_log_ticks(hist.yaxis)
    hist.set_xlabel("predicted probability (bin mean)")
    hist.set_ylabel("rows per bin")


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
    counts = next(iter(tables.values()))["n"].reindex(segments)
    width = 0.8 / len(tables)
    x = np.arange(len(segments))
    with house_style() as plt:
        fig, axes = plt.subplots(1, len(metrics), figsize=(4.8 * len(metrics), 4.2), squeeze=False,
                                 layout="constrained")
        for ax, metric in zip(axes[0], metrics):
            for j, (name, table) in enumerate(tables.items()):
                ax.bar(x + (j - (len(tables) - 1) / 2) * width, table.reindex(segments)[metric].to_numpy(),
                       width=width, label=name)
            ax.axhline(1.0 if metric == "oe_ratio" else 0.0, color=REFERENCE, linestyle="--", linewidth=1)
            ax.set_xticks(x)
            # "q1 least popular" -> "q1" over "least popular": long names stay inside their group
            ax.set_xticklabels([f"{str(s).replace(' ', chr(10), 1)}\n(n={c:,})" for s, c in zip(segments, counts)],
                               fontsize=8)
            ax.set_title(SEGMENT_TITLES.get(metric, metric))
            ax.set_ylabel(metric)
            ax.grid(axis="x", visible=False)
        fig.suptitle(title or "Calibration by segment")
        _legend_below(fig, *axes[0, 0].get_legend_handles_labels())
    return fig


def plot_metric_curves(curves: Mapping[str, pd.DataFrame], *,
                       bands: Mapping[str, tuple[pd.DataFrame, pd.DataFrame]] | None = None,
                       confidence: float = 0.95) -> "Figure":
    """One panel per metric, one line per model: mean metric@k against k, with its interval.

    Parameters
    ----------
    curves : mapping of model -> DataFrame
        Indexed by k with one column per metric, as returned by
        ``harness.metrics.metric_curves``.
    bands : mapping of model -> (low, high), optional
        Interval bounds shaped like ``curves[model]``, drawn as a shaded band.
    confidence : float
        The bands' level, for the title.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not curves:
        raise DataValidationError("curves: nothing to plot (no metric@k curves given)")
    names = list(next(iter(curves.values())).columns)
    n = len(names)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    with house_style() as plt:
        fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows + 0.5), squeeze=False)
        for ax, name in zip(axes.ravel(), names):
            for (model, frame), color in zip(curves.items(), PALETTE * len(curves)):
                ax.plot(frame.index, frame[name], label=model, color=color)
                if bands and model in bands:
                    low, high = bands[model]
                    ax.fill_between(frame.index, low[name], high[name], color=color, alpha=0.2, linewidth=0)
            ax.set_title(f"{name}@k")
            ax.set_xlabel("cut-off k (items)")
            ax.set_ylabel(f"mean {name}@k")
            ax.set_xlim(frame.index.min(), frame.index.max())
            ax.set_ylim(bottom=0)
            # at most 5 steps on the value axis (matplotlib's default, up to 9, wrote 0.000 to
            # 0.175 by 0.025): easier to read, and ticks are a quarter of the time to save it
            ax.locator_params(axis="y", nbins=5)
        for ax in axes.ravel()[n:]:
            ax.set_visible(False)
        level = f", {confidence:.0%} intervals shaded" if bands else ""
        # one panel is 4.2 in wide: the title on two lines there, or it is cut at the edges
        fig.suptitle(f"Metric at cut-off k{chr(10) if cols == 1 else ' '}(mean over queries{level})")
        handles, labels = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncols=min(len(labels), 3))
        _grid_margins(fig, legend_rows=-(-len(labels) // 3))
    return fig


def plot_attribution_waterfall(metric: str, start: tuple[str, float], end: tuple[str, float],
                               steps: list[tuple[str, float, float, float]],
                               notes: list[str] | None = None, *, title: str | None = None) -> "Figure":
    """Waterfall of a metric change: the baseline's value, one floating bar per stage's
    Shapley value (green up, red down) with its interval as a whisker at the bar's end,
    the candidate's value. The steps sum to the change exactly (Shapley efficiency).
    The segment decomposition draws the same chart, a step per segment's within effect
    plus the mix shift (a step without an interval has NaN bounds and no whisker).

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
    title : str, optional
        Default: "<metric>: Shapley attribution of the change to the pipeline stages".
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
        if np.isfinite(low) and np.isfinite(high):
            ax.errorbar(x[i], top, yerr=[[est - low], [high - est]], color="black", capsize=5, linewidth=1.2)
        ax.plot([x[i - 1] + 0.3, x[i] - 0.3], [level, level], color="#555555", linewidth=0.8, linestyle=":")
        ax.annotate(f"{est:+.4f}", (x[i], max(top, level)), textcoords="offset points", xytext=(12, 4), fontsize=8)
        level = top
    ax.plot([x[-2] + 0.3, x[-1] - 0.3], [level, level], color="#555555", linewidth=0.8, linestyle=":")
    ax.bar(x[-1], end[1], color="#3b6ea8", width=0.6)
    for i, value in ((0, start[1]), (len(x) - 1, end[1])):
        ax.annotate(f"{value:.4f}", (x[i], value), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=8)
    ax.set_xticks(x, [start[0]] + [s[0] for s in steps] + [end[0]], rotation=15)
    # in view: every bar's ends and every whisker, drawn from the level the step starts at
    before = start[1] + np.r_[0.0, np.cumsum([s[1] for s in steps])[:-1]]
    values = [start[1], end[1], *(before + [s[1] for s in steps]).tolist()]
    values += [lvl + v for lvl, s in zip(before, steps) for v in s[2:] if np.isfinite(v)]
    low, high = min(0.0, *values), max(values)
    ax.set_ylim(low, high + 0.12 * (high - low or 1.0))
    ax.set_ylabel(metric)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title or f"{metric}: Shapley attribution of the change to the pipeline stages")
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
    # zlib level 1, not PIL's 6: a fifth of the time to save a figure, for files ~7% larger
    # (flat colours compress well at any level)
    fig.savefig(path, dpi=dpi, format="png", pil_kwargs={"compress_level": 1})
    _pyplot().close(fig)
    return path
