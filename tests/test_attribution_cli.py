"""``harness attribute CONFIG``: results folder, gate on attribution terms, exit codes, MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from tests.conftest import migrated_store, write_config

runner = CliRunner()


def pipeline(retrieval: dict[str, Any], lambda_: float) -> dict[str, Any]:
    return {"kind": "pipeline", "params": {"stages": [
        {"name": "retrieval", "k": 60, **retrieval},
        {"name": "rerank", "k": 10, "kind": "mmr", "params": {"lambda_": lambda_}}]}}


def attribution_config(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "name": "attribution-test", "seed": 3,
        "dataset": {"kind": "synthetic", "n_users": 300, "n_items": 200, "dim": 8},
        "models": {"prod": pipeline({"kind": "popularity"}, 1.0),
                   "funnel": pipeline({"kind": "oracle", "params": {"noise": 1.0}}, 0.7)},
        "evaluate": {"ranking": {"metrics": ["ndcg@10", "recall@10"]}},
        "compare": {"baseline": "prod", "candidates": ["funnel"]},
        "attribution": {"n_resamples": 500},
        "gate": [{"metric": "shapley/retrieval/ndcg@10", "role": "primary", "direction": "higher"}],
        "tracking": {"enabled": False},
        "output": str(tmp_path / "results"),
    }
    cfg.update(overrides)
    return cfg


def only_folder(root: Path) -> Path:
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    return folder


def test_attribute_writes_the_section_per_unit_terms_and_waterfalls_and_gates_on_a_term(tmp_path: Path) -> None:
    result = runner.invoke(app, ["attribute", str(write_config(tmp_path, attribution_config(tmp_path))),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "shapley/retrieval" in result.stdout and "GATE: PASS" in result.stdout
    folder = only_folder(tmp_path / "results")
    data = json.loads((folder / "results.json").read_text())
    section = data["attribution"]
    assert section["differing_stages"] == ["retrieval", "rerank"] and section["exact"]
    assert [h["candidate_stages"] for h in section["hybrids"]] == [[], ["retrieval"], ["rerank"],
                                                                    ["retrieval", "rerank"]]
    assert section["reuse"]["stage_calls"] == 6 and section["reuse"]["naive_stage_calls"] == 8
    per_unit = pd.read_parquet(folder / "per_unit.parquet")
    terms = per_unit[(per_unit["family"] == "attribution") & (per_unit["model"] == "funnel")]
    wide = terms.pivot(index="unit_id", columns="metric", values="value")
    for metric in ("ndcg@10", "recall@10"):
        entry = section["metrics"][metric]
        assert abs(entry["efficiency_residual"]) < 1e-12
        # per-unit terms: the Shapley columns add up to the total per query, and their
        # means are the section's estimates
        np.testing.assert_allclose(wide[f"shapley/retrieval/{metric}"] + wide[f"shapley/rerank/{metric}"],
                                   wide[f"total/{metric}"], atol=1e-12)
        np.testing.assert_allclose(wide[f"total/{metric}"], wide[metric] - per_unit[
            (per_unit["model"] == "prod") & (per_unit["metric"] == metric)].set_index("unit_id")["value"]
            .reindex(wide.index), atol=1e-12)
        estimates = {t["label"]: t["estimate"] for t in section["terms"]}
        assert estimates[f"shapley/retrieval/{metric}"] == pytest.approx(wide[f"shapley/retrieval/{metric}"].mean())
        assert entry["candidate"] - entry["baseline"] == pytest.approx(entry["total"])
        png = folder / "plots" / f"attribution_{metric.replace('@', '_at_')}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (criterion,) = data["verdict"]["criteria"]
    assert criterion["metric"] == "shapley/retrieval/ndcg@10" and criterion["outcome"] == "PASS"
    rows = {r["metric"]: r for r in data["comparison"]}
    assert rows["shapley/retrieval/ndcg@10"]["outcome"] == "PASS" and rows["total/ndcg@10"]["outcome"] is None
    # the HTML report has the attribution section: totals with the efficiency check, the
    # terms' comparison rows, and each waterfall embedded byte for byte
    import base64

    html = (folder / "report.html").read_text()
    assert 'Stage attribution' in html and "Shapley sum - total" in html and "shapley/retrieval/ndcg@10" in html
    for metric in ("ndcg@10", "recall@10"):
        png = (folder / "plots" / f"attribution_{metric.replace('@', '_at_')}.png").read_bytes()
        assert base64.b64encode(png).decode("ascii") in html
        assert f"{section['metrics'][metric]['total']:+.4f}" in html


def test_a_failing_attribution_criterion_exits_1(tmp_path: Path) -> None:
    cfg = attribution_config(tmp_path, gate=[
        {"metric": "shapley/retrieval/ndcg@10", "role": "guardrail", "direction": "lower", "max_regression": 0.0}])
    result = runner.invoke(app, ["attribute", str(write_config(tmp_path, cfg)), "--no-progress", "--no-plots"])
    assert result.exit_code == 1, result.output
    assert "GATE: FAIL" in result.stdout
    (folder,) = (tmp_path / "results").iterdir()  # --no-plots: the verdict, no waterfalls
    assert (folder / "results.json").is_file() and not (folder / "plots").exists()


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("attribution") and c.pop("gate"), "has no 'attribution' section"),
    (lambda c: c.pop("attribution"), "names an attribution term; it needs an 'attribution' section"),
    (lambda c: c["models"].update(prod={"kind": "popularity"}), "stage attribution needs two 'kind: pipeline' models"),
    (lambda c: c["models"]["funnel"]["params"]["stages"][1].update(name="mmr"), "same stage names in the same order"),
    (lambda c: c["gate"][0].update(metric="shapley/ranking/ndcg@10"), "'shapley/ranking/ndcg@10' is not evaluated"),
    (lambda c: c["gate"][0].update(metric="shapley/ndcg@10"), "expected shapley/<stage>/<metric>"),
    (lambda c: c["attribution"].update(method="t_test"), "attribution.method"),
    (lambda c: c["attribution"].update(candidate="nope"), "attribution.candidate: 'nope' is not one of models"),
])
def test_bad_attribution_configs_exit_2_naming_the_problem(tmp_path: Path, change, message: str) -> None:
    cfg = attribution_config(tmp_path)
    change(cfg)
    result = runner.invoke(app, ["attribute", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr


def test_run_leaves_attribution_criteria_to_attribute(tmp_path: Path) -> None:
    result = runner.invoke(app, ["run", str(write_config(tmp_path, attribution_config(tmp_path))), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "decided by 'harness attribute'" in result.stderr
    data = json.loads((only_folder(tmp_path / "results") / "results.json").read_text())
    assert data["verdict"]["decision"] == "NO_GATE"


def test_terms_are_logged_as_deltas_on_the_candidate_run(tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{migrated_store(tmp_path / 'mlflow.db')}"
    cfg = attribution_config(tmp_path, tracking={"uri": uri})
    result = runner.invoke(app, ["attribute", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output
    data = json.loads((only_folder(tmp_path / "results") / "results.json").read_text())
    ids = data["tracking"]["mlflow_run_ids"]
    client = MlflowClient(uri)
    cand = client.get_run(ids["funnel"])
    terms = {t["label"]: t for t in data["attribution"]["terms"]}
    logged = cand.data.metrics
    assert logged["delta_shapley/retrieval/ndcg_at_10"] == pytest.approx(terms["shapley/retrieval/ndcg@10"]["estimate"])
    assert "delta_interaction/retrieval/rerank/recall_at_10_ci_low" in logged
    assert cand.data.tags["gate.shapley/retrieval/ndcg_at_10"] == "PASS"
    artifacts = {a.path for a in client.list_artifacts(ids["parent"], "plots")}
    assert "plots/attribution_ndcg_at_10.png" in artifacts
