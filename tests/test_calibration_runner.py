"""Calibration in the runner: the click log with known truth, the oracle click model,
the config section, and a whole run (metrics, per-row units, comparison, gate, plot)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.types import PointwiseModel, Retriever
from harness.spec.config import parse_config
from harness.datasets import make_synthetic
from harness.datasets.synthetic_clicks import click_probabilities, make_click_log
from harness.errors import AdapterError, ConfigError
from harness.metrics.calibration import brier_score, calibration_slope_intercept, reliability_curve
from harness.metrics.calibration_stats import ece_bootstrap
from harness.models.oracle_clicks import OracleClickModel
from harness.apps.run import run

from conftest import small_config


@pytest.fixture(scope="module")
def world():
    return make_synthetic(n_users=600, n_items=150, dim=8, seed=5)


def test_click_log_draws_labels_from_the_documented_true_probability(world) -> None:
    log = make_click_log(world, n_per_user=25, scale=1.2, base_rate=0.2, seed=3)
    assert list(log.columns) == ["query_id", "item_id", "label", "true_p"]
    assert len(log) == 600 * 25
    assert (log.groupby("query_id")["item_id"].nunique() == 25).all()  # distinct impressions per user
    a = world.truth["true_scores"]
    expected = 1 / (1 + np.exp(-(1.2 * (a - a.mean()) / a.std() + np.log(0.2 / 0.8))))
    np.testing.assert_allclose(log["true_p"], expected[log["query_id"], log["item_id"]], rtol=1e-12)
    assert set(log["label"].unique()) <= {0, 1}
    # labels follow true_p: observed clicks within 4 standard errors of the expected count
    sd = np.sqrt((log["true_p"] * (1 - log["true_p"])).sum())
    assert abs(log["label"].sum() - log["true_p"].sum()) < 4 * sd
    again = make_click_log(world, n_per_user=25, scale=1.2, base_rate=0.2, seed=3)
    pd.testing.assert_frame_equal(log, again)


def test_click_log_bad_settings(world) -> None:
    with pytest.raises(ConfigError, match="n_per_user must be in"):
        make_click_log(world, n_per_user=0)
    with pytest.raises(ConfigError, match="base_rate must be in"):
        click_probabilities(world.truth["true_scores"], base_rate=1.0)
    bare = make_synthetic(n_users=5, n_items=10, dim=2, n_train_per_user=2)
    bare.truth = {}
    with pytest.raises(ConfigError, match="no known true scores"):
        make_click_log(bare)


def test_oracle_click_model_returns_true_p_and_its_power(world) -> None:
    log = make_click_log(world, n_per_user=10, seed=1)
    pairs = log[["query_id", "item_id"]]
    model = OracleClickModel(world.truth["true_scores"])
    assert isinstance(model, PointwiseModel) and isinstance(model, Retriever)
    np.testing.assert_allclose(model.predict_proba(pairs), log["true_p"], rtol=1e-15)
    squared = OracleClickModel(world.truth["true_scores"], power=2.0)
    np.testing.assert_allclose(squared.predict_proba(pairs), log["true_p"] ** 2, rtol=1e-14)
    with pytest.raises(AdapterError, match=r"1 rows have unknown ids \(e.g. query 0, item 999\)"):
        model.predict_proba(pd.DataFrame({"query_id": [0], "item_id": [999]}))
    with pytest.raises(ConfigError, match="power must be"):
        OracleClickModel(world.truth["true_scores"], power=0)


def test_true_probability_model_is_calibrated_and_p_squared_is_flagged(world) -> None:
    log = make_click_log(world, n_per_user=60, seed=2)  # 36k impressions
    y, p = log["label"].to_numpy(), log["true_p"].to_numpy()
    truth = ece_bootstrap(y, p, n_bins=10, n_resamples=300, seed=0)
    # within sampling error of 0: below the expected |mean of n_b residuals| summed over bins
    curve = reliability_curve(y, p, n_bins=10)
    filled = curve[curve["count"] > 0]
    v = filled["mean_predicted"] * (1 - filled["mean_predicted"])
    noise = np.sum(np.sqrt(2 * filled["count"] * v / np.pi)) / len(y)
    assert truth.estimate < 3 * noise
    fit = calibration_slope_intercept(y, p)
    assert fit.slope == pytest.approx(1.0, abs=0.06)
    assert fit.intercept == pytest.approx(0.0, abs=0.12)
    squared = ece_bootstrap(y, p**2, n_bins=10, n_resamples=300, seed=0)
    assert squared.ci_low > truth.ci_high
    assert calibration_slope_intercept(y, p**2).slope < 0.8
    assert brier_score(y, p**2) > brier_score(y, p)


def calib_config(tmp_path: Path, **calibration) -> dict:
    cfg = small_config(
        tmp_path,
        candidate={"kind": "oracle_clicks", "params": {"power": 2.0}},
        models={"truth": {"kind": "oracle_clicks"}, "candidate": {"kind": "oracle_clicks", "params": {"power": 2.0}},
                "popularity": {"kind": "popularity"}},
        compare={"baseline": "truth", "candidates": ["candidate"], "n_resamples": 200, "confidence": 0.9},
        gate=[{"metric": "ndcg@10", "role": "primary", "direction": "higher"},
              {"metric": "brier", "role": "guardrail", "direction": "lower", "max_regression": 0.001},
              {"metric": "ece", "role": "guardrail", "direction": "lower", "max_regression": 0.005}],
    )
    cfg["dataset"] = {"kind": "synthetic", "n_users": 200, "n_items": 100, "dim": 8}
    cfg["evaluate"]["calibration"] = {"metrics": ["ece", "brier", "log_loss", "calibration_slope", "oe_ratio",
                                                  "reliability"],
                                      "n_bins": 10, "n_resamples": 200, **calibration}
    return cfg


def test_config_calibration_section(tmp_path) -> None:
    cfg = parse_config(calib_config(tmp_path, strategy="quantile"))
    cal = cfg.evaluate.calibration
    assert cal.metrics == ["ece", "brier", "log_loss", "calibration_slope", "oe_ratio", "reliability"]
    assert cal.strategy == "quantile"
    with pytest.raises(ConfigError, match="unknown metric 'auc'"):
        parse_config(calib_config(tmp_path, metrics=["auc"]))
    with pytest.raises(ConfigError, match="evaluate.calibration.n_bin: unknown key"):
        parse_config(calib_config(tmp_path, n_bin=3))
    bad_gate = calib_config(tmp_path)
    bad_gate["gate"][1]["metric"] = "calibration_slope"  # no paired comparison for it
    with pytest.raises(ConfigError, match="'calibration_slope' is evaluated but cannot be gated"):
        parse_config(bad_gate)
    movielens = calib_config(tmp_path)
    movielens["dataset"] = {"kind": "movielens", "path": str(tmp_path)}
    with pytest.raises(ConfigError, match="evaluate.calibration: needs labels .* or the synthetic dataset"):
        parse_config(movielens)


def _plain_bins(p: np.ndarray, n_bins: int) -> np.ndarray:
    """Uniform bin of each p: edge[j] < p <= edge[j + 1], the first bin also taking 0
    (a plain loop-free restatement of the documented rule, independent of the kernels)."""
    return np.clip(np.ceil(p * n_bins).astype(int) - 1, 0, n_bins - 1)


def _plain_ece(y: np.ndarray, p: np.ndarray, n_bins: int) -> float:
    b = _plain_bins(p, n_bins)
    return sum(abs(y[b == j].mean() - p[b == j].mean()) * (b == j).mean() for j in range(n_bins) if (b == j).any())


def _plain_reliability(y: np.ndarray, p: np.ndarray, n_bins: int) -> float:
    b = _plain_bins(p, n_bins)
    return sum((p[b == j].mean() - y[b == j].mean()) ** 2 * (b == j).mean() for j in range(n_bins) if (b == j).any())


def _plain_slope(y: np.ndarray, p: np.ndarray) -> float:
    """Logistic regression of y on logit(p) by Newton's method (statsmodels-free)."""
    x = np.column_stack([np.ones_like(p), np.log(p / (1 - p))])
    beta = np.zeros(2)
    for _ in range(50):
        mu = 1 / (1 + np.exp(-x @ beta))
        beta += np.linalg.solve(x.T @ (x * (mu * (1 - mu))[:, None]), x.T @ (y - mu))
    return float(beta[1])


def test_run_with_calibration_writes_metrics_units_plot_and_gates_on_brier(tmp_path) -> None:
    outcome = run(parse_config(calib_config(tmp_path)), progress=False)
    out = outcome.results_dir
    data = json.loads((out / "results.json").read_text())
    rows = pd.DataFrame(data["metrics"])
    cal_rows = rows[rows["metric"].isin(["ece", "brier", "log_loss", "calibration_slope", "oe_ratio"])]
    assert set(cal_rows["model"]) == {"truth", "candidate"}  # popularity has no predict_proba
    assert data["calibration"]["skipped_models"] == ["popularity"]
    assert data["families"]["calibration"]["skipped_models"] == ["popularity"]
    n_rows = data["calibration"]["n_rows"]
    assert n_rows == 200 * 20 and (cal_rows["n_units"] == n_rows).all()

    # the values are the plain formulas on the same click log (true p for "truth", p^2 for "candidate")
    dataset = make_synthetic(n_users=200, n_items=100, dim=8, seed=7)
    log = make_click_log(dataset, seed=7 + 1)
    y, p = log["label"].to_numpy().astype(float), log["true_p"].to_numpy()
    value = rows.set_index(["model", "metric"])["value"]
    assert value["truth", "ece"] == pytest.approx(_plain_ece(y, p, 10), abs=1e-12)
    assert value["candidate", "brier"] == pytest.approx(np.mean((p**2 - y) ** 2), abs=1e-12)
    assert value["candidate", "log_loss"] == pytest.approx(
        -np.mean(y * np.log(p**2) + (1 - y) * np.log(1 - p**2)), abs=1e-12)
    assert value["candidate", "reliability"] == pytest.approx(_plain_reliability(y, p**2, 10), abs=1e-12)
    assert value["truth", "calibration_slope"] == pytest.approx(_plain_slope(y, p), abs=1e-8)
    assert value["candidate", "oe_ratio"] == pytest.approx(y.sum() / (p**2).sum(), abs=1e-12)
    # every calibration metric has an interval around its value (t, bootstrap or Wald)
    assert (cal_rows["ci_low"] <= cal_rows["value"]).all() and (cal_rows["value"] <= cal_rows["ci_high"]).all()
    truth_slope = cal_rows.set_index(["model", "metric"]).loc[("truth", "calibration_slope")]
    assert truth_slope["ci_low"] < 1 < truth_slope["ci_high"]

    # per-row units are their own family; they average to the metric
    units = pd.read_parquet(out / "per_unit.parquet")
    clicks = units[units["family"] == "calibration"]
    assert set(clicks["metric"]) == {"brier", "log_loss"}
    assert data["families"]["calibration"]["unit"] == "impression"
    truth_brier = clicks[(clicks["model"] == "truth") & (clicks["metric"] == "brier")]
    assert len(truth_brier) == n_rows
    assert truth_brier["value"].mean() == pytest.approx(np.mean((p - y) ** 2), abs=1e-12)
    assert set(units[units["metric"] == "ndcg@10"]["family"]) == {"ranking"}
    # each row's label and p are inputs (for offline ratio statistics), in their own table
    inputs = pd.read_parquet(out / "unit_inputs.parquet")
    assert set(inputs["family"]) == {"calibration"} and set(inputs["input"]) == {"label", "p"}
    truth_p = inputs[(inputs["model"] == "truth") & (inputs["input"] == "p")]
    np.testing.assert_array_equal(truth_p.sort_values("unit_id", key=lambda s: s.astype(int))["value"], p)

    # paired comparison on rows; the p^2 candidate fails the brier guardrail
    comp = pd.DataFrame(data["comparison"]).set_index("metric")
    assert comp.loc["brier", "delta"] == pytest.approx(np.mean((p**2 - y) ** 2) - np.mean((p - y) ** 2), abs=1e-12)
    assert comp.loc["brier", "n_units"] == n_rows
    assert comp.loc["brier", "outcome"] == "FAIL"
    ece_delta = _plain_ece(y, p**2, 10) - _plain_ece(y, p, 10)
    assert comp.loc["ece", "delta"] == pytest.approx(ece_delta, abs=1e-12)
    assert comp.loc["ece", "ci_low"] < ece_delta < comp.loc["ece", "ci_high"]
    assert comp.loc["ece", "ci_low"] > 0.005 and comp.loc["ece", "outcome"] == "FAIL"
    assert comp.loc["oe_ratio", "delta"] == pytest.approx(np.sum(y) / np.sum(p**2) - np.sum(y) / np.sum(p),
                                                          abs=1e-12)
    assert data["verdict"]["decision"] == "FAIL" and outcome.exit_code == 1

    curve = pd.DataFrame(data["calibration"]["models"]["truth"]["reliability"])
    assert curve["count"].sum() == n_rows
    np.testing.assert_array_equal(curve["count"], np.bincount(_plain_bins(p, 10), minlength=10))
    segments = pd.DataFrame(data["calibration"]["models"]["truth"]["by_segment"])
    assert list(segments["segment"]) == ["q1 least popular", "q2", "q3", "q4", "q5 most popular"] and segments["n"].sum() == n_rows
    for name in ("reliability", "calibration_by_segment"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"


def test_run_without_calibration_is_unchanged(tmp_path) -> None:
    cfg = calib_config(tmp_path)
    del cfg["evaluate"]["calibration"]
    cfg["gate"] = cfg["gate"][:1]
    outcome = run(parse_config(cfg), progress=False)
    data = json.loads((outcome.results_dir / "results.json").read_text())
    assert "calibration" not in data
    assert not (outcome.results_dir / "plots" / "reliability.png").exists()
    assert set(pd.DataFrame(data["metrics"])["metric"]) == {"ndcg@10", "recall@10", "recall@50"}


def test_model_returning_bad_probabilities_is_an_adapter_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(OracleClickModel, "predict_proba", lambda self, pairs: np.full(len(pairs), 1.5))
    with pytest.raises(AdapterError, match=r"model 'truth': \d+ probabilities outside \[0, 1\]"):
        run(parse_config(calib_config(tmp_path)), progress=False)


def test_a_gate_on_calibration_for_a_model_without_probabilities_is_refused_before_fitting(
        tmp_path, capsys) -> None:
    """A candidate with no predict_proba (popularity) gated on brier and ece: validate and
    run refuse it naming the metrics, the family and the model, before any model is
    fitted (run computed every family, then failed at the gate). An extra model that is
    not compared is skipped as before, and the skip is said once."""
    from harness.apps.validate import dry_run

    cfg = calib_config(tmp_path)
    cfg["compare"]["candidates"] = ["popularity"]
    message = r"gate: metric\(s\) \['brier', 'ece'\] \(calibration\) cannot be computed for 'popularity': it has no predict_proba\(\)"
    with pytest.raises(ConfigError, match=message):
        dry_run(parse_config(cfg))
    with pytest.raises(ConfigError, match=message):
        run(parse_config(cfg), output=tmp_path / "out", progress=False)
    assert "fitting" not in capsys.readouterr().err
    ok = run(parse_config(calib_config(tmp_path)), output=tmp_path / "out", progress=False)
    assert ok.result.extra["calibration"]["skipped_models"] == ["popularity"]
    assert capsys.readouterr().err.count("calibration: popularity has no predict_proba(); skipped") == 1
