"""Multi-stage pipelines: stage outputs, per-stage metrics, swapping stages, MMR, runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from harness.types import Ranking
from harness.spec.config import parse_config
from harness.datasets import make_synthetic
from harness.errors import AdapterError, ConfigError
from harness.metrics import evaluate_ranking
from harness.models import PopularityRetriever
from harness.models.features import interaction_features
from harness.models.knn import ItemKNN
from harness.models.rerank import MMR
from harness.models.sklearn_pointwise import SklearnPointwise
from harness.adapters.pipeline import Pipeline, run_stages
from harness.evaluate.ranking import stage_metric_names
from harness.apps.run import run
from tests import reference as ref
from tests.conftest import small_config


@pytest.fixture(scope="module")
def world():
    return make_synthetic(n_users=200, n_items=150, dim=8, seed=3)


@pytest.fixture(scope="module")
def parts(world):
    """A retriever, a pointwise ranker on interaction features, an MMR re-ranker."""
    fb = interaction_features(world.train, world.n_users, world.n_items, seed=0)
    pairs = pd.DataFrame({"query_id": np.repeat(np.arange(world.n_users), 30),
                          "item_id": np.tile(np.arange(30), world.n_users)})
    truth = world.truth["true_relevance"][pairs.query_id, pairs.item_id] > 0
    clf = LogisticRegression().fit(fb.matrix(pairs), truth)
    rng = np.random.default_rng(0)
    return {"knn": ItemKNN(), "pop": PopularityRetriever(), "clf": SklearnPointwise(clf, fb),
            "mmr": MMR(rng.normal(size=(world.n_items, 4)), lambda_=0.7)}


def three_stage(parts, retriever: str = "knn") -> Pipeline:
    return Pipeline([("retrieval", parts[retriever], 100), ("ranking", parts["clf"], 30),
                     ("rerank", parts["mmr"], 10)])


def fit(model, world):
    return model.fit(world.train, n_users=world.n_users, n_items=world.n_items)


def rows_subset(later: Ranking, earlier: Ranking) -> bool:
    return all(set(b[b >= 0]) <= set(a[a >= 0]) for a, b in zip(earlier.items, later.items))


def test_every_stage_is_kept_and_metrics_are_consistent(world, parts) -> None:
    pipe = fit(three_stage(parts), world)
    out = pipe.run(world.query_ids)
    assert list(out) == ["retrieval", "ranking", "rerank"]
    assert [r.k for r in out.values()] == [100, 30, 10]
    assert rows_subset(out["ranking"], out["retrieval"]) and rows_subset(out["rerank"], out["ranking"])
    recall = {name: evaluate_ranking(world.qrels, r, [f"recall@{r.k}"]).means[f"recall@{r.k}"]
              for name, r in out.items()}
    # each stage only sees the previous stage's candidates: recall cannot grow
    assert recall["rerank"] <= recall["ranking"] <= recall["retrieval"]
    final = pipe.retrieve(world.query_ids, 20)  # padded beyond the last stage's 10
    np.testing.assert_array_equal(final.items[:, :10], out["rerank"].items)
    assert (final.items[:, 10:] == -1).all()


def test_stages_swap_between_pipelines(world, parts) -> None:
    a = fit(three_stage(parts, "knn"), world)
    b = fit(three_stage(parts, "pop"), world)
    mixed = Pipeline([b.stage("retrieval"), a.stage("ranking"), a.stage("rerank")])
    assert mixed.stage("retrieval").model is parts["pop"]
    out_b, out_mixed = b.run(world.query_ids), mixed.run(world.query_ids)
    for stage in mixed.names:
        np.testing.assert_array_equal(out_mixed[stage].items, out_b[stage].items)
    swapped = a.replace("rerank", lambda cands, k: cands.top(k))  # a plain function as re-ranker
    assert a.stage("rerank").model is parts["mmr"]
    out = swapped.run(world.query_ids)
    np.testing.assert_array_equal(out["rerank"].items, out["ranking"].items[:, :10])
    assert swapped.replace("ranking", k=50).stage("ranking").k == 50


def test_run_stages_in_batches_equals_one_batch(world, parts) -> None:
    pipe = fit(three_stage(parts), world)
    whole = pipe.run(world.query_ids)
    batched = run_stages("p", pipe, world.query_ids, batch=7)
    for stage in pipe.names:
        np.testing.assert_array_equal(batched[stage].items, whole[stage].items)
        np.testing.assert_array_equal(batched[stage].scores, whole[stage].scores)


def slow_mmr(items: np.ndarray, scores: np.ndarray, V: np.ndarray, lam: float, k: int) -> list[int]:
    """Plain greedy MMR for one row (reference)."""
    real = [(i, s) for i, s in zip(items, scores) if i >= 0]
    lo, hi = min(s for _, s in real), max(s for _, s in real)
    rel = {i: (s - lo) / (hi - lo) if hi > lo else 0.0 for i, s in real}
    U = V / np.linalg.norm(V, axis=1, keepdims=True)
    chosen: list[int] = []
    while len(chosen) < min(k, len(real)):
        best, best_val = None, -np.inf
        for i, _ in real:  # candidate order: the first maximum wins
            if i in chosen:
                continue
            val = lam * rel[i] - (1 - lam) * max((float(U[i] @ U[j]) for j in chosen), default=0.0)
            if val > best_val:
                best, best_val = i, val
        chosen.append(best)
    return chosen


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 1.0])
def test_mmr_matches_plain_greedy(lam: float) -> None:
    rng = np.random.default_rng(1)
    V = rng.normal(size=(40, 3))
    items = np.stack([rng.permutation(40)[:12] for _ in range(25)])
    items[::3, 8:] = -1
    scores = np.sort(rng.integers(0, 5, items.shape).astype(float), axis=1)[:, ::-1]
    scores = np.where(items >= 0, scores, -np.inf)
    order = np.lexsort((items, -scores), axis=-1)  # a valid Ranking order
    items, scores = np.take_along_axis(items, order, 1), np.take_along_axis(scores, order, 1)
    out = MMR(V, lambda_=lam)(Ranking(np.arange(25), items, scores), 6)
    for r in range(25):
        want = slow_mmr(items[r], scores[r], V, lam, 6)
        assert list(out.items[r, : len(want)]) == want
    if lam == 1.0:  # pure relevance keeps the input order
        np.testing.assert_array_equal(out.items, items[:, :6])


def test_bad_pipelines_and_stage_failures(world, parts) -> None:
    with pytest.raises(ConfigError, match="first stage 'ranking' .* must have retrieve"):
        Pipeline([("ranking", parts["mmr"], 10)])
    with pytest.raises(ConfigError, match="stage 'ranking' keeps k=50 but receives only 20"):
        Pipeline([("retrieval", parts["knn"], 20), ("ranking", parts["clf"], 50)])
    with pytest.raises(ConfigError, match="stage names must be unique"):
        Pipeline([("a", parts["knn"], 20), ("a", parts["clf"], 10)])
    with pytest.raises(ConfigError, match="must have rank"):
        Pipeline([("a", parts["knn"], 20), ("b", 42, 10)])
    knn = fit(ItemKNN(), world)

    def foreign(cands: Ranking, k: int) -> Ranking:
        return Ranking(cands.query_ids, np.full((len(cands), 1), 149), np.zeros((len(cands), 1)))

    def boom(cands: Ranking, k: int) -> Ranking:
        raise KeyError("feature store down")

    q = world.query_ids
    with pytest.raises(AdapterError, match=r"pipeline/rerank \(function\): returned \d+ items that were not among"):
        Pipeline([("retrieval", knn, 5), ("rerank", foreign, 1)]).run(q)
    with pytest.raises(AdapterError, match=r"model 'p': stage 'pipeline/rerank \(function\)' raised KeyError in rank\(\): "
                                           r"'feature store down' \(queries 0\.\.\d+\)"):
        run_stages("p", Pipeline([("retrieval", knn, 5), ("rerank", boom, 1)]), q)
    with pytest.raises(AdapterError, match="must return a Ranking, got list"):
        Pipeline([("retrieval", knn, 5), ("rerank", lambda c, k: [], 1)]).run(q)


def test_stage_metric_names() -> None:
    assert stage_metric_names(["ndcg@[10,20]", "recall@100", "map@1000"], 100) == \
        ["ndcg@10", "ndcg@20", "recall@100"]
    assert stage_metric_names(["ndcg@10"], 500) == ["ndcg@10", "recall@500"]
    assert stage_metric_names(["ndcg@10", "recall@[10,100]"], 50, ceiling=False) == ["ndcg@10", "recall@10"]


def test_runner_evaluates_each_stage(tmp_path: Path) -> None:
    stages = [{"name": "retrieval", "k": 80, "kind": "item_knn"},
              {"name": "ranking", "k": 40, "kind": "xgboost_ranker",
               "params": {"path": str(tmp_path / "ltr.json")}},
              {"name": "rerank", "k": 20, "kind": "mmr", "params": {"lambda_": 0.8}}]
    cfg = small_config(tmp_path, candidate={"kind": "pipeline", "params": {"stages": stages}})
    config = parse_config(cfg)
    # a LambdaMART booster trained on the same interaction features serves as the ranking stage
    from harness.models.lambdamart import LambdaMART
    from harness.apps.run import load_dataset

    ds = load_dataset(config)
    LambdaMART(n_estimators=20).fit(ds.train, n_users=ds.n_users, n_items=ds.n_items).booster.save_model(
        tmp_path / "ltr.json")
    outcome = run(config, progress=False)
    data = json.loads((outcome.results_dir / "results.json").read_text())
    rows = {r["metric"]: r for r in data["metrics"] if r["model"] == "candidate"}
    assert set(rows) == {"ndcg@10", "recall@10", "recall@50", "retrieval/ndcg@10", "retrieval/recall@10",
                         "retrieval/recall@50", "retrieval/recall@80", "ranking/ndcg@10", "ranking/recall@10",
                         "ranking/recall@40"}
    stage = {m: r for m, r in rows.items() if "/" in m}
    final = {m: r["value"] for m, r in rows.items()}
    # each stage sees only its predecessor's candidates: recall at a stage's full depth cannot grow
    assert final["recall@50"] <= stage["ranking/recall@40"]["value"] + 1e-12
    assert stage["ranking/recall@40"]["value"] <= stage["retrieval/recall@80"]["value"] + 1e-12
    assert "retrieval/recall@80" in (outcome.results_dir / "summary.md").read_text()
    within = data["units"]["candidate"]["stages"]
    assert set(within) == {"ranking/within_candidates/ndcg@10", "ranking/within_candidates/recall@10",
                           "rerank/within_candidates/ndcg@10", "rerank/within_candidates/recall@10"}
    # the stage value is recall@80 of the retrieval stage's own lists (a plain reference)
    knn = ItemKNN().fit(ds.train, n_users=ds.n_users, n_items=ds.n_items)
    retrieved = knn.retrieve(ds.query_ids, 80)
    direct = ref.ranking_means(ds.qrels, ref.lists_of(retrieved.query_ids, retrieved.items), ["recall@80"])["recall@80"]
    assert stage["retrieval/recall@80"]["value"] == pytest.approx(direct, abs=1e-12)
    assert stage["retrieval/recall@80"]["ci_low"] <= direct <= stage["retrieval/recall@80"]["ci_high"]
    # within candidates: the ranking stage judged on the judgments of the 80 candidates only,
    # by a plain per-query reference
    from harness.adapters.pipeline import Pipeline
    from harness.adapters.registry import build_model

    ranker = build_model("r", "xgboost_ranker", {"path": str(tmp_path / "ltr.json")}, ds, config.seed)
    pipe = Pipeline([("retrieval", knn, 80), ("ranking", ranker, 40)])  # the first two stages
    out = pipe.run(ds.query_ids)
    rel = {(q, i): r for q, i, r in ds.qrels.itertuples(index=False)}
    recalls = []
    for q, cands, ranked in zip(ds.query_ids, out["retrieval"].items, out["ranking"].items):
        reachable = {i for i in cands if rel.get((q, i), 0) >= 1}
        if reachable:
            recalls.append(len(reachable & set(ranked[:10])) / len(reachable))
    assert within["ranking/within_candidates/recall@10"]["n_units"] == len(recalls)
    assert within["ranking/within_candidates/recall@10"]["value"] == pytest.approx(np.mean(recalls), abs=1e-12)
