"""compare_models (mean and ratio-type metrics) and ``harness compare`` on results folders."""

from __future__ import annotations

import json
from pathlib import Path
from xml.etree import ElementTree as ET

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats as sps
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.inference.paired import compare_models
from harness.errors import ConfigError, DataValidationError
from harness.metrics.stats import SumStatistic, ratio_statistic
from harness.results.folder import EvalResult, long_table, write_results
from tests.conftest import migrated_store

METRICS = ["ndcg@10", "recall@100"]


pytestmark = pytest.mark.usefixtures("one_blas_thread")


def tables(n: int = 300, shift: tuple[float, float] = (0.03, 0.0), seed: int = 0) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    index = pd.Index([f"q{i}" for i in range(n)])
    base = rng.beta(3, 4, (n, 2))
    cand = base + np.asarray(shift) + rng.normal(0, 0.05, (n, 2))
    return {"prod": pd.DataFrame(base, index=index, columns=METRICS),
            "cand": pd.DataFrame(cand, index=index, columns=METRICS)}


# ----------------------------------------------------------------------------- compare_models


def test_rows_hold_plain_means_and_deltas():
    per_unit = tables()
    rows = compare_models(per_unit, baseline="prod", candidates=["cand"], metrics=METRICS, method="t_test")
    for row, metric in zip(rows, METRICS):
        b, c = per_unit["prod"][metric].to_numpy(), per_unit["cand"][metric].to_numpy()
        assert row.baseline_value == pytest.approx(b.mean())
        assert row.delta == pytest.approx(c.mean() - b.mean())
        assert row.relative_delta == pytest.approx(c.mean() / b.mean() - 1)
        assert row.p_two_sided == pytest.approx(sps.ttest_rel(c, b).pvalue)
        assert row.n_units == 300 and row.method == "t_test" and row.kind == "mean"
        out = row.to_row()
        assert "inference" not in out and out["ci_low"] < out["delta"] < out["ci_high"]
        json.dumps(out)  # a plain, serialisable row


def test_units_are_paired_by_id_not_by_position():
    per_unit = tables()
    shuffled = dict(per_unit)
    shuffled["cand"] = per_unit["cand"].sample(frac=1.0, random_state=1)
    kwargs = dict(baseline="prod", candidates=["cand"], metrics=METRICS, method="bootstrap", n_resamples=300)
    a = compare_models(per_unit, **kwargs)
    b = compare_models(shuffled, **kwargs)
    assert [r.ci_low for r in a] == [r.ci_low for r in b]


def test_several_candidates_against_one_baseline():
    per_unit = tables()
    per_unit["cand2"] = per_unit["prod"] - 0.01
    rows = compare_models(per_unit, baseline="prod", candidates=["cand", "cand2"], metrics=METRICS,
                          method="bca", n_resamples=300)
    assert [(r.candidate, r.metric) for r in rows] == [(c, m) for c in ("cand", "cand2") for m in METRICS]
    assert rows[2].delta == pytest.approx(-0.01)


def test_unpaired_units_are_refused():
    per_unit = tables()
    per_unit["cand"] = per_unit["cand"].iloc[5:]
    with pytest.raises(DataValidationError, match="5 units only in the baseline, 0 only in the candidate"):
        compare_models(per_unit, baseline="prod", candidates=["cand"], metrics=METRICS)
    per_unit = tables()
    per_unit["cand"] = pd.concat([per_unit["cand"], per_unit["cand"].iloc[:2]])
    with pytest.raises(DataValidationError, match="2 duplicated unit ids"):
        compare_models(per_unit, baseline="prod", candidates=["cand"], metrics=METRICS)
    with pytest.raises(DataValidationError, match="no per-unit values for 1 metric"):
        compare_models(tables(), baseline="prod", candidates=["cand"], metrics=["map@100"])
    with pytest.raises(ConfigError, match="method"):
        compare_models(tables(), baseline="prod", candidates=["cand"], metrics=METRICS, method="z")


def _ece(y: np.ndarray, p: np.ndarray, n_bins: int) -> float:
    """Plain ECE: sum over equal-width bins of |sum(y - p)| / n."""
    total = 0.0
    for k in range(n_bins):
        in_bin = (p >= k / n_bins) & ((p < (k + 1) / n_bins) if k < n_bins - 1 else (p <= 1))
        total += abs(float(np.sum(y[in_bin] - p[in_bin])))
    return total / len(y)


def ece_statistic(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> SumStatistic:
    """How a calibration engineer plugs ECE in: per-unit parts onehot(bin) * (y - p)."""
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    parts = np.zeros((len(p), n_bins))
    parts[np.arange(len(p)), bins] = y - p
    return SumStatistic(parts, lambda s, t: np.abs(s).sum(axis=-1) / t, "ece")


def test_ratio_type_metrics_plug_in_as_sum_statistics():
    rng = np.random.default_rng(4)
    n = 400
    p_base, p_cand = rng.uniform(0.05, 0.95, n), rng.uniform(0.05, 0.95, n)
    y = rng.binomial(1, p_cand).astype(float)
    reward = rng.binomial(1, 0.3, n).astype(float)
    w_base, w_cand = rng.gamma(2, 0.5, n), rng.gamma(3, 0.4, n)
    stats_ = {"prod": {"ece": ece_statistic(y, p_base), "snips": ratio_statistic(w_base * reward, w_base)},
              "cand": {"ece": ece_statistic(y, p_cand), "snips": ratio_statistic(w_cand * reward, w_cand)}}
    rows = compare_models({}, baseline="prod", candidates=["cand"], metrics=["ece", "snips"],
                          method="t_test", n_resamples=999, seed=3, statistics=stats_)
    ece_row, snips_row = rows
    assert ece_row.baseline_value == pytest.approx(_ece(y, p_base, 10))
    assert ece_row.delta == pytest.approx(_ece(y, p_cand, 10) - _ece(y, p_base, 10))
    snips = lambda r, w: (w * r).sum() / w.sum()  # noqa: E731
    assert snips_row.delta == pytest.approx(snips(reward, w_cand) - snips(reward, w_base))
    assert snips_row.relative_delta == pytest.approx(snips(reward, w_cand) / snips(reward, w_base) - 1)
    # t_test needs per-unit means: ratio-type metrics say they were bootstrapped (BCa)
    assert ece_row.method == snips_row.method == "bca" and ece_row.kind == "statistic"
    def snips_delta(r, wb, wc, axis=-1):
        return (wc * r).sum(axis) / wc.sum(axis) - (wb * r).sum(axis) / wb.sum(axis)

    ref = sps.bootstrap((reward, w_base, w_cand), snips_delta, paired=True, n_resamples=999, method="bca",
                        rng=np.random.default_rng(3))
    # the shared resample of both metrics is the one scipy draws for one statistic
    assert snips_row.ci_low == pytest.approx(ref.confidence_interval.low, rel=1e-9)
    assert snips_row.ci_high == pytest.approx(ref.confidence_interval.high, rel=1e-9)


def test_ratio_metric_without_baseline_statistic_is_refused():
    s = ratio_statistic(np.ones(10), np.ones(10))
    with pytest.raises(DataValidationError, match="not for the baseline 'prod'"):
        compare_models({}, baseline="prod", candidates=["cand"], metrics=["snips"], statistics={"cand": {"snips": s}})


# ----------------------------------------------------------------------------- harness compare


def write_run(root: Path, per_unit: dict[str, pd.DataFrame], *, fingerprint: str = "fp1",
              gate: list | None = None, compare: dict | None = None) -> Path:
    result = EvalResult(
        run_id=f"run-{len(list(root.glob('*'))) if root.exists() else 0}", created_at="2026-11-23T10:00:00+00:00",
        config={"name": "t", "seed": 1, "gate": gate or [], "compare": compare},
        config_hash="h", dataset={"name": "synthetic", "fingerprint": fingerprint},
        metrics=[], per_unit=long_table("ranking", per_unit))
    return write_results(result, root)


GATE = [{"metric": "ndcg@10", "role": "primary", "direction": "higher"},
        {"metric": "recall@100", "role": "guardrail", "direction": "higher", "max_regression": 0.01}]


def invoke(*args: str):
    return CliRunner().invoke(app, ["compare", *args])


@pytest.mark.parametrize("shift, code, decision", [((0.03, 0.0), 0, "PASS"), ((0.03, -0.05), 1, "FAIL"),
                                                    ((0.0, 0.0), 1, "INCONCLUSIVE")])
def test_cli_compare_exit_codes_follow_the_verdict(tmp_path, shift, code, decision):
    per_unit = tables(shift=shift)
    base = write_run(tmp_path / "a", {"prod": per_unit["prod"]})
    cand = write_run(tmp_path / "b", {"cand": per_unit["cand"]}, gate=GATE)
    out = invoke(str(base), str(cand), "--n-resamples", "500", "--output", str(tmp_path / "out"))
    assert out.exit_code == code, out.output
    assert f"GATE: {decision}" in out.stdout
    folder = next(p for p in (tmp_path / "out").iterdir() if p.is_dir())
    data = json.loads((folder / "results.json").read_text())
    assert data["verdict"]["decision"] == decision
    assert {r["metric"] for r in data["comparison"]} == set(METRICS)
    suite = ET.parse(folder / "junit.xml").getroot()
    assert suite.get("tests") == "2"
    assert (folder / "summary.md").read_text().startswith("## ")
    if decision == "INCONCLUSIVE":
        assert invoke(str(base), str(cand), "--n-resamples", "500", "--inconclusive", "pass").exit_code == 0


def test_cli_compare_picks_models_and_gate_file(tmp_path):
    per_unit = tables(shift=(0.03, -0.05))
    both = write_run(tmp_path / "a", per_unit, compare={"baseline": "prod", "candidates": ["cand"]})
    gate = tmp_path / "gate.yaml"
    gate.write_text(yaml.safe_dump({"gate": [GATE[0]]}))
    # the same folder on both sides: the candidate side defaults to its config's candidate
    out = invoke(str(both), str(both), "--baseline-model", "prod", "--gate", str(gate), "--method", "t_test")
    assert out.exit_code == 0, out.output  # the guardrail regression is not gated by this file
    out = invoke(str(both), str(both), "--gate", str(gate))
    assert out.exit_code == 2 and "--baseline-model" in out.stderr
    # a key typo in the gate file reads as in a run config (it was "gate[0.directon]: Extra inputs ...")
    gate.write_text(yaml.safe_dump([{**GATE[0], "directon": "higher"}]))
    out = invoke(str(both), str(both), "--baseline-model", "prod", "--gate", str(gate))
    assert out.exit_code == 2 and f"invalid config --gate {gate}:\n  gate[0].directon: unknown key; did you mean " \
        "'direction'?" in out.stderr, out.output


@pytest.mark.parametrize("case, message", [
    ("missing", "neither a results folder"),
    ("fingerprint", "different data"),
    ("bad_gate", "max_regression"),
    ("metric", "not in both runs"),
])
def test_cli_compare_bad_input_exits_2(tmp_path, case, message):
    per_unit = tables()
    if case == "metric":  # a metric in both runs that no gate criterion names
        per_unit = {name: frame.assign(**{"mrr@10": frame.iloc[:, 0] / 2}) for name, frame in per_unit.items()}
    base = write_run(tmp_path / "a", {"prod": per_unit["prod"]},
                     fingerprint="other" if case == "fingerprint" else "fp1")
    cand = write_run(tmp_path / "b", {"cand": per_unit["cand"]}, gate=GATE)
    args = [str(base), str(cand)]
    if case == "missing":
        args[0] = str(tmp_path / "nope")
    if case == "bad_gate":
        gate = tmp_path / "g.yaml"
        gate.write_text(yaml.safe_dump([{"metric": "ndcg@10", "role": "guardrail"}]))
        args += ["--gate", str(gate)]
    if case == "metric":
        args += ["--metrics", "map@100"]
    out = invoke(*args)
    assert out.exit_code == 2, out.output
    assert message in out.stderr
    if case == "metric":  # every metric both runs have (it listed the gate's only)
        assert f"common: {list(per_unit['cand'].columns)}" in out.stderr, out.stderr


def test_cli_compare_reads_mlflow_run_ids(tmp_path):
    """A harness parent run logs results.json and per_unit.parquet as artifacts."""
    from mlflow.tracking import MlflowClient

    per_unit = tables(shift=(0.03, 0.0))
    uri = f"sqlite:///{migrated_store(tmp_path / 'mlflow.db')}"
    client = MlflowClient(uri)
    experiment = client.create_experiment("gate", artifact_location=str(tmp_path / "artifacts"))
    run_ids = []
    for name, model, gate in (("a", "prod", None), ("b", "cand", GATE)):
        folder = write_run(tmp_path / name, {model: per_unit[model]}, gate=gate)
        run = client.create_run(experiment)
        for file in ("results.json", "per_unit.parquet"):
            client.log_artifact(run.info.run_id, str(folder / file))
        run_ids.append(run.info.run_id)
    out = invoke(run_ids[0], f"runs:/{run_ids[1]}", "--tracking-uri", uri, "--n-resamples", "300")
    assert out.exit_code == 0, out.output
    assert "GATE: PASS" in out.stdout
    missing = invoke("0" * 32, run_ids[1], "--tracking-uri", uri)
    assert missing.exit_code == 2 and "cannot download artifact" in missing.stderr


@pytest.mark.parametrize("method", ["bca", "randomization"])
def test_runner_gates_with_every_configured_method(tmp_path, method):
    from harness.spec.config import parse_config
    from harness.apps.run import run
    from tests.conftest import small_config

    cfg = small_config(tmp_path)
    cfg["compare"] = {**cfg["compare"], "method": method}
    outcome = run(parse_config(cfg), progress=False)
    assert outcome.exit_code == 0 and outcome.result.verdict["decision"] == "PASS"
    data = json.loads((outcome.results_dir / "results.json").read_text())
    assert {r["method"] for r in data["comparison"]} == {method}
    assert all(r["ci_low"] <= r["delta"] <= r["ci_high"] for r in data["comparison"])


def test_general_weighted_statistics_plug_in_too():
    """E.g. a calibration slope or AUC: any statistic of weighted units."""
    from harness.metrics.stats import WeightedStatistic

    rng = np.random.default_rng(6)
    n = 200
    y = rng.normal(size=n)
    p_base, p_cand = y + rng.normal(0, 1.0, n), y + rng.normal(0, 0.5, n)

    def slope(p: np.ndarray) -> WeightedStatistic:  # weighted least-squares slope of y on p
        def fn(w: np.ndarray) -> np.ndarray:
            sw = w.sum(1)
            mp, my = (w * p).sum(1) / sw, (w * y).sum(1) / sw
            return (w * (p - mp[:, None]) * (y - my[:, None])).sum(1) / (w * (p - mp[:, None]) ** 2).sum(1)
        return WeightedStatistic(fn, n, "slope")

    rows = compare_models({}, baseline="prod", candidates=["cand"], metrics=["slope"], method="randomization",
                          n_resamples=300, statistics={"prod": {"slope": slope(p_base)},
                                                       "cand": {"slope": slope(p_cand)}})
    (row,) = rows
    ref = lambda p: np.polyfit(p, y, 1)[0]  # noqa: E731
    assert row.baseline_value == pytest.approx(ref(p_base))
    assert row.delta == pytest.approx(ref(p_cand) - ref(p_base))
    assert row.method == "bca" and row.ci_low < row.delta < row.ci_high
    with pytest.raises(DataValidationError, match="same kind of statistic"):
        compare_models({}, baseline="prod", candidates=["cand"], metrics=["slope"],
                       statistics={"prod": {"slope": ratio_statistic(y, y)}, "cand": {"slope": slope(p_cand)}})


def test_relative_delta_undefined_on_some_resamples_leaves_the_absolute_delta() -> None:
    """A baseline whose metric is 0 on most units: some resamples have a baseline mean of
    0, so the relative delta has no bootstrap interval, but the absolute delta still does."""
    from harness.metrics.stats import infer_paired_means

    base = np.zeros((6, 2))
    base[0, 0] = 1.0  # column 0: one non-zero unit -> resamples without it divide by zero
    base[:, 1] = 1.0
    cand = base + 0.5
    absolute, relative = infer_paired_means(cand, base, method="bootstrap", n_resamples=200, seed=0)
    assert [a.estimate for a in absolute] == pytest.approx([0.5, 0.5])
    assert relative[0] is None and relative[1].estimate == pytest.approx(0.5)
