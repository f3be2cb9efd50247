"""Reliability diagram: what is drawn equals the curve it was given; PNG written."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.patches import StepPatch  # noqa: E402

from harness.errors import DataValidationError  # noqa: E402
from harness.metrics.calibration import calibration_by_segment, reliability_curve  # noqa: E402
from harness.evaluate.plots import plot_calibration_by_segment, plot_reliability, save_figure  # noqa: E402


def curves() -> dict:
    rng = np.random.default_rng(0)
    p = rng.beta(1.5, 4, 5000)
    y = (rng.random(p.size) < p).astype(int)
    return {"calibrated": reliability_curve(y, p, n_bins=10), "squared": reliability_curve(y, p**2, n_bins=10)}


def test_diagram_draws_each_curve_with_its_wilson_bars_and_histogram() -> None:
    data = curves()
    fig = plot_reliability(data, metrics={"calibrated": {"ece": 0.01}})
    diagram, hist = fig.axes
    np.testing.assert_allclose(diagram.get_lines()[0].get_xydata(), [[0, 0], [1, 1]])  # the diagonal
    assert len(diagram.containers) == 2  # one errorbar per model
    for container, curve in zip(diagram.containers, data.values()):
        filled = curve[curve["count"] > 0]
        line, _, (bars,) = container.lines
        np.testing.assert_allclose(line.get_xdata(), filled["mean_predicted"])
        np.testing.assert_allclose(line.get_ydata(), filled["observed_rate"])
        segments = np.array(bars.get_segments())  # (n_bins, 2 ends, xy)
        np.testing.assert_allclose(segments[:, 0, 1], filled["ci_low"])
        np.testing.assert_allclose(segments[:, 1, 1], filled["ci_high"])
    labels = [t.get_text() for t in fig.legends[0].get_texts()]  # below the axes, never over data
    assert "calibrated (ece=0.0100)" in labels and "squared" in labels
    steps = [p for p in hist.patches if isinstance(p, StepPatch)]
    assert len(steps) == 2
    for step, curve in zip(steps, data.values()):
        np.testing.assert_array_equal(step.get_data().values, curve["count"].to_numpy())
        np.testing.assert_allclose(step.get_data().edges, np.linspace(0, 1, 11))
    assert hist.get_yscale() == "log"
    plt.close(fig)


def test_single_curve_and_png_written(tmp_path) -> None:
    fig = plot_reliability(curves()["squared"], title="one model")
    path = save_figure(fig, tmp_path / "plots" / "reliability.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert not plt.fignum_exists(fig.number)


def test_bad_curves_are_refused() -> None:
    with pytest.raises(DataValidationError, match="nothing to plot"):
        plot_reliability({})
    bad = curves()["squared"].drop(columns=["ci_low"])
    with pytest.raises(DataValidationError, match=r"curves\['m'\]: missing columns \['ci_low'\]"):
        plot_reliability({"m": bad})


def test_segment_bars_equal_the_per_segment_table(tmp_path) -> None:
    rng = np.random.default_rng(1)
    p = rng.beta(1.5, 4, 3000)
    y = (rng.random(p.size) < p).astype(int)
    seg = rng.choice(np.array(["a", "b", "c"]), p.size)
    tables = {"calibrated": calibration_by_segment(y, p, seg), "squared": calibration_by_segment(y, p**2, seg)}
    fig = plot_calibration_by_segment(tables)
    ece_ax, oe_ax = fig.axes
    for ax, metric in ((ece_ax, "ece"), (oe_ax, "oe_ratio")):
        heights = np.array([bar.get_height() for bar in ax.patches]).reshape(2, 3)
        for row, table in zip(heights, tables.values()):
            np.testing.assert_allclose(row, table[metric].to_numpy())
    assert [t.get_text().split("\n")[0] for t in ece_ax.get_xticklabels()] == ["a", "b", "c"]
    assert save_figure(fig, tmp_path / "seg.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(DataValidationError, match=r"tables\['m'\]: missing columns \['ece'\]"):
        plot_calibration_by_segment({"m": tables["squared"].drop(columns=["ece"])})


def test_metric_curves_draw_each_band_and_keep_the_legend_off_the_axes() -> None:
    import pandas as pd

    from harness.evaluate.plots import PALETTE, plot_metric_curves

    k = pd.RangeIndex(1, 6, name="k")
    curves = {m: pd.DataFrame({"ndcg": np.linspace(0.1, 0.5, 5) + i / 10}, index=k) for i, m in enumerate("ab")}
    bands = {m: (c - 0.05, c + 0.05) for m, c in curves.items()}
    fig = plot_metric_curves(curves, bands=bands)
    ax = fig.axes[0]
    assert ax.get_legend() is None and [t.get_text() for t in fig.legends[0].get_texts()] == ["a", "b"]
    for line, band, (model, curve) in zip(ax.get_lines(), ax.collections, curves.items()):
        np.testing.assert_allclose(line.get_ydata(), curve["ndcg"])
        ys = band.get_paths()[0].vertices[:, 1]
        assert ys.min() == pytest.approx(curve["ndcg"].min() - 0.05) and ys.max() == pytest.approx(
            curve["ndcg"].max() + 0.05)
    assert [line.get_color() for line in ax.get_lines()] == list(PALETTE[:2])  # Okabe-Ito, in order
    assert ax.get_xlabel() == "cut-off k (items)" and ax.get_ylabel() == "mean ndcg@k"
    plt.close(fig)
