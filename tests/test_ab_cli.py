"""``harness ab`` end to end: exit codes (0 PASS, 1 FAIL, 2 bad input, 4 INVALID), the results
folder, statistics input == per-unit input, cluster designs, MLflow logging, ``harness ab plan``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.metrics.ab_power import ab_mde, ab_sample_size
from tests.conftest import migrated_store


def _data(tmp_path: Path, *, n: int = 6000, lift: float = 0.5, ctr_lift: float = 0.0, share: float = 0.5,
          seed: int = 0, clusters: int | None = None, fmt: str = "parquet") -> Path:
    rng = np.random.default_rng(seed)
    treated = rng.random(n) < share
    if clusters is not None:  # whole markets randomised
        market = rng.integers(0, clusters, n)
        treated = (rng.random(clusters) < share)[market]
    pre = rng.gamma(2, 5, n)
    df = pd.DataFrame({
        "user_id": [f"u{i:06d}" for i in range(n)],
        "variant": np.where(treated, "treatment", "control"),
        "revenue": 0.7 * pre + rng.gamma(2, 2, n) + lift * treated, "pre_revenue": pre,
        "impressions": rng.poisson(30, n) + 1})
    df["clicks"] = rng.binomial(df["impressions"], 0.05 * (1 + ctr_lift * treated))
    df["converted"] = (rng.random(n) < 0.1).astype(int)
    if clusters is not None:
        df["market"] = [f"m{k}" for k in market]
    path = tmp_path / f"exp.{fmt}"
    df.to_parquet(path) if fmt == "parquet" else df.to_csv(path, index=False)
    return path


def _config(tmp_path: Path, **over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "ab-test",
        "columns": {"variant": "variant", "unit": "user_id"},
        "variants": {"control": "control", "treatments": ["treatment"]},
        "metrics": {"revenue": {"mean": "revenue", "covariate": "pre_revenue"},
                    "ctr": {"ratio": ["clicks", "impressions"]},
                    "conversion": {"proportion": "converted"}},
        "gate": [{"metric": "revenue", "role": "primary", "direction": "higher"},
                 {"metric": "ctr", "role": "guardrail", "direction": "higher", "max_regression": 0.05,
                  "relative": True}],
        "tracking": {"enabled": False},
        "output": str(tmp_path / "results"),
    }
    cfg.update(over)
    return cfg


def _run(tmp_path: Path, data: Path, cfg: dict[str, Any], *extra: str) -> tuple[int, str, dict[str, Any] | None]:
    path = tmp_path / "ab.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = Path(cfg["output"])
    before = set(out.glob("2*")) if out.exists() else set()
    # figures only where a test asks for them (--plots): the rest read numbers and verdicts
    plots = [] if "--plots" in extra else ["--no-plots"]
    res = CliRunner().invoke(app, ["ab", str(data), "--config", str(path), *plots, *extra])
    new = sorted(set(out.glob("2*")) - before) if out.exists() else []  # this run's folder (ids may share a second)
    data_json = json.loads((new[0] / "results.json").read_text()) if new else None
    return res.exit_code, res.output, data_json


def test_pass_writes_the_results_folder_and_matches_scipy(tmp_path: Path) -> None:
    data = _data(tmp_path)
    code, out, res = _run(tmp_path, data, _config(tmp_path), "--plots")
    assert code == 0, out
    assert "GATE: PASS" in out and "SRM: ok" in out and "Traceback" not in out
    folder = tmp_path / "results" / res["run_id"]
    for name in ("results.json", "per_unit.parquet", "summary.md", "junit.xml", "statistics.csv",
                 "plots/ab_effects.png"):
        assert (folder / name).is_file(), name
    rows = {r["metric"]: r for r in res["comparison"]}
    df = pd.read_parquet(data)
    t, c = (df[df.variant == v] for v in ("treatment", "control"))
    ref = stats.ttest_ind(t.converted, c.converted, equal_var=False)
    assert rows["conversion"]["p_two_sided"] == pytest.approx(ref.pvalue, rel=1e-8)
    assert rows["revenue"]["method"] == "cuped" and rows["revenue"]["variance_reduction"] > 0.5
    # the console's comparison says its CUPED delta is not the difference of the raw means shown above it
    r = rows["revenue"]
    assert (f"revenue: delta adjusted by CUPED (adjusted means {r['baseline_value']:.4f} vs "
            f"{r['candidate_value']:.4f}, variance {-r['variance_reduction']:+.2%}); the metric table shows raw "
            "means") in " ".join(out.split())
    assert "conversion: delta adjusted" not in out
    assert rows["revenue"]["outcome"] == "PASS" and res["verdict"]["decision"] == "PASS"
    assert res["ab"]["srm"]["invalid"] is False
    per_unit = pd.read_parquet(folder / "per_unit.parquet")  # as the README says: the usual columns, no rows
    assert list(per_unit.columns) == ["family", "model", "unit_id", "metric", "value"] and per_unit.empty
    summary = (folder / "summary.md").read_text()
    assert "### Sample ratio" in summary
    # the variants are independent groups: neither the summary nor the report calls the comparison paired
    assert "(independent groups, " in summary and "(paired" not in summary
    html = (folder / "report.html").read_text()  # the HTML report's A/B section: variants, effects, SRM, plot
    assert "A/B test" in html and "Sample ratio: chi2" in html and "Treatment effects with their intervals" in html
    assert "Paired comparison" not in html
    assert f"{rows['conversion']['delta']:+.4f}" in html


def test_a_regression_beyond_the_guardrail_fails(tmp_path: Path) -> None:
    code, out, res = _run(tmp_path, _data(tmp_path, ctr_lift=-0.3, n=20_000), _config(tmp_path))
    assert code == 1, out
    assert not (tmp_path / "results" / res["run_id"] / "plots").exists()  # --no-plots: no effects chart
    ctr = next(c for c in res["verdict"]["criteria"] if c["metric"] == "ctr")
    assert ctr["outcome"] == "FAIL" and res["verdict"]["decision"] == "FAIL"


def test_inconclusive_follows_the_policy(tmp_path: Path) -> None:
    data = _data(tmp_path, lift=0.0, n=400)
    cfg = _config(tmp_path, gate=[{"metric": "conversion", "role": "primary", "min_improvement": 0.05}])
    assert _run(tmp_path, data, cfg)[0] == 1
    code, out, res = _run(tmp_path, data, cfg, "--inconclusive", "pass")
    assert code == 0 and res["verdict"]["decision"] == "INCONCLUSIVE"


def test_sample_ratio_mismatch_is_invalid_with_exit_4(tmp_path: Path) -> None:
    data = _data(tmp_path, share=0.53, n=20_000)  # planned 50/50
    code, out, res = _run(tmp_path, data, _config(tmp_path), "--inconclusive", "pass")
    assert code == 4, out
    assert res["verdict"]["decision"] == "INVALID" and res["ab"]["srm"]["invalid"]
    assert "SRM: INVALID" in out and res["verdict"]["reasons"][0].startswith("INVALID: sample ratio mismatch")
    folder = tmp_path / "results" / res["run_id"]
    assert "MISMATCH" in (folder / "summary.md").read_text()
    assert "MISMATCH: the result is INVALID" in (folder / "report.html").read_text()
    junit = (folder / "junit.xml").read_text()
    assert 'name="sample ratio"' in junit and 'type="invalid"' in junit
    # the planned split is what the counts are tested against
    code, _, res = _run(tmp_path, data, _config(tmp_path, variants={
        "control": "control", "treatments": ["treatment"], "split": {"control": 0.47, "treatment": 0.53}}))
    assert code == 0 and not res["ab"]["srm"]["invalid"]


def test_statistics_input_gives_the_per_unit_numbers(tmp_path: Path) -> None:
    data = _data(tmp_path, fmt="csv")
    code, _, first = _run(tmp_path, data, _config(tmp_path))
    assert code == 0
    stats_file = tmp_path / "results" / first["run_id"] / "statistics.csv"
    cfg = _config(tmp_path, input="statistics", columns={"variant": "variant"},
                  output=str(tmp_path / "results2"))
    code, out, second = _run(tmp_path, stats_file, cfg)
    assert code == 0, out
    for a, b in zip(first["comparison"], second["comparison"]):
        for key in ("delta", "ci_low", "ci_high", "relative_ci_low", "relative_ci_high", "p_two_sided",
                    "variance_reduction"):
            assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-300), key


def test_statistics_no_data_could_give_are_refused_naming_the_variant(tmp_path: Path) -> None:
    """An edited or mis-joined statistics table: a negative variance, a correlation outside
    [-1, 1], a proportion summing past its units. Exit 2 naming the file, the variant and
    the rule (they were analysed: zero-width intervals, a conversion rate of 10.2)."""
    code, _, first = _run(tmp_path, _data(tmp_path, fmt="csv"), _config(tmp_path))
    good = pd.read_csv(tmp_path / "results" / first["run_id"] / "statistics.csv")
    control = good["variant"] == "control"
    n = int(good.loc[control, "n"].iloc[0])
    s, ss = good.loc[control, "sum(revenue)"].iloc[0], good.loc[control, "sum(revenue*revenue)"].iloc[0]
    cases = {
        "sum(revenue*revenue)": (0.0, r"variant 'control': sum\(revenue\*revenue\) = 0 is below sum\(revenue\)\^2 / n"),
        # a perfect correlation and a bit more: (n sum(ab) - sum(a) sum(b))^2 > var_a var_b
        "sum(revenue*pre_revenue)": (None, r"sum\(revenue\*pre_revenue\) = .* gives revenue and pre_revenue a "
                                          r"correlation outside \[-1, 1\]"),
        # a negative count with sum(x^2) = 1: the variance is >= 0, only the proportion's range refuses it
        "sum(converted)": (-1.0, rf"variant 'control': sum\(converted\) = -1 with {n} units: a "
                                 rf"proportion's sum counts units, so it lies in \[0, {n}\]"),
    }
    for k, (column, (value, message)) in enumerate(cases.items()):
        bad = good.copy()
        if column == "sum(revenue*pre_revenue)":
            sp, ssp = bad.loc[control, "sum(pre_revenue)"].iloc[0], bad.loc[control, "sum(pre_revenue*pre_revenue)"].iloc[0]
            var_a, var_b = n * ss - s * s, n * ssp - sp * sp
            value = (s * sp + 1.01 * np.sqrt(var_a * var_b)) / n
        if column == "sum(converted)":  # its cross products with other columns not given (they are optional)
            bad.loc[control, "sum(converted*converted)"] = 1.0
            bad = bad.drop(columns=[c for c in bad.columns if "converted*" in c and c != "sum(converted*converted)"
                                    or "*converted)" in c and c != "sum(converted*converted)"])
        bad.loc[control, column] = value
        bad.to_csv(tmp_path / f"bad{k}.csv", index=False)
        cfg = _config(tmp_path, input="statistics", columns={"variant": "variant"}, output=str(tmp_path / f"out{k}"))
        (tmp_path / "ab.yaml").write_text(yaml.safe_dump(cfg))
        res = CliRunner().invoke(app, ["ab", str(tmp_path / f"bad{k}.csv"), "--config", str(tmp_path / "ab.yaml")])
        assert res.exit_code == 2 and "Traceback" not in res.output, (column, res.output)
        assert re.search(message, res.stderr), (column, res.stderr)
        assert f"bad{k}.csv" in res.stderr and not (tmp_path / f"out{k}").exists()


def test_cluster_randomised_data_is_analysed_by_cluster(tmp_path: Path) -> None:
    data = _data(tmp_path, clusters=40, n=8000)
    cfg = _config(tmp_path, columns={"variant": "variant", "unit": "user_id", "cluster": "market"})
    code, out, robust = _run(tmp_path, data, cfg)
    assert code in (0, 1), out
    assert robust["ab"]["design"]["variance"] == "cluster-robust" and robust["ab"]["design"]["n_clusters"] == 40
    cfg["analysis"] = {"variance": "iid"}
    cfg["output"] = str(tmp_path / "iid")
    code, out, iid = _run(tmp_path, data, cfg)
    assert "finer than the unit of randomisation (market, 40 clusters)" in out
    assert iid["comparison"][0]["delta"] == pytest.approx(robust["comparison"][0]["delta"])
    # SRM counts the randomised clusters, not the users
    assert sum(robust["ab"]["srm"]["observed"].values()) == 40


def test_always_valid_intervals_are_wider(tmp_path: Path) -> None:
    data = _data(tmp_path)
    _, _, fixed = _run(tmp_path, data, _config(tmp_path))
    cfg = _config(tmp_path, analysis={"sequential": {"kind": "always_valid", "horizon": 20_000}},
                  output=str(tmp_path / "seq"))
    code, out, seq = _run(tmp_path, data, cfg)
    assert code in (0, 1), out
    for f, s in zip(fixed["comparison"], seq["comparison"]):
        assert s["method"] == "always_valid" and s["ci_high"] - s["ci_low"] > f["ci_high"] - f["ci_low"]


@pytest.mark.parametrize("mutate,message", [
    # rows count from 1, as in every message naming rows (it said [5], counting from 0)
    (lambda df: df.assign(revenue=np.where(np.arange(len(df)) == 5, np.nan, df.revenue)),
     r"column 'revenue' has 1 NaN/inf value\(s\), e.g. at row\(s\) 6$"),
    # no variant is not an unknown variant named '' or 'None'
    (lambda df: df.assign(variant=df.variant.where(np.arange(len(df)) != 2, None)),
     r"column 'variant' has 1 row\(s\) with no variant \(empty or null; row\(s\) 3\)"),
    (lambda df: df.assign(variant=np.where(np.arange(len(df)) < 3, "B2", df.variant)),
     r"3 row\(s\) of variant\(s\) not in the config \(e.g. 'B2'\)"),
    (lambda df: df.assign(converted=df.converted * 2), r"proportion column 'converted' must be 0/1"),
    # a ratio's denominator counts (impressions): below 0 is a data error, not a metric value
    (lambda df: df.assign(impressions=np.where(np.arange(len(df)) == 4, -5, df.impressions)),
     r"column 'impressions', a ratio metric's denominator, must be >= 0; 1 row\(s\) are not \(e\.g\. -5\.0\)"),
    (lambda df: df.drop(columns=["clicks"]), r"columns \['clicks'\] not found"),
    (lambda df: pd.concat([df, df.iloc[:2]]), r"'user_id' has 2 duplicated unit id\(s\)"),
    (lambda df: df.assign(revenue="x"), r"column 'revenue' is not numeric"),
])
def test_bad_data_is_exit_2_naming_the_problem(tmp_path: Path, mutate: Any, message: str) -> None:
    path = _data(tmp_path)
    mutate(pd.read_parquet(path)).to_parquet(path)
    code, out, _ = _run(tmp_path, path, _config(tmp_path))
    assert code == 2 and "Traceback" not in out
    assert re.search(message, out), out


def test_an_empty_segment_cell_is_a_missing_segment(tmp_path: Path) -> None:
    """A CSV's empty segment cell is no segment (it became a segment named '', dropped
    with a warning as too small)."""
    path = _data(tmp_path, fmt="csv")
    df = pd.read_csv(path)
    df["platform"] = np.where(np.arange(len(df)) % 2, "ios", "web")
    df.loc[7, "platform"] = None
    df.to_csv(path, index=False)
    cfg = _config(tmp_path, columns={"variant": "variant", "unit": "user_id", "segment": "platform"})
    code, out, _ = _run(tmp_path, path, cfg)
    assert code == 2 and "segment column 'platform' has 1 missing value(s)" in out and "Traceback" not in out


def test_a_csv_cell_that_is_not_a_number_names_its_column(tmp_path: Path) -> None:
    """Arrow's own message counted columns from 0 ('In CSV column #2 ... invalid value
    'abc''): the column is named instead."""
    path = _data(tmp_path, fmt="csv")
    df = pd.read_csv(path, dtype={"user_id": str})
    df["revenue"] = df["revenue"].astype(object)
    df.loc[5, "revenue"] = "abc"
    df.to_csv(path, index=False)
    code, out, _ = _run(tmp_path, path, _config(tmp_path))
    assert code == 2 and "Traceback" not in out
    assert f"{path.name}: column 'revenue' must hold numbers; a cell holds 'abc'" in " ".join(out.split())


@pytest.mark.parametrize("over,message", [
    ({"metrics": {"r": {"mean": "revenue", "ratio": ["clicks", "impressions"]}}}, "exactly one of"),
    ({"gate": [{"metric": "nope", "role": "primary"}]}, "gate: metric(s) ['nope'] are not in metrics"),
    ({"analysis": {"bogus": 1}}, "analysis.bogus: unknown key"),
    ({"variants": {"control": "control", "treatments": ["treatment"], "split": {"control": 1}}},
     "needs a share for exactly"),
    # fractions that do not add up: a typo, not weights (it became a sample-ratio mismatch, exit 4)
    ({"variants": {"control": "control", "treatments": ["treatment"], "split": {"control": 0.5, "treatment": 0.6}}},
     "the shares are fractions but sum to 1.1, not 1"),
])
def test_bad_config_is_exit_2(tmp_path: Path, over: dict[str, Any], message: str) -> None:
    code, out, _ = _run(tmp_path, _data(tmp_path, n=200), _config(tmp_path, **over))
    assert code == 2 and message in out and "Traceback" not in out


def test_mlflow_logs_variants_as_child_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{migrated_store(tmp_path / 'ab.db')}"
    cfg = _config(tmp_path, tracking={"enabled": True, "uri": uri})
    code, out, res = _run(tmp_path, _data(tmp_path), cfg)
    assert code == 0, out
    client = MlflowClient(tracking_uri=uri)
    ids = res["tracking"]["mlflow_run_ids"]
    parent = client.get_run(ids["parent"])
    assert parent.data.tags["gate.verdict"] == "PASS"
    child = client.get_run(ids["treatment"])
    assert child.data.tags["harness.role"] == "candidate" and child.data.tags["gate.revenue"] == "PASS"
    revenue = next(r for r in res["comparison"] if r["metric"] == "revenue")
    assert child.data.metrics["delta_revenue"] == pytest.approx(revenue["delta"])
    assert client.get_run(ids["control"]).data.tags["harness.role"] == "baseline"
    assert "statistics.csv" in {f.path for f in client.list_artifacts(ids["parent"])}
    again = CliRunner().invoke(app, ["compare", ids["parent"], ids["parent"], "--tracking-uri", uri])
    assert again.exit_code == 2 and "is an A/B test's run" in again.output and "Traceback" not in again.output


def test_plan_prints_the_sample_size_and_the_mde() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["ab", "plan", "--baseline-rate", "0.1", "--mde", "0.02", "--relative"])
    assert res.exit_code == 0, res.output
    n = ab_sample_size(0.002, np.sqrt(0.09))
    arm = int(np.ceil(n / 2))  # each arm's half, rounded up: the total is their sum
    assert f"units needed: {2 * arm:,} in all ({arm:,} treatment, {arm:,} control)" in res.output
    # an uneven allocation: the arms are the plan's shares rounded up, the total their sum
    res = runner.invoke(app, ["ab", "plan", "--std-dev", "1", "--mde", "0.1", "--allocation", "0.3"])
    n = ab_sample_size(0.1, 1.0, allocation=0.3)
    treatment, control = int(np.ceil(n * 0.3)), int(np.ceil(n * 0.7))
    assert (n, treatment, control) == (3738, 1122, 2617)  # 0.3 * 3738 = 1121.4, 0.7 * 3738 = 2616.6
    assert f"units needed: 3,739 in all (1,122 treatment, 2,617 control)" in res.output
    res = runner.invoke(app, ["ab", "plan", "--std-dev", "3", "--n-units", "100000", "--sequential",
                              "--variance-reduction", "0.3", "--tests", "4"])
    assert res.exit_code == 0, res.output
    m = ab_mde(100_000, 3.0, sequential=True, variance_reduction=0.3, n_tests=4)
    assert f"minimum detectable effect with 100,000 units: {m:.6g}" in res.output
    bad = runner.invoke(app, ["ab", "plan", "--std-dev", "3"])
    assert bad.exit_code == 2 and "exactly one of --mde" in bad.output
    # a bad value is named by its flag, not by the planning function's parameter
    for args, message in ((["--std-dev", "-1", "--n-units", "1000"], "--std-dev: must be in (0, inf], got -1.0"),
                          (["--std-dev", "1", "--mde", "0"], "--mde: 0 cannot be detected"),
                          (["--std-dev", "1", "--n-units", "1000", "--power", "1.5"], "--power: must be in (0, 1)"),
                          (["--std-dev", "1", "--n-units", "1000", "--tests", "0"], "--tests: 0 must be >= 1")):
        bad = runner.invoke(app, ["ab", "plan", *args])
        assert bad.exit_code == 2 and message in bad.output and "Traceback" not in bad.output, bad.output


def test_segments_get_corrected_intervals_and_a_heterogeneity_test(tmp_path: Path) -> None:
    path = _data(tmp_path, n=12_000, lift=0.0)
    df = pd.read_parquet(path)
    df["platform"] = np.random.default_rng(3).choice(["android", "ios", "web"], len(df))
    df.loc[(df.platform == "web") & (df.variant == "treatment"), "revenue"] += 3.0  # only web moves
    df.to_parquet(path)
    cfg = _config(tmp_path, columns={"variant": "variant", "unit": "user_id", "segment": "platform"})
    code, out, res = _run(tmp_path, path, cfg)
    assert code in (0, 1), out
    het = {h["metric"]: h for h in res["ab"]["heterogeneity"]}
    assert het["revenue"]["p_value"] < 1e-6 and het["ctr"]["p_value"] > 1e-3
    assert "heterogeneity: treatment revenue across 3 segments" in out
    web = next(r for r in res["ab"]["segments"] if r["metric"] == "revenue" and r["segment"] == "web")
    assert web["confidence"] == pytest.approx(1 - 0.05 / 3) and web["ci_low"] > 2.0
    # per-segment numbers from the statistics table (one row per segment and variant) are the same
    stats_file = tmp_path / "results" / res["run_id"] / "statistics.csv"
    again = _config(tmp_path, input="statistics", columns={"variant": "variant", "segment": "platform"},
                    output=str(tmp_path / "again"))
    code, out, res2 = _run(tmp_path, stats_file, again)
    assert code in (0, 1), out
    for a, b in zip(res["ab"]["segments"], res2["ab"]["segments"]):
        assert (a["segment"], a["metric"]) == (b["segment"], b["metric"])
        assert a["ci_low"] == pytest.approx(b["ci_low"], rel=1e-9) and a["delta"] == pytest.approx(b["delta"], rel=1e-9)
    for a, b in zip(res["comparison"], res2["comparison"]):
        assert a["delta"] == pytest.approx(b["delta"], rel=1e-9)


def test_the_family_path_gives_the_numbers_of_harness_ab(tmp_path: Path) -> None:
    """The ab family through the engine's public pieces (Evaluation -> compare_family ->
    decide -> assemble), called here by hand, gives exactly the rows harness ab wrote."""
    from harness.evaluate import Evaluation
    from harness.inference.gate import comparison_rows, decide
    from harness.inference.paired import compare_family
    from harness.results import assemble
    from harness.spec.ab import load_ab_config

    data = _data(tmp_path, clusters=60, n=6000)
    cfg = _config(tmp_path, columns={"variant": "variant", "unit": "user_id", "cluster": "market"},
                  analysis={"relative_interval": "fieller"})
    code, out, res = _run(tmp_path, data, cfg)
    assert code in (0, 1), out
    config = load_ab_config(tmp_path / "ab.yaml")  # the file harness ab read
    results = Evaluation({"ab": config.family_spec(data)}, None, seed=0, confidence=0.95).finish()
    assert results["ab"].pairing == "independent" and list(results["ab"].models) == ["control", "treatment"]
    comps = compare_family(results["ab"], baseline="control", candidates=["treatment"])
    rows = comparison_rows(comps, decide(list(config.gate), comps, correction="holm"))
    assert json.loads(json.dumps(rows)) == res["comparison"]
    assert json.loads(json.dumps(assemble.metric_rows(results))) == res["metrics"]
    # and independently: conversion (no covariate) is Welch's t on cluster totals' per-user means
    conv = next(r for r in res["comparison"] if r["metric"] == "conversion")
    assert conv["method"] == "welch" and conv["kind"] == "ab"


def test_compare_gates_an_ab_folder_again_from_its_statistics(tmp_path: Path) -> None:
    data = _data(tmp_path, clusters=50, n=8000)
    cfg = _config(tmp_path, columns={"variant": "variant", "unit": "user_id", "cluster": "market"})
    code, out, res = _run(tmp_path, data, cfg)
    assert code in (0, 1), out
    folder = str(tmp_path / "results" / res["run_id"])
    gate = tmp_path / "gate.yaml"
    gate.write_text(yaml.safe_dump([{"metric": "conversion", "role": "guardrail", "direction": "higher",
                                     "max_regression": 0.5}]))
    runner = CliRunner()
    again = runner.invoke(app, ["compare", folder, folder, "--gate", str(gate), "--output", str(tmp_path / "cmp")])
    assert again.exit_code == 0, again.output
    (cmp_folder,) = (tmp_path / "cmp").iterdir()
    stored = json.loads((cmp_folder / "results.json").read_text())
    before = {r["metric"]: r for r in res["comparison"]}
    assert [r["metric"] for r in stored["comparison"]] == [r["metric"] for r in res["comparison"]]
    row = next(r for r in stored["comparison"] if r["metric"] == "conversion")
    for key in ("delta", "ci_low", "ci_high", "relative_ci_low", "p_two_sided", "std_error"):
        assert row[key] == pytest.approx(before["conversion"][key], rel=1e-9), key  # cluster-robust again
    assert stored["verdict"]["decision"] == "PASS" and row["outcome"] == "PASS"
    assert [c["metric"] for c in stored["verdict"]["criteria"]] == ["conversion"]  # the new gate only
    other = runner.invoke(app, ["compare", folder, str(tmp_path / "cmp" / cmp_folder.name)])
    assert other.exit_code == 2 and "pass it twice" in " ".join(other.output.split())
    bad = runner.invoke(app, ["compare", folder, folder, "--candidate-model", "nope"])
    assert bad.exit_code == 2 and "'nope' is not a variant" in " ".join(bad.output.split())


def test_a_run_config_has_no_ab_block(tmp_path: Path) -> None:
    from tests.conftest import small_config, write_config

    cfg = small_config(tmp_path)
    cfg["evaluate"]["ab"] = {"data": "x.parquet", "variants": {"control": "a", "treatments": ["b"]},
                             "metrics": {"m": {"mean": "m"}}}
    res = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert res.exit_code == 2 and "harness ab DATA --config AB.yaml" in " ".join(res.output.split())
