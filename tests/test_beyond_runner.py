"""evaluate.beyond_accuracy inside a run: values equal plain references (tests/reference.py,
and hand-computed ones on a tiny log); per-user metrics pair and gate, catalogue ones are
single values."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.spec.config import parse_config
from tests import reference as ref
from tests.conftest import small_config, write_config

METRICS = ["coverage@10", "gini@10", "personalization@10", "novelty@10", "arp@10"]


def _run(tmp_path: Path, cfg: dict) -> tuple[dict, pd.DataFrame]:
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output
    (folder,) = list((tmp_path / "results").iterdir())
    return json.loads((folder / "results.json").read_text()), pd.read_parquet(folder / "per_unit.parquet").astype({"unit_id": str})


# A log of 4 users x 6 items. leave_last_out k=1 holds out each user's last row; the
# training rows give item popularity (distinct users) 0: 3, 1: 2, 2: 1, 3: 1, 4: 0, 5: 1.
LOG = [(0, 0, 5, 1), (0, 1, 3, 2), (0, 2, 5, 3), (1, 0, 4, 1), (1, 3, 2, 2), (1, 4, 5, 3),
       (2, 1, 5, 1), (2, 5, 4, 2), (2, 3, 1, 3), (3, 0, 2, 1), (3, 2, 4, 2), (3, 5, 5, 3)]
POPULARITY = {0: 3, 1: 2, 2: 1, 3: 1, 4: 0, 5: 1}
# genres (item 5 has none: no vector, left out of ILD like padding)
GENRES = {0: "Drama", 1: "Drama|Comedy", 2: "Comedy", 3: "Action", 4: "Action|Drama", 5: ""}
# the model's lists, best first; user 3's list is shorter than k = 3 (padding)
LISTS = {0: [2, 4, 3], 1: [4, 2, 5], 2: [0, 3, 4], 3: [5, 4]}


def _tiny_config(tmp_path: Path) -> dict:
    (tmp_path / "log.csv").write_text("user,item,rating,ts\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in LOG))
    (tmp_path / "items.csv").write_text("item,genres\n" + "".join(f"{i},{g}\n" for i, g in GENRES.items()))
    # user and item ids are 0..n-1, so they are the data set's codes too
    (tmp_path / "lists.csv").write_text("query_id,item_id,score\n" + "".join(
        f"{u},{i},{len(items) - r}\n" for u, items in LISTS.items() for r, i in enumerate(items)))
    cfg = small_config(tmp_path)
    cfg["dataset"] = {"kind": "interactions", "path": str(tmp_path / "log.csv"),
                      "columns": {"user": "user", "item": "item", "rating": "rating", "timestamp": "ts"},
                      "split": {"kind": "leave_last_out", "k": 1}, "relevance": {"from": "rating", "threshold": 4},
                      "item_features": {"path": str(tmp_path / "items.csv"), "id_column": "item",
                                        "category_column": "genres"}}
    cfg["models"] = {"lists": {"kind": "precomputed", "params": {"path": str(tmp_path / "lists.csv")}}}
    cfg["evaluate"] = {"ranking": {"metrics": ["recall@3"]},
                       "beyond_accuracy": {"metrics": ["coverage@2", "gini@3", "personalization@2", "novelty@3",
                                                       "arp@3", "ild@3"]}}
    cfg["gate"] = []
    del cfg["compare"]  # one model
    return cfg


def test_tiny_log_values_by_hand(tmp_path: Path) -> None:
    data, per_unit = _run(tmp_path, _tiny_config(tmp_path))
    value = {r["metric"]: r["value"] for r in data["metrics"]}
    # top 2 lists {2, 4}, {4, 2}, {0, 3}, {5, 4}: five of the six items
    assert value["coverage@2"] == pytest.approx(5 / 6, abs=1e-12)
    # exposures at 3, items 0..5: 1, 0, 2, 2, 4, 2 (sum 11); sorted 0, 1, 2, 2, 2, 4
    assert value["gini@3"] == pytest.approx((-5 * 0 - 3 * 1 - 1 * 2 + 1 * 2 + 3 * 2 + 5 * 4) / (6 * 11), abs=1e-12)
    # Jaccard of the top-2 pairs: (0,1) 1, (0,3) 1/3, (1,3) 1/3, the other three 0
    assert value["personalization@2"] == pytest.approx(1 - (1 + 1 / 3 + 1 / 3) / 6, abs=1e-12)
    assert value["recall@3"] == 1.0  # each held-out relevant item is listed; user 2 has none

    units = per_unit[per_unit.family == "beyond_accuracy"].pivot(index="unit_id", columns="metric", values="value")
    assert sorted(units.index) == ["0", "1", "2", "3"]  # every judged user is a unit
    info = {i: -math.log2((POPULARITY[i] + 1) / 5) for i in POPULARITY}  # 4 training users
    want_novelty = {u: sum(info[i] for i in items) / len(items) for u, items in LISTS.items()}
    want_arp = {u: sum(POPULARITY[i] for i in items) / len(items) for u, items in LISTS.items()}
    # cosines of genre vectors: 2-4, 2-3 and 0-3 are 0; 3-4 and 0-4 are 1/sqrt(2); item 5 has
    # none (user 1 keeps the one pair 4-2, user 3 no pair)
    s = 1 / math.sqrt(2)
    want_ild = {0: (1 + 1 + (1 - s)) / 3, 1: 1.0, 2: (1 + (1 - s) + (1 - s)) / 3, 3: 0.0}
    for u in LISTS:
        assert units.loc[str(u), "novelty@3"] == pytest.approx(want_novelty[u], abs=1e-12)
        assert units.loc[str(u), "arp@3"] == pytest.approx(want_arp[u], abs=1e-12)
        assert units.loc[str(u), "ild@3"] == pytest.approx(want_ild[u], abs=1e-12)
    assert value["ild@3"] == pytest.approx(np.mean(list(want_ild.values())), abs=1e-12)
    assert value["novelty@3"] == pytest.approx(np.mean(list(want_novelty.values())), abs=1e-12)


def test_values_match_plain_references_and_gate(tmp_path: Path) -> None:
    from harness.adapters.registry import build_model
    from harness.apps.run import load_dataset

    cfg = small_config(tmp_path)
    cfg["evaluate"]["beyond_accuracy"] = {"metrics": METRICS}
    cfg["gate"].append({"metric": "novelty@10", "role": "guardrail", "max_regression": 0.5})
    data, per_unit = _run(tmp_path, cfg)
    rows = {(r["model"], r["metric"]): r for r in data["metrics"]}

    # the candidate's lists, from the model itself; the metrics from the plain references
    config = parse_config(cfg)
    ds = load_dataset(config)
    model = build_model("candidate", "oracle", dict(config.models["candidate"].params), ds, config.seed)
    model.fit(ds.train, n_users=ds.n_users, n_items=ds.n_items)
    ranking = model.retrieve(ds.query_ids, 50)
    lists = ref.lists_of(ranking.query_ids, ranking.items)
    pop, n_users = ref.popularity(ds.train)
    value = lambda metric: rows[("candidate", metric)]["value"]  # noqa: E731
    assert value("coverage@10") == pytest.approx(ref.coverage(lists.values(), ds.n_items, 10), abs=1e-12)
    assert value("gini@10") == pytest.approx(ref.gini(lists.values(), ds.n_items, 10), abs=1e-12)
    assert value("personalization@10") == pytest.approx(ref.personalization(list(lists.values()), 10), abs=1e-12)
    got = per_unit[(per_unit.model == "candidate") & (per_unit.metric == "novelty@10")].set_index("unit_id")["value"]
    assert sorted(got.index) == sorted(str(q) for q in ds.query_ids)
    want = {str(q): ref.novelty(items, pop, n_users, 10) for q, items in lists.items()}
    assert got.to_dict() == pytest.approx(want, abs=1e-12)
    arp = [ref.average_popularity(items, pop, 10) for items in lists.values()]
    assert value("arp@10") == pytest.approx(np.mean(arp), abs=1e-12)

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
