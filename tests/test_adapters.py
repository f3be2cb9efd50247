"""XGBoost, scikit-learn and precomputed adapters: round trips and bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.linear_model import LinearRegression, LogisticRegression

from harness.types import Ranking
from harness.errors import AdapterError, ConfigError, DataValidationError
from harness.models.features import FeatureBuilder
from harness.models.precomputed import Precomputed
from harness.models.sklearn_pointwise import SklearnPointwise
from harness.models.xgboost_ranker import XGBoostRanker

N_USERS, N_ITEMS = 30, 25


def world(seed: int = 0):
    rng = np.random.default_rng(seed)
    users = pd.DataFrame({"u0": rng.normal(size=N_USERS), "u1": rng.normal(size=N_USERS)})
    items = pd.DataFrame({"i0": rng.normal(size=N_ITEMS), "i1": rng.integers(0, 3, N_ITEMS)})
    fb = FeatureBuilder(user_features=users, item_features=items)
    pairs = pd.DataFrame({"query_id": np.repeat(np.arange(N_USERS), N_ITEMS),
                          "item_id": np.tile(np.arange(N_ITEMS), N_USERS)})
    X = fb.matrix(pairs)
    y = (X[:, 0] * X[:, 2] + X[:, 3] + rng.normal(0, 0.5, len(X)) > 0.5).astype(int)
    return fb, pairs, X, y


def candidates(seed: int = 1, width: int = 12) -> Ranking:
    """Random candidate lists with ragged padding."""
    rng = np.random.default_rng(seed)
    items = np.stack([rng.permutation(N_ITEMS)[:width] for _ in range(N_USERS)])
    lengths = rng.integers(1, width + 1, N_USERS)
    items = np.where(np.arange(width)[None, :] < lengths[:, None], items, -1)
    scores = np.where(items >= 0, 0.0, -np.inf)
    return Ranking(np.arange(N_USERS), items, scores)


def slow_rerank(cands: Ranking, score_of, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain reference: per row, real candidates sorted by (score desc, item id asc)."""
    items = np.full((len(cands), k), -1)
    scores = np.full((len(cands), k), -np.inf)
    for r, q in enumerate(cands.query_ids):
        row = sorted((-score_of(q, i), i) for i in cands.items[r] if i >= 0)[:k]
        for c, (neg, i) in enumerate(row):
            items[r, c], scores[r, c] = i, -neg
    return items, scores


def lookup(pairs: pd.DataFrame, values: np.ndarray):
    table = dict(zip(zip(pairs["query_id"], pairs["item_id"]), values))
    return lambda q, i: table[(q, i)]


@pytest.fixture(scope="module")
def xgb_model():
    fb, pairs, X, y = world()
    model = xgb.XGBRanker(objective="rank:ndcg", n_estimators=20, max_depth=3, random_state=0, n_jobs=1)
    model.fit(X, y, qid=pairs["query_id"].to_numpy())
    return model, fb, pairs, X


def test_xgboost_ranker_matches_booster_predictions(xgb_model, tmp_path: Path) -> None:
    model, fb, pairs, X = xgb_model
    expected = model.get_booster().predict(xgb.DMatrix(X))
    cands = candidates()
    ref_items, ref_scores = slow_rerank(cands, lookup(pairs, expected.astype(np.float64)), 5)
    model.save_model(tmp_path / "ranker.json")
    for source in (model, model.get_booster(), tmp_path / "ranker.json"):
        out = XGBoostRanker(source, fb, batch_size=17).rank(cands, 5)  # many small batches
        np.testing.assert_array_equal(out.items, ref_items)
        np.testing.assert_allclose(out.scores, ref_scores, rtol=1e-6)


def test_xgboost_booster_with_pairwise_objective_and_bad_models() -> None:
    fb, pairs, X, y = world()
    dtrain = xgb.DMatrix(X, label=y, qid=pairs["query_id"].to_numpy())
    booster = xgb.train({"objective": "rank:pairwise", "max_depth": 2, "seed": 0}, dtrain, num_boost_round=5)
    assert XGBoostRanker(booster, fb).objective == "rank:pairwise"
    reg = xgb.train({"objective": "reg:squarederror"}, xgb.DMatrix(X, label=y), num_boost_round=2)
    with pytest.raises(ConfigError, match=r"objective is 'reg:squarederror'"):
        XGBoostRanker(reg, fb)
    fewer = FeatureBuilder(user_features=pd.DataFrame({"u0": np.zeros(N_USERS)}))
    with pytest.raises(ConfigError, match="expects 4 features, the feature builder makes 1"):
        XGBoostRanker(booster, fewer)
    with pytest.raises(ConfigError, match="model file not found"):
        XGBoostRanker("nowhere.json", fb)


def test_a_model_that_raises_is_reported_with_name_and_batch(xgb_model, monkeypatch) -> None:
    model, fb, _, _ = xgb_model
    ranker = XGBoostRanker(model, fb, batch_size=50, name="prod-ltr")
    calls = {"n": 0}

    def flaky(X):
        calls["n"] += 1
        if calls["n"] == 2:
            raise MemoryError("out of memory")
        return np.zeros(len(X))

    monkeypatch.setattr(ranker.booster, "inplace_predict", flaky)
    with pytest.raises(AdapterError, match=r"model 'prod-ltr' raised MemoryError in score\(\) at batch 1 \(pair rows 50\.\.99\): "
                                           r"out of memory"):
        ranker.rank(candidates(width=10), 5)
    monkeypatch.setattr(ranker.booster, "inplace_predict", lambda X: np.full(len(X), np.nan))
    with pytest.raises(AdapterError, match=r"prod-ltr, batch 0 .*50 NaN or infinite scores"):
        ranker.rank(candidates(width=10), 5)
    monkeypatch.setattr(ranker.booster, "inplace_predict", lambda X: np.zeros(len(X) - 1))
    with pytest.raises(AdapterError, match=r"expected 50 scores, got shape \(49,\)"):
        ranker.rank(candidates(width=10), 5)


def test_sklearn_classifier_as_ranker_and_pointwise_model() -> None:
    fb, pairs, X, y = world()
    clf = LogisticRegression().fit(X, y)
    adapter = SklearnPointwise(clf, fb)
    p = adapter.predict_proba(pairs)
    np.testing.assert_allclose(p, clf.predict_proba(X)[:, 1], rtol=1e-12)
    cands = candidates()
    ref_items, ref_scores = slow_rerank(cands, lookup(pairs, p), 7)
    out = adapter.rank(cands, 7)
    np.testing.assert_array_equal(out.items, ref_items)
    np.testing.assert_allclose(out.scores, ref_scores, rtol=1e-12)
    # the other class as positive reverses the order of distinct scores
    neg = SklearnPointwise(clf, fb, positive_class=0).predict_proba(pairs)
    np.testing.assert_allclose(neg, 1 - p, atol=1e-12)
    with pytest.raises(ConfigError, match=r"positive_class 'yes' is not among the fitted classes \[0, 1\]"):
        SklearnPointwise(clf, fb, positive_class="yes")


def test_sklearn_regressor_ranks_but_is_not_a_probability() -> None:
    fb, pairs, X, y = world()
    reg = LinearRegression().fit(X, 3.0 * y - 1.0)  # predictions well outside [0, 1]
    adapter = SklearnPointwise(reg, fb, name="linreg")
    out = adapter.rank(candidates(), 3)
    ref_items, _ = slow_rerank(candidates(), lookup(pairs, reg.predict(X)), 3)
    np.testing.assert_array_equal(out.items, ref_items)
    with pytest.raises(AdapterError, match=r"linreg: \d+ probabilities outside \[0, 1\]"):
        adapter.predict_proba(pairs)
    with pytest.raises(ConfigError, match="fitted on 4 features"):
        SklearnPointwise(reg, FeatureBuilder(item_features=pd.DataFrame({"a": np.zeros(N_ITEMS)})))


def test_whole_catalogue_retrieval_excludes_seen_items() -> None:
    fb, pairs, X, y = world()
    clf = LogisticRegression().fit(X, y)
    adapter = SklearnPointwise(clf, fb, batch_size=60)  # two queries per batch
    train = pd.DataFrame({"user_id": [0, 0, 3], "item_id": [5, 7, 1]})
    adapter.fit(train, n_users=N_USERS, n_items=N_ITEMS)
    out = adapter.retrieve(np.arange(N_USERS), 10)
    p = lookup(pairs, clf.predict_proba(X)[:, 1])
    seen = {(0, 5), (0, 7), (3, 1)}
    for r in range(N_USERS):
        ref = sorted((-p(r, i), i) for i in range(N_ITEMS) if (r, i) not in seen)[:10]
        assert list(out.items[r]) == [i for _, i in ref]


def ranking_frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [(q, i, float(rng.integers(0, 4))) for q in range(6) for i in rng.permutation(20)[: rng.integers(1, 9)]]
    return pd.DataFrame(rows, columns=["query_id", "item_id", "score"])


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_precomputed_round_trip(tmp_path: Path, fmt: str) -> None:
    df = ranking_frame()
    path = tmp_path / f"preds.{fmt}"
    getattr(df, f"to_{fmt}")(path, index=False)
    model = Precomputed(path)
    out = model.retrieve(np.array([3, 0, 5]), 4)
    for r, q in enumerate([3, 0, 5]):
        sub = df[df.query_id == q].sort_values(["score", "item_id"], ascending=[False, True]).head(4)
        n = len(sub)
        assert list(out.items[r, :n]) == list(sub.item_id) and (out.items[r, n:] == -1).all()
        assert list(out.scores[r, :n]) == list(sub.score)
    # as a ranker: the stored score of each candidate
    cands = model.retrieve(np.arange(6), 8)
    flipped = Precomputed(df.assign(score=-df.score)).rank(cands, 8)
    ref_items, _ = slow_rerank(cands, lookup(df, -df.score.to_numpy()), 8)
    np.testing.assert_array_equal(flipped.items, ref_items)


def test_precomputed_rank_column_and_missing_queries(tmp_path: Path) -> None:
    df = ranking_frame().sort_values(["query_id", "score", "item_id"], ascending=[True, False, True])
    df["rank"] = df.groupby("query_id").cumcount() + 1
    Precomputed(df)  # consistent ranks are accepted
    bad = pd.DataFrame({"query_id": [0, 0, 2, 2, 2], "item_id": [1, 2, 4, 3, 5],
                        "score": [0.9, 0.5, 0.7, 0.7, 0.1], "rank": [1, 2, 1, 2, 3]})
    # query 2: items 3 and 4 tie on score; the harness puts item 3 first, the ranks item 4
    with pytest.raises(DataValidationError, match=r"'rank' disagrees with the order of 'score'.* 1 queries \(e\.g\. 2\)"):
        Precomputed(bad)
    model = Precomputed(df, name="spark-job")
    with pytest.raises(DataValidationError, match=r"spark-job: 2 of 3 queries asked for have no stored predictions "
                                                  r"\(e\.g\. 77, 99\); set the model's params.missing: empty"):
        model.retrieve(np.array([77, 1, 99]), 3)
    empty = Precomputed(df, missing="empty").retrieve(np.array([77, 1]), 3)
    assert (empty.items[0] == -1).all() and (empty.items[1] != -1).any()


@pytest.mark.parametrize("frame, match", [
    (pd.DataFrame({"query_id": [1], "item_id": [2]}), r"missing column\(s\) \['score'\]"),
    (pd.DataFrame({"query_id": [1, 1], "item_id": [2, 3], "score": [0.5, np.nan]}), "1 NaN or infinite"),
    (pd.DataFrame({"query_id": [1, 1], "item_id": [2, 2], "score": [0.5, 0.4]}), "1 duplicate"),
    (pd.DataFrame({"query_id": [1], "item_id": [2.5], "score": [0.5]}), "'item_id' must hold integers"),
    (pd.DataFrame({"query_id": [1], "item_id": [-3], "score": [0.5]}), "negative item ids"),
    (pd.DataFrame({"query_id": [1], "item_id": [2], "score": [0.5], "rank": [0]}), "'rank' must be >= 1"),
    (pd.DataFrame({"query_id": [], "item_id": [], "score": []}), "is empty"),
])
def test_precomputed_bad_files(frame: pd.DataFrame, match: str) -> None:
    with pytest.raises(DataValidationError, match=match):
        Precomputed(frame)


def test_precomputed_bad_paths(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        Precomputed(tmp_path / "x.parquet")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(ConfigError, match="must end in .parquet"):
        Precomputed(tmp_path / "x.json")


def test_adapters_implement_the_protocols() -> None:
    from harness.types import PointwiseModel, Ranker, Retriever

    fb, pairs, X, y = world()
    clf = SklearnPointwise(LogisticRegression().fit(X, y), fb)
    booster = xgb.XGBRanker(objective="rank:pairwise", n_estimators=2).fit(X, y, qid=pairs["query_id"].to_numpy())
    for adapter in (clf, XGBoostRanker(booster, fb), Precomputed(ranking_frame())):
        assert isinstance(adapter, Ranker) and isinstance(adapter, Retriever)
    assert isinstance(clf, PointwiseModel)


def test_xgboost_feature_names_are_checked() -> None:
    fb, pairs, X, y = world()
    model = xgb.XGBRanker(objective="rank:ndcg", n_estimators=2).fit(fb.build(pairs), y, qid=pairs["query_id"])
    renamed = FeatureBuilder(user_features=pd.DataFrame({"a": np.zeros(N_USERS), "b": np.zeros(N_USERS)}),
                             item_features=pd.DataFrame({"i0": np.zeros(N_ITEMS), "i1": np.zeros(N_ITEMS)}))
    with pytest.raises(ConfigError, match=r"feature names differ: model \['user_u0', 'user_u1', 'item_i0', "
                                          r"'item_i1'\], builder \['user_a', 'user_b', 'item_i0', 'item_i1'\]"):
        XGBoostRanker(model, renamed)
    assert XGBoostRanker(model, fb).rank(candidates(), 3).k == 3
