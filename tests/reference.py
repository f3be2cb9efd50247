"""Slow, obviously-correct references for runner-level tests, written from the
definitions in DESIGN.md and the metric docstrings with plain Python loops on purpose:
they share no code with ``harness.metrics``, so a bug there fails the tests that use them.

Lists are plain Python lists of item ids, best first, padding (-1) removed.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

# --- inputs -----------------------------------------------------------------------------


def lists_of(query_ids: Iterable, items: np.ndarray) -> dict:
    """``{query: [item, ...]}`` of a padded ``items[n_queries, k]`` matrix (padding dropped)."""
    return {q: [int(i) for i in row if i != -1] for q, row in zip(query_ids, items)}


def lists_from_run(run: pd.DataFrame) -> dict:
    """``{query: [item, ...]}`` of a ``(query_id, item_id, score)`` run: score descending,
    ties by item id ascending (the harness's documented order)."""
    rows: dict = defaultdict(list)
    for q, item, score in zip(run["query_id"], run["item_id"], run["score"]):
        rows[q].append((-float(score), item))
    return {q: [item for _, item in sorted(pairs)] for q, pairs in rows.items()}


def judgments(qrels: pd.DataFrame) -> dict:
    """``{query: {item: relevance}}``."""
    out: dict = defaultdict(dict)
    for q, item, rel in zip(qrels["query_id"], qrels["item_id"], qrels["relevance"]):
        out[q][item] = rel
    return dict(out)


# --- ranking (linear gain, relevant = relevance >= 1) ---------------------------------


def ndcg(ranked: Sequence, judged: Mapping, k: int) -> float:
    dcg = sum(judged.get(item, 0) / math.log2(rank + 1) for rank, item in enumerate(ranked[:k], start=1))
    ideal = sorted(judged.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(ideal, start=1))
    return dcg / idcg


def recall(ranked: Sequence, judged: Mapping, k: int) -> float:
    relevant = {item for item, rel in judged.items() if rel >= 1}
    return len(relevant & set(ranked[:k])) / len(relevant)


RANKING = {"ndcg": ndcg, "recall": recall}


def ranking_means(qrels: pd.DataFrame, lists: Mapping, metrics: Sequence[str]) -> dict[str, float]:
    """Mean of each ``name@k`` over the queries with a relevant judgment; a judged query
    without a list scores 0."""
    judged = judgments(qrels)
    evaluated = [q for q, rels in judged.items() if any(rel >= 1 for rel in rels.values())]
    out = {}
    for label in metrics:
        name, k = label.split("@")
        fn = RANKING[name]
        out[label] = sum(fn(lists.get(q, []), judged[q], int(k)) for q in evaluated) / len(evaluated)
    return out


# --- beyond accuracy ------------------------------------------------------------------


def coverage(lists: Iterable[Sequence], n_items: int, k: int) -> float:
    """Distinct recommended items / catalogue size."""
    shown: set = set()
    for items in lists:
        shown.update(items[:k])
    return len(shown) / n_items


def gini(lists: Iterable[Sequence], n_items: int, k: int) -> float:
    """Gini index of exposure counts over the whole catalogue, as the mean absolute
    difference over all ordered pairs of items divided by twice the mean."""
    x = [0] * n_items
    for items in lists:
        for item in items[:k]:
            x[item] += 1
    mean_abs_diff = sum(abs(a - b) for a in x for b in x) / n_items**2
    return mean_abs_diff / (2 * sum(x) / n_items)


def personalization(lists: Sequence[Sequence], k: int) -> float:
    """1 - mean Jaccard overlap over all pairs of distinct users."""
    sets = [set(items[:k]) for items in lists]
    overlaps = [len(a & b) / len(a | b) if a | b else 0.0
                for u, a in enumerate(sets) for b in sets[u + 1:]]
    return 1 - sum(overlaps) / len(overlaps)


def popularity(train: pd.DataFrame) -> tuple[dict, int]:
    """``({item: number of training users who interacted}, number of training users)``."""
    users: dict = defaultdict(set)
    for user, item in zip(train["user_id"], train["item_id"]):
        users[item].add(user)
    return {item: len(who) for item, who in users.items()}, len(set(train["user_id"]))


def novelty(items: Sequence, pop: Mapping, n_users: int, k: int) -> float:
    """Mean of -log2((pop_i + 1) / (n_users + 1)) over the list (0 for an empty list)."""
    values = [-math.log2((pop.get(item, 0) + 1) / (n_users + 1)) for item in items[:k]]
    return sum(values) / len(values) if values else 0.0


def average_popularity(items: Sequence, pop: Mapping, k: int) -> float:
    values = [pop.get(item, 0) for item in items[:k]]
    return sum(values) / len(values) if values else 0.0


def intra_list_diversity(items: Sequence, vectors: np.ndarray, k: int) -> float:
    """Mean of 1 - cosine over the pairs of listed items that have a non-zero vector
    (0 with fewer than two such items)."""
    usable = [[float(v) for v in vectors[item]] for item in items[:k] if any(v != 0 for v in vectors[item])]
    distances = []
    for a in range(len(usable)):
        for b in range(a + 1, len(usable)):
            u, v = usable[a], usable[b]
            dot = sum(x * y for x, y in zip(u, v))
            norms = math.sqrt(sum(x * x for x in u)) * math.sqrt(sum(y * y for y in v))
            distances.append(1 - dot / norms)
    return sum(distances) / len(distances) if distances else 0.0
