"""Feature builder: vectorised joins checked against pandas merges and hand-computed values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from harness.errors import DataValidationError
from harness.models.features import (EmbeddingDot, FeatureBuilder, UserItemProduct, cosine_item_similarity,
                                     interaction_features, interaction_matrix)


def test_join_matches_pandas_merge() -> None:
    rng = np.random.default_rng(0)
    users = pd.DataFrame({"age": rng.normal(size=20), "tenure": rng.integers(0, 9, 20)},
                         index=rng.permutation(np.arange(100, 120)))
    items = pd.DataFrame({"price": rng.normal(size=15)}, index=np.arange(15)[::-1])
    pairs = pd.DataFrame({"query_id": rng.integers(100, 120, 200), "item_id": rng.integers(0, 15, 200)})
    U = rng.normal(size=(120, 4))
    V = rng.normal(size=(15, 4))
    fb = FeatureBuilder(user_features=users, item_features=items, cross={"dot": EmbeddingDot(U, V)})
    got = fb.build(pairs)
    ref = pairs.merge(users, left_on="query_id", right_index=True, how="left") \
               .merge(items, left_on="item_id", right_index=True, how="left")
    assert fb.feature_names == ["user_age", "user_tenure", "item_price", "dot"]
    np.testing.assert_allclose(got["user_age"], ref["age"], rtol=1e-6)
    np.testing.assert_allclose(got["user_tenure"], ref["tenure"], rtol=1e-6)
    np.testing.assert_allclose(got["item_price"], ref["price"], rtol=1e-6)
    dots = [float(U[q] @ V[i]) for q, i in zip(pairs["query_id"], pairs["item_id"])]
    np.testing.assert_allclose(got["dot"], dots, rtol=1e-5, atol=1e-6)


def test_interaction_features_by_hand() -> None:
    train = pd.DataFrame({"user_id": [0, 0, 1, 1, 1, 2], "item_id": [0, 1, 0, 2, 3, 1]})
    X = interaction_matrix(train, 3, 4).toarray()
    # cosine of item columns, written out
    S = np.zeros((4, 4))
    for a in range(4):
        for b in range(4):
            na, nb = X[:, a].sum(), X[:, b].sum()
            if a != b and na and nb:
                S[a, b] = (X[:, a] * X[:, b]).sum() / np.sqrt(na * nb)
    np.testing.assert_allclose(cosine_item_similarity(interaction_matrix(train, 3, 4)).toarray(), S)
    fb = interaction_features(train, 3, 4, svd_dim=2)
    pairs = pd.DataFrame({"query_id": np.repeat([0, 1, 2], 4), "item_id": np.tile(np.arange(4), 3)})
    got = fb.build(pairs)
    np.testing.assert_allclose(got["user_log_activity"], np.log1p(np.repeat([2, 3, 1], 4)), rtol=1e-6)
    np.testing.assert_allclose(got["item_log_popularity"], np.log1p(np.tile([2, 2, 1, 1], 3)), rtol=1e-6)
    np.testing.assert_allclose(got["knn"], (X @ S).ravel(), rtol=1e-6)


def test_user_item_product_blocks_match_dense() -> None:
    import harness.models.features as F

    rng = np.random.default_rng(1)
    train = pd.DataFrame({"user_id": rng.integers(0, 50, 400), "item_id": rng.integers(0, 30, 400)})
    X = interaction_matrix(train, 50, 30)
    S = cosine_item_similarity(X)
    q, i = rng.integers(0, 50, 1000), rng.integers(0, 30, 1000)
    old = F._BLOCK_CELLS
    F._BLOCK_CELLS = 60  # two users per block: many blocks
    try:
        got = UserItemProduct(X, S)(q, i)
    finally:
        F._BLOCK_CELLS = old
    np.testing.assert_allclose(got, (X @ S).toarray()[q, i], rtol=1e-12)


@pytest.mark.parametrize("make, match", [
    (lambda: FeatureBuilder(), "at least one"),
    (lambda: FeatureBuilder(user_features=pd.DataFrame({"a": [1.0, np.nan]})), r"'a' has 1 NaN.*ids e\.g\. 1"),
    (lambda: FeatureBuilder(user_features=pd.DataFrame({"a": ["x"]})), "must be numeric"),
    (lambda: FeatureBuilder(item_features=pd.DataFrame({"a": [1.0, 2.0]}, index=[3, 3])), "duplicate ids"),
    (lambda: FeatureBuilder(item_features=pd.DataFrame({"a": [1.0]}, index=["x"])), "integer ids"),
])
def test_bad_feature_tables(make, match: str) -> None:
    with pytest.raises(DataValidationError, match=match):
        make()


def test_unknown_ids_and_bad_pairs_are_named() -> None:
    fb = FeatureBuilder(item_features=pd.DataFrame({"a": [1.0, 2.0]}))
    with pytest.raises(DataValidationError, match=r"2 rows have a 'item_id' with no features \(e\.g\. 5, 9\)"):
        fb.build(pd.DataFrame({"query_id": [0, 0, 1], "item_id": [5, 1, 9]}))
    with pytest.raises(DataValidationError, match="missing column 'item_id'"):
        fb.build(pd.DataFrame({"query_id": [0]}))
    with pytest.raises(DataValidationError, match="must hold integer ids"):
        fb.build(pd.DataFrame({"query_id": [0], "item_id": [0.5]}))
    dot = FeatureBuilder(cross={"d": EmbeddingDot(np.ones((2, 2)), np.ones((2, 2)))})
    with pytest.raises(DataValidationError, match=r"'query_id' outside 0\.\.1 \(e\.g\. 4\)"):
        dot.build(pd.DataFrame({"query_id": [4], "item_id": [0]}))
