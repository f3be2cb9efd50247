"""The beyond-accuracy family: what each model's top-k lists look like, not how relevant.

Per-user metrics (``novelty@k``, ``arp@k``, ``ild@k``) are measured on the same units
as ranking (the judged queries), so they get intervals and paired comparisons and can
be gated. Catalogue-level metrics (``coverage@k``, ``gini@k``, ``personalization@k``)
describe all lists together: one value per model, no per-unit interval.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.datasets.ids import id_maps
from harness.errors import DataValidationError
from harness.evaluate.family import Family, MetricValue, ModelOutput, mean_values
from harness.evaluate.model_view import ModelView
from harness.metrics import beyond_accuracy as ba
from harness.metrics._names import parse_metric_names
from harness.spec.families import BeyondAccuracyEval
from harness.types import Dataset


def item_vectors(dataset: Dataset) -> np.ndarray:
    """Item vectors for intra-list diversity: category memberships (e.g. MovieLens
    genres), else the numeric item features."""
    _, categories = dataset.category_matrix()
    if categories.shape[1] > 0:
        return categories.astype(np.float64)
    features = dataset.item_features
    if features is not None:
        numeric = features.set_index("item_id").select_dtypes("number").reindex(range(dataset.n_items))
        if numeric.shape[1] > 0 and not numeric.isna().any().any():
            return numeric.to_numpy(dtype=np.float64)
    raise DataValidationError("ild needs item categories or numeric item features for every item; "
                              f"dataset {dataset.name!r} has neither")


class BeyondAccuracyFamily(Family[BeyondAccuracyEval]):
    key = "beyond_accuracy"
    unit = "query"
    spec_type = BeyondAccuracyEval

    def depth(self) -> int:
        return max(int(s.k) for s in parse_metric_names(self.spec.metrics, known=ba.BEYOND_METRICS))

    def measure(self, view: ModelView) -> ModelOutput:
        per_user, catalogue = beyond_accuracy(view.ranking.items, self.dataset, self.spec.metrics, seed=self.seed)
        users = id_maps(self.dataset)[0].decode(np.asarray(view.ranking.query_ids))
        per_user.index = pd.Index(users.astype(str), name="unit_id")
        values = mean_values(per_user, self.confidence)
        values += [MetricValue(m, v, n_units=len(per_user)) for m, v in catalogue.items()]
        return ModelOutput(per_unit=per_user, values=values, info={"catalogue": catalogue})


def beyond_accuracy(items: np.ndarray, dataset: Dataset, metrics: list[str], *,
                    seed: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per-user values (one row per list of ``items``) and catalogue-level values."""
    popularity = np.bincount(dataset.train["item_id"].to_numpy(), minlength=dataset.n_items).astype(float)
    n_train_users = int(dataset.train["user_id"].nunique())
    per_user: dict[str, np.ndarray] = {}
    catalogue: dict[str, float] = {}
    vectors = None
    for spec in parse_metric_names(metrics, known=ba.BEYOND_METRICS):
        k = spec.k
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
    return pd.DataFrame(per_user, index=pd.RangeIndex(len(items))), catalogue
