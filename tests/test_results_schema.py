"""Results folders across schema versions: `harness compare` reads a folder written before
unit families became a column (schema 1, committed fixture) and reproduces its numbers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.results.folder import SCHEMA_VERSION, read_results_folder

V1 = Path(__file__).parent / "fixtures" / "results_v1"


def test_schema_1_folder_is_upgraded_in_memory() -> None:
    stored = read_results_folder(V1)
    assert stored.data["schema_version"] == SCHEMA_VERSION == 2
    assert set(stored.per_unit["family"]) == {"ranking", "beyond_accuracy", "calibration", "off_policy"}
    assert not stored.per_unit["unit_id"].str.contains(":").any()  # prefixes became the family column
    assert not stored.per_unit["metric"].str.startswith("calibration:").any()  # inputs are not metrics
    assert set(stored.inputs["input"]) == {"label", "p"} and set(stored.inputs["family"]) == {"calibration"}
    raw = pd.read_parquet(V1 / "per_unit.parquet")
    assert len(stored.per_unit) + len(stored.inputs) == len(raw)  # nothing dropped
    caps = stored.data["families"]["off_policy"]["caps"]
    assert set(caps) == {"popularity", "candidate"}  # the source run flagged both as low-ESS


def test_compare_on_a_schema_1_folder_reproduces_its_deltas(tmp_path: Path) -> None:
    in_run = json.loads((V1 / "results.json").read_text())
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, ["compare", str(V1), str(V1), "--baseline-model", "popularity",
                                      "--candidate-model", "candidate", "--method", "bootstrap",
                                      "--output", str(out)])
    assert result.exit_code == 1, result.output  # snips capped: INCONCLUSIVE
    (folder,) = list(out.iterdir())
    offline = json.loads((folder / "results.json").read_text())
    assert offline["schema_version"] == 2
    want = {r["metric"]: r["delta"] for r in in_run["comparison"]}
    got = {r["metric"]: r["delta"] for r in offline["comparison"]}
    assert set(got) == set(want)  # ece rebuilt from the stored labels and p
    for metric, delta in want.items():
        assert got[metric] == pytest.approx(delta, abs=1e-12), metric
    outcomes = {c["metric"]: c["outcome"] for c in offline["verdict"]["criteria"]}
    assert outcomes == {"brier": "PASS", "ece": "PASS", "snips": "INCONCLUSIVE"}
    assert "too little overlap" in result.stdout


def test_a_newer_schema_is_refused_by_name(tmp_path: Path) -> None:
    folder = tmp_path / "future"
    shutil.copytree(V1, folder)
    data = json.loads((folder / "results.json").read_text())
    data["schema_version"] = 99
    (folder / "results.json").write_text(json.dumps(data))
    result = CliRunner().invoke(app, ["compare", str(folder), str(folder), "--baseline-model", "popularity",
                                      "--candidate-model", "candidate"])
    assert result.exit_code == 2 and "schema_version 99" in result.stderr
