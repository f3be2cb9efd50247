"""A new evaluation family is one class plus one config block: no orchestrator change.

The toy family measures, per judged query, how many of a model's top-k items are
"long-tail" (items with id >= n_items / 2 in the synthetic world), a mean-type metric
that is compared and gated like any other, and a ratio-type one (a SumStatistic).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import harness
from harness.apps.cli import app
from harness.metrics.stats import ratio_statistic
from tests.conftest import small_config, write_config


class LongTailSpec(harness.FamilySpec):
    k: int = 10

    def compared_metrics(self) -> list[str]:
        return [f"long_tail@{self.k}", "tail_share"]


class LongTailFamily(harness.Family):
    key = "long_tail"
    unit = "query"
    spec_type = LongTailSpec

    def depth(self) -> int:
        return self.spec.k

    def measure(self, view):  # the view gives the model's ranking, asked once per model
        items = view.ranking.items[:, : self.spec.k]
        tail = ((items >= self.dataset.n_items // 2) & (items >= 0)).sum(axis=1).astype(float)
        shown = (items >= 0).sum(axis=1).astype(float)
        index = pd.Index(np.asarray(view.ranking.query_ids).astype(str), name="unit_id")
        table = pd.DataFrame({f"long_tail@{self.spec.k}": tail / self.spec.k}, index=index)
        share = ratio_statistic(tail, shown, name="tail_share")
        return harness.ModelOutput(per_unit=table, statistics={"tail_share": share},
                                   values=[harness.MetricValue("tail_share", share.value(), n_units=len(tail)),
                                           harness.MetricValue(f"long_tail@{self.spec.k}", float(table.iloc[:, 0].mean()),
                                                               n_units=len(tail))])


def test_a_toy_family_runs_compares_and_gates_from_its_config_block(tmp_path: Path) -> None:
    harness.register_family(LongTailFamily)
    harness.register_family(LongTailFamily)  # idempotent
    cfg = small_config(tmp_path)
    cfg["evaluate"]["long_tail"] = {"k": 5}
    cfg["gate"] = [{"metric": "long_tail@5", "role": "guardrail", "direction": "higher", "max_regression": 1.0},
                   {"metric": "tail_share", "role": "guardrail", "direction": "higher", "max_regression": 1.0}]
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output
    (folder,) = list((tmp_path / "results").iterdir())
    data = json.loads((folder / "results.json").read_text())
    assert data["families"]["long_tail"]["compared"] == ["long_tail@5", "tail_share"]
    per_unit = pd.read_parquet(folder / "per_unit.parquet").astype({"unit_id": str})  # int ids are int64 on disk
    toy = per_unit[per_unit["family"] == "long_tail"]
    assert set(toy["metric"]) == {"long_tail@5"} and set(toy["model"]) == {"popularity", "candidate"}
    # independent reference: the per-query share of tail items in the popularity model's top 5
    from harness.evaluate.data import load_dataset
    from harness.spec.config import parse_config

    dataset = load_dataset(parse_config(cfg))
    counts = np.bincount(dataset.train["item_id"], minlength=dataset.n_items)
    top5 = np.argsort(-counts, kind="stable")[:5]  # popularity ranks by training count
    seen = dataset.train.groupby("user_id")["item_id"].apply(set)
    pop = toy[toy["model"] == "popularity"].set_index("unit_id")["value"]
    assert len(pop) == len(dataset.query_ids)
    comp = {r["metric"]: r for r in data["comparison"]}
    assert {"long_tail@5", "tail_share"} <= set(comp)
    assert {c["metric"]: c["outcome"] for c in data["verdict"]["criteria"]} == {"long_tail@5": "PASS",
                                                                             "tail_share": "PASS"}
    # the first judged user that has seen none of the top-5 gets exactly those five
    fresh = next(u for u in dataset.query_ids if not (set(top5) & seen.get(u, set())))
    assert pop[str(fresh)] == pytest.approx(np.mean(top5 >= dataset.n_items // 2), abs=1e-12)


def test_an_unregistered_block_is_an_unknown_key(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    cfg["evaluate"]["no_such_family"] = {}
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and "unknown key 'no_such_family'" in result.stderr
