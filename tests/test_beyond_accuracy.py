"""Beyond-accuracy metrics against hand-computed values and plain references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from harness.errors import DataValidationError
from harness.metrics.beyond_accuracy import (average_popularity, catalog_coverage, exposure_counts,
                                             gini_index, intra_list_diversity, novelty, personalization)

LISTS = np.array([[0, 1, 2], [0, 1, -1], [0, 3, 4]])


def test_coverage_and_exposure() -> None:
    assert exposure_counts(LISTS, 6).tolist() == [3, 2, 1, 1, 1, 0]
    assert catalog_coverage(LISTS, 6) == pytest.approx(5 / 6)
    assert catalog_coverage(LISTS, 6, k=1) == pytest.approx(1 / 6)


def test_gini_hand_cases() -> None:
    # exposures sorted: [0, 1, 1, 1, 2, 3], n = 6, total 8
    x = np.array([0, 1, 1, 1, 2, 3])
    expected = sum((2 * i - 6 - 1) * v for i, v in enumerate(x, start=1)) / (6 * 8)
    assert gini_index(LISTS, 6) == pytest.approx(expected)
    # perfectly equal exposure -> 0; everything on one item of n -> (n - 1) / n
    assert gini_index(np.array([[0], [1], [2]]), 3) == pytest.approx(0.0)
    assert gini_index(np.array([[0], [0], [0]]), 4) == pytest.approx(3 / 4)


def test_novelty_and_popularity() -> None:
    pop = np.array([9, 4, 0, 1, 1, 0], dtype=float)
    info = -np.log2((pop + 1) / 11)
    nov = novelty(LISTS, pop, n_users=10)
    assert nov[0] == pytest.approx(info[[0, 1, 2]].mean())
    assert nov[1] == pytest.approx(info[[0, 1]].mean())  # padding ignored
    arp = average_popularity(LISTS, pop)
    assert arp.tolist() == pytest.approx([13 / 3, 13 / 2, 11 / 3])


def test_intra_list_diversity_matches_plain_pairs() -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(6, 4))
    ild = intra_list_diversity(LISTS, vecs, batch_users=2)
    for u, row in enumerate(LISTS):
        its = [i for i in row if i >= 0]
        dists = [1 - vecs[a] @ vecs[b] / np.linalg.norm(vecs[a]) / np.linalg.norm(vecs[b])
                 for a, b in itertools.combinations(its, 2)]
        assert ild[u] == pytest.approx(np.mean(dists), abs=1e-12)
    assert intra_list_diversity(np.array([[1, -1]]), vecs)[0] == 0.0  # one item: no pairs
    # an item without features is left out of the pairs, like padding
    holed = vecs.copy()
    holed[2] = 0.0
    assert intra_list_diversity(np.array([[0, 1, 2]]), holed)[0] == pytest.approx(
        intra_list_diversity(np.array([[0, 1, -1]]), vecs)[0])


def test_personalization_exact_and_sampled() -> None:
    # pairs: J(0,1) = 2/3, J(0,2) = 1/5, J(1,2) = 1/4
    assert personalization(LISTS, 6) == pytest.approx(1 - (2 / 3 + 1 / 5 + 1 / 4) / 3)
    identical = np.tile(np.arange(5), (50, 1))
    assert personalization(identical, 5, max_pairs=100) == pytest.approx(0.0)
    rng = np.random.default_rng(1)
    lists = np.array([rng.choice(40, 5, replace=False) for _ in range(120)])
    exact = personalization(lists, 40)
    sampled = personalization(lists, 40, max_pairs=3000, seed=3)
    assert sampled == pytest.approx(exact, abs=0.01)
    assert personalization(lists, 40, max_pairs=3000, seed=3) == sampled  # seeded


@pytest.mark.parametrize("call, match", [
    (lambda: catalog_coverage(np.array([[0, 7]]), 5), "outside"),
    (lambda: catalog_coverage(np.array([0, 1]), 5), "2-D"),
    (lambda: catalog_coverage(np.array([[0.5]]), 5), "integer"),
    (lambda: gini_index(np.array([[-1, -1]]), 5), "all padding"),
    (lambda: novelty(LISTS, np.ones(3), 10), r"shape \(3,\)|outside"),
    (lambda: novelty(LISTS, np.full(6, 20.0), 10), "n_users"),
    (lambda: intra_list_diversity(LISTS, np.full((6, 3), np.nan)), "NaN"),
    (lambda: personalization(LISTS[:1], 6), "at least 2 users"),
])
def test_bad_inputs(call, match) -> None:
    with pytest.raises(DataValidationError, match=match):
        call()
