"""Reference baselines: quality order on synthetic data with signal, seeds, item-kNN by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.datasets import make_synthetic
from harness.errors import ConfigError, DataValidationError
from harness.metrics import evaluate_ranking
from harness.models import PopularityRetriever, RandomRetriever
from harness.models.knn import ItemKNN, keep_top_neighbours
from harness.models.lambdamart import LambdaMART, holdout_split
from harness.models.mf import BPRMF
from harness.models.torch_retriever import TorchRetriever
from harness.models.two_tower import TwoTower
from harness.adapters.registry import build_model

METRICS = ["ndcg@10", "recall@50"]


@pytest.fixture(scope="module")
def world():
    return make_synthetic(n_users=300, n_items=200, dim=8, seed=7)


def fit_eval(model, ds) -> dict[str, float]:
    model.fit(ds.train, n_users=ds.n_users, n_items=ds.n_items)
    return evaluate_ranking(ds.qrels, model.retrieve(ds.query_ids, 50), METRICS).means


@pytest.fixture(scope="module")
def scores(world):
    models = {"random": RandomRetriever(seed=1), "popularity": PopularityRetriever(), "item_knn": ItemKNN(),
              "bpr_mf": BPRMF(seed=1), "two_tower": TwoTower(seed=1), "lambdamart": LambdaMART(seed=1)}
    return {name: fit_eval(m, world) for name, m in models.items()}


@pytest.mark.parametrize("metric", METRICS)
def test_learned_models_beat_popularity_which_beats_random(scores, metric: str) -> None:
    pop = scores["popularity"][metric]
    assert pop > scores["random"][metric] + 0.05
    for learned in ("bpr_mf", "lambdamart", "item_knn", "two_tower"):
        assert scores[learned][metric] > pop + 0.03, (learned, scores[learned][metric], pop)


@pytest.mark.parametrize("make", [lambda s: BPRMF(seed=s, n_epochs=5), lambda s: TwoTower(seed=s, n_epochs=3),
                                  lambda s: LambdaMART(seed=s, n_estimators=10)])
def test_seeded_training_is_reproducible(world, make) -> None:
    runs = [make(s).fit(world.train, n_users=world.n_users, n_items=world.n_items).retrieve(world.query_ids, 20)
            for s in (3, 3, 4)]
    np.testing.assert_array_equal(runs[0].items, runs[1].items)
    np.testing.assert_array_equal(runs[0].scores, runs[1].scores)
    assert not np.array_equal(runs[0].scores, runs[2].scores)


def test_item_knn_equals_plain_cosine_reference() -> None:
    rng = np.random.default_rng(0)
    train = pd.DataFrame({"user_id": rng.integers(0, 12, 60), "item_id": rng.integers(0, 9, 60)}).drop_duplicates()
    X = np.zeros((12, 9))
    X[train.user_id, train.item_id] = 1
    for n_nb in (None, 3):
        S = np.zeros((9, 9))
        for a in range(9):
            for b in range(9):
                if a != b and X[:, a].sum() and X[:, b].sum():
                    S[a, b] = X[:, a] @ X[:, b] / np.sqrt(X[:, a].sum() * X[:, b].sum())
            if n_nb is not None:  # keep the n largest of row a (ties: lower column)
                keep = sorted(range(9), key=lambda b: (-S[a, b], b))[:n_nb]
                S[a, [b for b in range(9) if b not in keep]] = 0
        model = ItemKNN(n_neighbours=n_nb, exclude_seen=False).fit(train, n_users=12, n_items=9)
        np.testing.assert_allclose(model.score(np.arange(12)), X @ S, atol=1e-12)
    with pytest.raises(ConfigError, match="n_neighbours must be >= 1"):
        ItemKNN(n_neighbours=0)


def test_keep_top_neighbours_breaks_ties_by_column() -> None:
    import scipy.sparse as sp

    S = sp.csr_matrix(np.array([[0, 2, 2, 2.0], [1, 0, 0, 3]]))
    np.testing.assert_array_equal(keep_top_neighbours(S, 2).toarray(), [[0, 2, 2, 0], [1, 0, 0, 3]])


def test_holdout_split_keeps_small_users_whole() -> None:
    train = pd.DataFrame({"user_id": [0] * 6 + [1] * 2, "item_id": np.arange(8)})
    history, held = holdout_split(train, 2, seed=0)
    assert sorted(held.user_id) == [0, 0] and len(history) == 6
    assert set(history.item_id) | set(held.item_id) == set(range(8))
    with pytest.raises(DataValidationError, match="no user has more than n_holdout=6"):
        LambdaMART(n_holdout=6).fit(train, n_users=2, n_items=8)


def test_bpr_checkpoint_serves_through_torch_retriever(world, tmp_path: Path) -> None:
    mf = BPRMF(seed=0, n_epochs=3).fit(world.train, n_users=world.n_users, n_items=world.n_items)
    mf.save(tmp_path / "mf.pt")
    spec = build_model("served", "torch_retriever", {"checkpoint": str(tmp_path / "mf.pt")}, world, 0)
    spec.fit(world.train, n_users=world.n_users, n_items=world.n_items)
    a, b = mf.retrieve(world.query_ids, 10), spec.retrieve(world.query_ids, 10)
    assert isinstance(spec, TorchRetriever)
    np.testing.assert_array_equal(a.items, b.items)


@pytest.mark.parametrize("kind, params, match", [
    ("bpr_mf", {"dim": 0}, "dim must be > 0"),
    ("two_tower", {"temperature": -1}, "temperature must be > 0"),
    ("lambdamart", {"n_candidates": 0}, "n_candidates must be > 0"),
    ("bpr_mf", {"depth": 3}, r"unknown parameter 'depth' of kind 'bpr_mf' \(parameters: "),
    # a function behind the kind (load_precomputed) is not named; its parameters are
    ("precomputed", {"path": "s.csv", "mising": "empty"},
     r"unknown parameter 'mising' of kind 'precomputed'; did you mean 'missing'\? \(parameters: path, missing, name, format, exclude_seen\)"),
    ("torch_retriever", {}, "needs params.checkpoint"),
    ("precomputed", {}, "needs params.path"),
    ("mlflow", {}, "needs params.uri"),
    # the params given are named, and a near miss of the required one is pointed out
    ("torch_retriever", {"pth": "m.pt", "device": "cpu"}, r"checkpoint \(a saved nn.Module\); got params: pth, device$"),
    ("precomputed", {"pth": "s.csv"}, r"; got params: pth; did you mean 'path' \(not 'pth'\)\?$"),
    ("sklearn", {"paht": "m.skops"}, r"did you mean 'path' \(not 'paht'\)"),
    ("xgboost_ranker", {"n_candidates": 5}, r"needs params.path \(a saved XGBoost ranking model\); got params: n_candidates$"),
    # raw ids are for mlflow models (it was "SklearnPointwise.__init__() missing ... 'features'")
    ("sklearn", {"path": "m.skops", "features": "none"}, r"model kind 'sklearn' scores feature columns: features: none"),
    ("xgboost_ranker", {"path": "m.json", "features": "none"}, r"features: none \(raw ids\) is for mlflow models"),
    ("pipeline", {"stages": []}, "non-empty list"),
])
def test_registry_rejects_bad_params(world, kind: str, params: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        build_model("m", kind, params, world, 0)
