"""Calibrated recommendations (Steck, RecSys 2018): does a user's list reflect the
mix of categories (genres) in their history?

A model can rank well and still fill a list with the user's majority genre; Steck's
miscalibration measure ``C_KL`` is the KL divergence from the category distribution of
the user's history ``p(g|u)`` to that of the recommended list ``q(g|u)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy import special

from harness.errors import DataValidationError, describe_examples
from harness.options import check_probability

STECK_ALPHA = 0.01


def _item_category_matrix(categories: pd.DataFrame, n_items: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Row-stochastic ``p(g|i)`` (n_items, n_categories): an item's categories share its mass equally."""
    for col in ("item_id", "category"):
        if col not in categories.columns:
            raise DataValidationError(f"categories: missing column {col!r}; have {list(categories.columns)}")
    if categories[["item_id", "category"]].isna().any().any():
        raise DataValidationError(f"categories: {int(categories[['item_id', 'category']].isna().any(axis=1).sum())}"
                                  " rows have a missing item_id or category")
    items = categories["item_id"].to_numpy()
    cat_codes, cat_labels = pd.factorize(categories["category"], sort=True)
    dup = pd.DataFrame({"i": items, "c": cat_codes}).duplicated()
    if dup.any():
        raise DataValidationError(f"categories: {int(dup.sum())} duplicate (item_id, category) rows "
                                  f"({describe_examples(items[dup.to_numpy()])})")
    m = sp.csr_matrix((np.ones(len(items)), (items, cat_codes)), shape=(n_items, len(cat_labels)))
    per_item = np.asarray(m.sum(axis=1)).ravel()
    with np.errstate(divide="ignore"):
        m = sp.diags(np.where(per_item > 0, 1.0 / per_item, 0.0)) @ m
    return m.tocsr(), np.asarray(cat_labels)


def _user_distribution(frame: pd.DataFrame, name: str, users: np.ndarray, item_index: pd.Index,
                       pgi: sp.csr_matrix) -> np.ndarray:
    """``sum_i w_ui p(g|i) / sum_i w_ui`` per user, dense (n_users, n_categories)."""
    for col in ("user_id", "item_id"):
        if col not in frame.columns:
            raise DataValidationError(f"{name}: missing column {col!r}; have {list(frame.columns)}")
    weights = frame["weight"].to_numpy(np.float64) if "weight" in frame.columns else np.ones(len(frame))
    if not (np.isfinite(weights) & (weights >= 0)).all():
        bad = ~(np.isfinite(weights) & (weights >= 0))
        raise DataValidationError(f"{name}: {int(bad.sum())} weights are negative or not finite "
                                  f"({describe_examples(weights[bad])})")
    rows = pd.Index(users).get_indexer(frame["user_id"])
    cols = item_index.get_indexer(frame["item_id"])
    unknown = cols < 0
    if unknown.any():
        raise DataValidationError(f"{name}: {int(unknown.sum())} rows name items without a category "
                                  f"({describe_examples(frame['item_id'].to_numpy()[unknown])})")
    w = sp.csr_matrix((weights, (rows, cols)), shape=(len(users), len(item_index)))
    mass = np.asarray((w @ pgi).todense())
    total = mass.sum(axis=1, keepdims=True)
    empty = total.ravel() <= 0
    if empty.any():
        raise DataValidationError(f"{name}: {int(empty.sum())} users have zero total weight "
                                  f"({describe_examples(users[empty])})")
    return mass / total


def calibration_kl(history: pd.DataFrame, recommendations: pd.DataFrame, categories: pd.DataFrame,
                   *, alpha: float = STECK_ALPHA) -> pd.Series:
    """Steck's miscalibration ``C_KL(p, q)`` of each user's recommended list.

    Parameters
    ----------
    history : DataFrame
        ``user_id``, ``item_id`` and optional ``weight`` (default 1): the items the user
        interacted with (Steck's ``w_{u,i}``, e.g. recency weights).
    recommendations : DataFrame
        ``user_id``, ``item_id`` and optional ``weight`` (Steck's rank weight
        ``w_r(i)``; default 1, i.e. every listed item counts the same).
    categories : DataFrame
        ``item_id``, ``category``: one row per (item, category); an item with several
        categories spreads its mass equally over them, ``p(g|i) = 1 / |G(i)|``.
    alpha : float, default 0.01
        Smoothing of ``q`` towards ``p``, as in the paper, so that the divergence stays
        finite when the list misses a category of the history.

    Returns
    -------
    Series indexed by user id (those in ``recommendations``, ascending), name
    ``calibration_kl``; its mean is the data set's miscalibration. Lower is better;
    0 when the list's category mix equals the history's.

    Notes
    -----
    ``p(g|u) = sum_{i in H_u} w_{u,i} p(g|i) / sum_{i in H_u} w_{u,i}``,
    ``q(g|u) = sum_{i in L_u} w_r(i) p(g|i) / sum_{i in L_u} w_r(i)``,
    ``q~ = (1 - alpha) q + alpha p`` and
    ``C_KL = sum_g p(g|u) log(p(g|u) / q~(g|u))`` (natural log; terms with p = 0 are 0).

    Every user with recommendations must have a history (else the reference
    distribution is undefined), and every item must have a category: both are errors.

    References
    ----------
    Steck, H. (2018). Calibrated recommendations. RecSys '18, 154-162.

    Examples
    --------
    User 1 watched a drama and a comedy but is shown two dramas; user 2 is shown what
    they watched. For user 1, p = (1/2, 1/2) over (comedy, drama), q = (0, 1) and
    q~ = (0.005, 0.995), so C_KL = 1/2 ln(0.5 / 0.005) + 1/2 ln(0.5 / 0.995):

    >>> import pandas as pd
    >>> from harness.metrics import calibration_kl
    >>> categories = pd.DataFrame({"item_id": [10, 11, 12], "category": ["drama", "comedy", "drama"]})
    >>> history = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 10, 11]})
    >>> recs = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 12, 10, 11]})
    >>> calibration_kl(history, recs, categories).round(4).to_dict()
    {1: 1.9585, 2: 0.0}
    """
    alpha = check_probability(alpha, name="alpha")
    for name, frame in (("history", history), ("recommendations", recommendations)):
        if len(frame) == 0:
            raise DataValidationError(f"{name}: empty input (0 rows)")
    item_index = pd.Index(pd.unique(categories["item_id"])) if "item_id" in categories.columns else None
    if item_index is None:
        raise DataValidationError(f"categories: missing column 'item_id'; have {list(categories.columns)}")
    local = categories.assign(item_id=item_index.get_indexer(categories["item_id"]))
    pgi, _ = _item_category_matrix(local, len(item_index))
    users = np.unique(recommendations["user_id"].to_numpy()) if "user_id" in recommendations.columns else None
    if users is None:
        raise DataValidationError(f"recommendations: missing column 'user_id'; have {list(recommendations.columns)}")
    if "user_id" not in history.columns:
        raise DataValidationError(f"history: missing column 'user_id'; have {list(history.columns)}")
    no_history = ~np.isin(users, history["user_id"].to_numpy())
    if no_history.any():
        raise DataValidationError(f"recommendations: {int(no_history.sum())} users have no history, so "
                                  f"p(g|u) is undefined ({describe_examples(users[no_history])})")
    hist = history[history["user_id"].isin(users)]
    p = _user_distribution(hist, "history", users, item_index, pgi)
    q = _user_distribution(recommendations, "recommendations", users, item_index, pgi)
    q_smooth = (1 - alpha) * q + alpha * p
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.where(p > 0, special.xlogy(p, p) - special.xlogy(p, q_smooth), 0.0).sum(axis=1)
    return pd.Series(kl, index=pd.Index(users, name="user_id"), name="calibration_kl")


def mean_calibration_kl(history: pd.DataFrame, recommendations: pd.DataFrame, categories: pd.DataFrame,
                        *, alpha: float = STECK_ALPHA) -> float:
    """Mean of :func:`calibration_kl` over users."""
    return float(calibration_kl(history, recommendations, categories, alpha=alpha).mean())


__all__ = ["STECK_ALPHA", "calibration_kl", "mean_calibration_kl"]
