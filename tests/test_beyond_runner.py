"""evaluate.beyond_accuracy inside a run: values equal the metric functions on the
model's own lists; per-user metrics pair and gate, catalogue ones are single values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.spec.config import parse_config
from tests.conftest import small_config, write_config

METRICS = ["coverage@10", "gini@10", "personalization@10", "novelty@10", "arp@10"]


def test_values_match_the_metric_functions(tmp_path: Path) -> None:
    from harness.metrics import average_popularity, catalog_coverage, gini_index, novelty
    from harness.adapters.registry import build_model
    from harness.apps.run import load_dataset

    cfg = small_config(tmp_path)
    cfg["evaluate"]["beyond_accuracy"] = {"metrics": METRICS}
    cfg["gate"].append({"metric": "novelty@10", "role": "guardrail", "max_regression": 0.5})
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output
    (folder,) = list((tmp_path / "results").iterdir())
    data = json.loads((folder / "results.json").read_text())
    rows = {(r["model"], r["metric"]): r for r in data["metrics"]}
    per_unit = pd.read_parquet(folder / "per_unit.parquet")

    config = parse_config(cfg)
    ds = load_dataset(config)
    pop = np.bincount(ds.train["item_id"].to_numpy(), minlength=ds.n_items).astype(float)
    model = build_model("candidate", "oracle", dict(config.models["candidate"].params), ds, config.seed)
    model.fit(ds.train, n_users=ds.n_users, n_items=ds.n_items)
    ranking = model.retrieve(ds.query_ids, 50)
    assert rows[("candidate", "coverage@10")]["value"] == pytest.approx(catalog_coverage(ranking.items, ds.n_items, k=10))
    assert rows[("candidate", "gini@10")]["value"] == pytest.approx(gini_index(ranking.items, ds.n_items, k=10))
    nov = pd.Series(novelty(ranking.items, pop, ds.n_users, k=10), index=ranking.query_ids.astype(str))
    got = per_unit[(per_unit.model == "candidate") & (per_unit.metric == "novelty@10")].set_index("unit_id")["value"]
    assert got.to_numpy() == pytest.approx(nov.loc[got.index].to_numpy())
    arp = average_popularity(ranking.items, pop, k=10)
    assert rows[("candidate", "arp@10")]["value"] == pytest.approx(arp[np.isin(ranking.query_ids.astype(str), got.index)].mean())
    assert rows[("candidate", "coverage@10")]["ci_low"] is None  # catalogue-level: no per-unit interval
    assert any(c["metric"] == "novelty@10" and c["outcome"] == "PASS" for c in data["comparison"])


def test_ild_needs_item_vectors(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["evaluate"]["beyond_accuracy"] = {"metrics": ["ild@10"]}
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 2 and "ild needs item categories" in result.stderr


@pytest.mark.parametrize("metrics, message", [(["coverage"], "needs a cut-off"), (["serendipity@5"], "unknown metric")])
def test_bad_beyond_accuracy_config(tmp_path: Path, metrics: list, message: str) -> None:
    cfg = small_config(tmp_path)
    cfg["evaluate"]["beyond_accuracy"] = {"metrics": metrics}
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and message in result.stderr
