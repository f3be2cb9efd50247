"""Candidate sets in a run: sampled negatives judged among candidates, with the warning."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from harness.apps.cli import app
from harness.spec.config import parse_config
from tests import reference as ref
from tests.conftest import small_config, write_config


def test_sampled_candidates_match_a_plain_restriction(tmp_path: Path) -> None:
    from harness.adapters.registry import build_model
    from harness.apps.run import load_dataset

    cfg = small_config(tmp_path)
    cfg["dataset"]["candidates"] = {"kind": "sampled", "n_negatives": 30, "seed": 3}
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "not comparable" in result.stderr  # the Krichene & Rendle warning reaches the user
    (folder,) = list((tmp_path / "results").iterdir())
    data = json.loads((folder / "results.json").read_text())
    assert any("not comparable" in w for w in data["dataset"]["warnings"])
    got = {r["metric"]: r["value"] for r in data["metrics"] if r["model"] == "candidate"}

    config = parse_config(cfg)
    ds = load_dataset(config)
    allowed = ds.candidates.groupby("query_id")["item_id"].apply(set).to_dict()
    model = build_model("candidate", "oracle", dict(config.models["candidate"].params), ds, config.seed)
    model.fit(ds.train, n_users=ds.n_users, n_items=ds.n_items)
    ranking = model.retrieve(ds.query_ids, ds.n_items)
    full = ref.lists_of(ranking.query_ids, ranking.items)
    # the model's full ranking restricted to each query's candidates, order kept
    restricted = {q: [i for i in items if i in allowed.get(q, ())] for q, items in full.items()}
    want = ref.ranking_means(ds.qrels, restricted, ["ndcg@10", "recall@10", "recall@50"])
    assert got == pytest.approx(want, abs=1e-12)
    # sampled metrics are inflated vs the full catalogue
    assert want["ndcg@10"] > ref.ranking_means(ds.qrels, full, ["ndcg@10"])["ndcg@10"]


@pytest.mark.parametrize("candidates, message", [
    ({"kind": "given"}, "kind 'given' needs a path"),
    ({"kind": "sampled", "n_negatives": 0}, "n_negatives"),
    ({"kind": "full", "path": "x.csv"}, "only it takes one"),
])
def test_bad_candidate_specs(tmp_path: Path, candidates: dict, message: str) -> None:
    cfg = small_config(tmp_path)
    cfg["dataset"]["candidates"] = candidates
    result = CliRunner().invoke(app, ["validate", str(write_config(tmp_path, cfg))])
    assert result.exit_code == 2 and message in result.stderr


def test_given_candidates_and_genre_diversity_on_movielens(tmp_path: Path) -> None:
    from harness.apps.run import load_dataset
    from tests.test_movielens import write_100k

    folder = write_100k(tmp_path / "ml-100k")
    # raw ids: users 2 and 3 hold out items 11 and 5 (their last ratings, both relevant)
    (tmp_path / "cands.csv").write_text("user,item\n2,11\n2,2\n2,7\n3,5\n3,2\n3,11\n1,1\n1,2\n")
    cfg = small_config(tmp_path)
    cfg["dataset"] = {"kind": "movielens", "path": str(folder),
                      "split": {"kind": "leave_last_out", "k": 1}, "relevance": {"from": "rating", "threshold": 4},
                      "candidates": {"kind": "given", "path": str(tmp_path / "cands.csv")}}
    cfg["models"] = {"popularity": {"kind": "popularity"}, "candidate": {"kind": "random", "params": {"seed": 1}}}
    cfg["evaluate"] = {"ranking": {"metrics": ["recall@3", "ndcg@3"]},
                       "beyond_accuracy": {"metrics": ["ild@3", "coverage@3"]}}
    cfg["gate"] = []
    del cfg["compare"]  # two evaluated users: far too few to compare
    result = CliRunner().invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output
    (out,) = list((tmp_path / "results").iterdir())
    data = json.loads((out / "results.json").read_text())
    rows = {(r["model"], r["metric"]): r["value"] for r in data["metrics"]}
    # three candidates per user, one of them relevant: recall@3 is 1 whatever the order
    assert rows[("popularity", "recall@3")] == 1.0 and rows[("candidate", "recall@3")] == 1.0
    per_unit = pd.read_parquet(out / "per_unit.parquet").astype({"unit_id": str})  # int ids are int64 on disk
    ild = per_unit[(per_unit.model == "popularity") & (per_unit.metric == "ild@3")].set_index("unit_id")["value"]
    ds = load_dataset(parse_config(cfg))
    _, genres = ds.category_matrix()
    seen = ds.train.groupby("user_id")["item_id"].apply(set).to_dict()
    candidates = ds.candidates.groupby("query_id")["item_id"].apply(list).to_dict()
    # per-unit ids are the data's own user ids
    assert sorted(ild.index) == sorted(str(ds.user_ids[q]) for q in ds.query_ids) and len(ild) > 0
    for user in ds.query_ids:
        # the unseen candidates are the whole top 3, so order does not matter; a user may
        # have no unseen candidate: an empty list
        unseen = [i for i in candidates.get(user, []) if i not in seen.get(user, set())]
        want = ref.intra_list_diversity(unseen, genres, 3)
        assert ild[str(ds.user_ids[user])] == pytest.approx(want, abs=1e-12)
