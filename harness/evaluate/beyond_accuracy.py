"""Beyond-accuracy metrics of each model's top-k lists inside a run.

Per-user metrics (``novelty@k``, ``arp@k``, ``ild@k``) join the per-query table, so they
get intervals, paired comparisons and can be gated like any ranking metric.
Catalogue-level metrics (``coverage@k``, ``gini@k``, ``personalization@k``) describe all
lists together: one value per model, without a per-unit interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from harness.errors import DataValidationError

BEYOND_METRICS = {name: "required" for name in
                  ("coverage", "gini", "personalization", "novelty", "arp", "ild")}
PER_USER = frozenset({"novelty", "arp", "ild"})


def item_vectors(dataset: Any) -> np.ndarray:
    """Item vectors for intra-list diversity: category memberships (e.g. MovieLens
    genres), else the numeric item features."""
    _, categories = dataset.category_matrix()
    if categories.shape[1] > 0:
        return categories.astype(np.float64)
    features = getattr(dataset, "item_features", None)
    if features is not None:
        numeric = features.set_index("item_id").select_dtypes("number").reindex(range(dataset.n_items))
        if numeric.shape[1] > 0 and not numeric.isna().any().any():
            return numeric.to_numpy(dtype=np.float64)
    raise DataValidationError("ild needs item categories or numeric item features for every item; "
                              f"dataset {dataset.name!r} has neither")


def beyond_accuracy(ranking: Any, dataset: Any, metrics: list[str], *, seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-user values (index: query id as a string) and catalogue-level values."""
    from harness.metrics import beyond_accuracy as ba
    from harness.metrics._names import parse_metric_names

    popularity = np.bincount(dataset.train["item_id"].to_numpy(), minlength=dataset.n_items).astype(float)
    n_train_users = int(dataset.train["user_id"].nunique())
    per_user: dict[str, np.ndarray] = {}
    catalogue: dict[str, float] = {}
    vectors = None
    for spec in parse_metric_names(metrics, known=BEYOND_METRICS):
        k, items = spec.k, ranking.items
        if spec.name == "coverage":
            catalogue[spec.label] = ba.catalog_coverage(items, dataset.n_items, k=k)
        elif spec.name == "gini":
            catalogue[spec.label] = ba.gini_index(items, dataset.n_items, k=k)
        elif spec.name == "personalization":
            catalogue[spec.label] = ba.personalization(items, dataset.n_items, k=k, seed=seed)
        elif spec.name == "novelty":
            per_user[spec.label] = ba.novelty(items, popularity, max(n_train_users, int(popularity.max())), k=k)
        elif spec.name == "arp":
            per_user[spec.label] = ba.average_popularity(items, popularity, k=k)
        else:
            vectors = item_vectors(dataset) if vectors is None else vectors
            per_user[spec.label] = ba.intra_list_diversity(items, vectors, k=k)
    index = pd.Index(np.asarray(ranking.query_ids).astype(str), name="query_id")
    return pd.DataFrame(per_user, index=index), catalogue
