"""harness compare on runs that mix unit families (queries, click rows, logged rows)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from tests.conftest import small_config, write_config


def test_compare_folders_with_calibration_and_off_policy(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["models"] = {"popularity": {"kind": "oracle_clicks", "params": {"power": 2.0}},
                     "candidate": {"kind": "oracle_clicks"}}
    cfg["evaluate"]["calibration"] = {"metrics": ["brier", "log_loss", "ece"], "n_bins": 10}
    cfg["evaluate"]["off_policy"] = {"synthetic": {"n_rounds": 5000}, "estimators": ["snips"], "min_ess": 10**6}
    cfg["gate"] = [{"metric": "brier", "role": "primary", "direction": "lower"},
                   {"metric": "ece", "role": "guardrail", "direction": "lower", "max_regression": 0.05},
                   {"metric": "snips", "role": "guardrail", "max_regression": 0.01}]
    run = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert run.exit_code == 1, run.output  # snips cannot be settled: INCONCLUSIVE
    (folder,) = list((tmp_path / "results").iterdir())
    in_run = json.loads((folder / "results.json").read_text())

    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(folder), str(folder), "--baseline-model", "popularity",
                                      "--candidate-model", "candidate", "--output", str(out)])
    assert result.exit_code == 1, result.output
    assert "too little overlap with the logs" in " ".join(result.stdout.split())  # reasons wrap at 100 columns
    (cmp_folder,) = list(out.iterdir())
    offline = json.loads((cmp_folder / "results.json").read_text())
    want = {r["metric"]: r["delta"] for r in in_run["comparison"]}
    got = {r["metric"]: r["delta"] for r in offline["comparison"]}
    assert {"ndcg@10", "recall@50", "brier", "log_loss", "ece", "snips"} <= set(got)
    assert not any(m.startswith("calibration:") for m in got)  # stored inputs, never compared
    for metric in got:
        assert got[metric] == pytest.approx(want[metric], abs=1e-12), metric
    outcomes = {c["metric"]: c["outcome"] for c in offline["verdict"]["criteria"]}
    assert outcomes == {"brier": "PASS", "ece": "PASS", "snips": "INCONCLUSIVE"}
    offline_ece = next(c for c in offline["comparison"] if c["metric"] == "ece")
    assert offline_ece["ci_low"] <= offline_ece["delta"] <= offline_ece["ci_high"] < 0  # power 1 is better
