"""Attribution of a metric change to the stages of a pipeline: Shapley values and
pairwise interaction indices over stage swaps.

Players are the ``s`` stages that differ between a baseline and a candidate pipeline. A
coalition ``T`` is the hybrid pipeline that takes the stages in ``T`` from the candidate
and every other stage from the baseline; it is encoded as a bit mask (bit ``i`` set:
stage ``i`` from the candidate), so mask ``0`` is the baseline and ``2^s - 1`` the
candidate. ``v(T)`` is a metric of that hybrid (per unit, or its mean).

Every attribution here is a fixed linear combination of the hybrids' values, so it is
computed per unit as ``values @ coefficients`` and its mean is the attribution of the
means; a paired bootstrap of the per-unit attributions then resamples every term with
the same weights (see ``harness.inference.attribution``).

- Shapley value (Shapley 1953): ``phi_i = sum_{S subset N minus i} w(|S|) [v(S + i) - v(S)]``
  with ``w(k) = k! (s - k - 1)! / s!``. Efficiency: ``sum_i phi_i = v(N) - v(empty)``, the
  total change, exactly.
- Shapley interaction index (Grabisch & Roubens 1999), for a pair ``{i, j}``:
  ``I_ij = sum_{S subset N minus {i, j}} w2(|S|) [v(S + ij) - v(S + i) - v(S + j) + v(S)]``
  with ``w2(k) = k! (s - k - 2)! / (s - 1)!``. For two stages it is the 2x2
  difference-in-differences ``v(11) - v(10) - v(01) + v(00)``: the candidate ranker's gain
  with the candidate retriever minus its gain with the baseline retriever, the
  component interaction of Hron et al. (2021).

Above ``max_exact`` players the ``2^s`` hybrids are too many: Shapley values are then
averaged over ``n_permutations`` seeded random orders (Castro, Gomez & Tejada 2009),
each order telescoping to ``v(N) - v(empty)``, so efficiency still holds exactly; the
interaction of ``{i, j}`` is averaged over the sampled orders in which ``i`` and ``j``
are adjacent (their predecessors ``S`` then have probability ``w2(|S|)``), which adds
one hybrid per such order.

References
----------
Shapley, L. S. (1953). A value for n-person games. *Contributions to the Theory of
Games* II, 307-317.
Grabisch, M. & Roubens, M. (1999). An axiomatic approach to the concept of interaction
among players in cooperative games. *Int. J. Game Theory* 28, 547-565.
Castro, J., Gomez, D. & Tejada, J. (2009). Polynomial calculation of the Shapley value
based on sampling. *Computers & Operations Research* 36(5), 1726-1730.
Hron, J., Krauth, K., Jordan, M. I. & Kilbertus, N. (2021). On component interactions
in two-stage recommender systems. *NeurIPS 2021*.

Examples
--------
Two stages, a retriever (bit 0) and a ranker (bit 1); the ranker helps only with the
new retriever:

>>> import numpy as np
>>> from harness.metrics.attribution import attribution_plan, attribute
>>> plan = attribution_plan(2)
>>> v = np.array([[0.30, 0.40, 0.30, 0.60]])  # v(00), v(10: new retriever), v(01: new ranker), v(11)
>>> terms = attribute(v, plan)
>>> terms.shapley.round(4).tolist(), terms.interactions.round(4).tolist(), terms.total.round(4).tolist()
([[0.2, 0.1]], [[0.2]], [0.3])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

from harness.errors import ConfigError, DataValidationError
from harness.options import check_integer

# Up to this many differing stages every hybrid is evaluated and the values are exact.
MAX_EXACT_PLAYERS = 5
# Random orders averaged above MAX_EXACT_PLAYERS (each order: s + 1 hybrids at most).
DEFAULT_PERMUTATIONS = 200


def _popcount(masks: np.ndarray) -> np.ndarray:
    out = np.zeros(masks.shape, dtype=np.int64)
    m = masks.astype(np.int64).copy()
    while m.any():
        out += m & 1
        m >>= 1
    return out


def _members(masks: np.ndarray, n_players: int) -> np.ndarray:
    """(len(masks), n_players) booleans: player i is in coalition mask."""
    return (masks[:, None] >> np.arange(n_players)) & 1 == 1


def shapley_coefficients(n_players: int) -> np.ndarray:
    """Coefficients ``C`` (2^s, s) of the exact Shapley values: ``phi = v @ C`` for the
    values ``v`` of every coalition mask ``0 .. 2^s - 1``.

    ``C[T, i] = w(|T| - 1)`` if ``i`` in ``T`` else ``-w(|T|)``, ``w(k) = k! (s - k - 1)! / s!``.

    >>> from harness.metrics.attribution import shapley_coefficients
    >>> shapley_coefficients(2).tolist()   # rows: masks 00, 10, 01, 11
    [[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]
    """
    s = check_integer(n_players, name="n_players", minimum=1)
    masks = np.arange(1 << s)
    size = _popcount(masks)
    w = np.array([math.factorial(k) * math.factorial(s - k - 1) / math.factorial(s) for k in range(s)] + [0.0])
    inside = _members(masks, s)
    return np.where(inside, w[np.maximum(size - 1, 0)][:, None], -w[size][:, None])


def player_pairs(n_players: int) -> list[tuple[int, int]]:
    """The pairs ``(i, j)``, ``i < j``, in the column order of the interaction terms."""
    return list(combinations(range(n_players), 2))


def interaction_coefficients(n_players: int) -> np.ndarray:
    """Coefficients ``C`` (2^s, s (s - 1) / 2) of the exact Shapley interaction indices of
    every pair (order of :func:`player_pairs`): ``I = v @ C``.

    ``C[T, ij] = (-1)^{|T cap ij|} w2(|T minus ij|)``, ``w2(k) = k! (s - k - 2)! / (s - 1)!``.

    >>> from harness.metrics.attribution import interaction_coefficients
    >>> interaction_coefficients(2)[:, 0].tolist()   # v(11) - v(10) - v(01) + v(00)
    [1.0, -1.0, -1.0, 1.0]
    """
    s = check_integer(n_players, name="n_players", minimum=1)
    pairs = player_pairs(s)
    masks = np.arange(1 << s)
    if not pairs:
        return np.zeros((len(masks), 0))
    size = _popcount(masks)
    inside = _members(masks, s)
    w2 = np.array([math.factorial(k) * math.factorial(s - k - 2) / math.factorial(s - 1) for k in range(s - 1)])
    out = np.empty((len(masks), len(pairs)))
    for col, (i, j) in enumerate(pairs):
        hits = inside[:, i].astype(np.int64) + inside[:, j]
        out[:, col] = np.where(hits % 2 == 0, 1.0, -1.0) * w2[size - hits]
    return out


def sampled_coefficients(n_players: int, n_permutations: int, *, seed: int
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Permutation-sampling estimators of the Shapley values and interaction indices.

    Returns ``(masks, shapley, interactions)``: the coalitions to evaluate (sorted) and
    coefficient matrices over them, ``(len(masks), s)`` and ``(len(masks), n_pairs)``.

    For each of the ``P`` seeded orders ``pi`` with predecessor sets ``P_t``:
    ``phi_i += [v(P_t + i) - v(P_t)] / P`` at ``i = pi_t``; for adjacent ``pi_t, pi_{t+1}``
    the pair's interaction gets ``v(P_t + ij) - v(P_t + pi_t) - v(P_t + pi_{t+1}) + v(P_t)``,
    averaged over the orders in which the pair is adjacent. A pair never adjacent in the
    sample has an undefined (NaN) column.
    """
    s = check_integer(n_players, name="n_players", minimum=2)
    n_perm = check_integer(n_permutations, name="n_permutations", minimum=1)
    rng = np.random.default_rng(seed)
    orders = np.argsort(rng.random((n_perm, s)), axis=1)
    bits = np.left_shift(1, orders)
    chain = np.concatenate([np.zeros((n_perm, 1), dtype=np.int64), np.cumsum(bits, axis=1)], axis=1)
    # adjacent pairs (pi_t, pi_{t+1}): their predecessors, and the extra hybrid P_t + pi_{t+1}
    before = chain[:, :-2]
    second = bits[:, 1:]
    extra = before + second
    masks = np.unique(np.concatenate([chain.ravel(), extra.ravel()]))
    row = {int(m): r for r, m in enumerate(masks)}
    index = np.vectorize(row.__getitem__, otypes=[np.int64])
    shapley = np.zeros((len(masks), s))
    players = orders.ravel()
    np.add.at(shapley, (index(chain[:, 1:]).ravel(), players), 1.0 / n_perm)
    np.add.at(shapley, (index(chain[:, :-1]).ravel(), players), -1.0 / n_perm)
    pairs = player_pairs(s)
    col_of = {p: c for c, p in enumerate(pairs)}
    a, b = orders[:, :-1].ravel(), orders[:, 1:].ravel()
    cols = np.array([col_of[(min(x, y), max(x, y))] for x, y in zip(a, b)], dtype=np.int64)
    counts = np.bincount(cols, minlength=len(pairs)).astype(np.float64)
    interactions = np.zeros((len(masks), len(pairs)))
    weight = 1.0 / np.where(counts > 0, counts, 1.0)[cols]
    first = before + bits[:, :-1]
    for rows_, sign in ((chain[:, 2:], 1.0), (first, -1.0), (extra, -1.0), (before, 1.0)):
        np.add.at(interactions, (index(rows_).ravel(), cols), sign * weight)
    interactions[:, counts == 0] = np.nan
    return masks, shapley, interactions


@dataclass(frozen=True)
class AttributionPlan:
    """Which hybrids to evaluate and how each attribution combines their values.

    ``masks[r]`` is the coalition of column ``r`` of the values; ``shapley`` (m, s),
    ``interactions`` (m, n_pairs) and ``total`` (m,) are the coefficients of the terms;
    ``exact`` says whether every one of the ``2^s`` hybrids is in the plan.
    """

    n_players: int
    masks: np.ndarray
    shapley: np.ndarray
    interactions: np.ndarray
    total: np.ndarray
    pairs: list[tuple[int, int]]
    exact: bool
    n_permutations: int | None = None


def attribution_plan(n_players: int, *, max_exact: int = MAX_EXACT_PLAYERS,
                     n_permutations: int = DEFAULT_PERMUTATIONS, seed: int = 0) -> AttributionPlan:
    """The hybrids and coefficients for ``n_players`` differing stages: exact up to
    ``max_exact`` players, ``n_permutations`` seeded random orders above."""
    s = check_integer(n_players, name="n_players", minimum=0)
    check_integer(max_exact, name="max_exact", minimum=1, maximum=12)
    if s <= max_exact:
        masks = np.arange(1 << s)
        shapley = shapley_coefficients(s) if s else np.zeros((1, 0))
        inter = interaction_coefficients(s) if s else np.zeros((1, 0))
        exact, perms = True, None
    else:
        masks, shapley, inter = sampled_coefficients(s, n_permutations, seed=seed)
        exact, perms = False, n_permutations
    total = np.zeros(len(masks))
    total[masks == (1 << s) - 1] += 1.0
    total[masks == 0] -= 1.0
    return AttributionPlan(s, masks, shapley, inter, total, player_pairs(s), exact, perms)


@dataclass(frozen=True)
class Attributions:
    """Per-unit attribution terms: ``shapley`` (n, s), ``interactions`` (n, n_pairs),
    ``total`` (n,) = v(candidate) - v(baseline)."""

    shapley: np.ndarray
    interactions: np.ndarray
    total: np.ndarray


def attribute(values: np.ndarray, plan: AttributionPlan) -> Attributions:
    """Per-unit Shapley values, interaction indices and total change.

    Parameters
    ----------
    values : ndarray of shape (n_units, len(plan.masks))
        ``values[u, r]``: the metric of unit ``u`` under hybrid ``plan.masks[r]``.

    Returns
    -------
    Attributions
        ``values @ plan.shapley``, ``values @ plan.interactions``, ``values @ plan.total``.

    Notes
    -----
    An exact plan sums weighted differences ``v(S + i) - v(S)`` (and differences of
    differences for the interactions) rather than weighted values: a stage that changes
    nothing for a unit then gets exactly 0 there, not a rounding residual.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(plan.masks):
        raise DataValidationError(f"attribute: values must have shape (n_units, {len(plan.masks)}) "
                                  f"(one column per hybrid of the plan), got {v.shape}")
    bad = ~np.isfinite(v)
    if bad.any():
        raise DataValidationError(f"attribute: {int(bad.sum())} values are NaN or infinite "
                                  f"(e.g. unit {int(np.nonzero(bad)[0][0])})")
    total = v[:, plan.masks == (1 << plan.n_players) - 1][:, 0] - v[:, plan.masks == 0][:, 0]
    if not plan.exact:
        return Attributions(v @ plan.shapley, v @ plan.interactions, total)
    s = plan.n_players
    masks = np.arange(1 << s)  # an exact plan's columns are the masks in order
    size = _popcount(masks)
    shapley = np.empty((v.shape[0], s))
    for i in range(s):
        without = masks[(masks >> i) & 1 == 0]
        w = np.array([math.factorial(k) * math.factorial(s - k - 1) / math.factorial(s) for k in size[without]])
        shapley[:, i] = (v[:, without | 1 << i] - v[:, without]) @ w
    inter = np.empty((v.shape[0], len(plan.pairs)))
    for col, (i, j) in enumerate(plan.pairs):
        base = masks[((masks >> i) & 1 == 0) & ((masks >> j) & 1 == 0)]
        w2 = np.array([math.factorial(k) * math.factorial(s - k - 2) / math.factorial(s - 1) for k in size[base]])
        second = (v[:, base | 1 << i | 1 << j] - v[:, base | 1 << i]) - (v[:, base | 1 << j] - v[:, base])
        inter[:, col] = second @ w2
    return Attributions(shapley, inter, total)


# --------------------------------------------------------------------------- term labels

TERM_KINDS = ("shapley", "interaction", "total", "retrieval_limited", "ranking_limited")


@dataclass(frozen=True)
class AttributionTerm:
    """One attribution of one metric, named like a metric so a gate can name it:

    - ``shapley/<stage>/<metric>``: the stage's Shapley value;
    - ``interaction/<stage>/<stage>/<metric>``: a pair's interaction index;
    - ``total/<metric>``: candidate minus baseline;
    - ``retrieval_limited/<metric>``, ``ranking_limited/<metric>``: the change of the
      loss left by the first stage's candidates (ideal minus the oracle ranker over them)
      and of the loss of the later stages (that oracle minus the pipeline).
    """

    kind: str
    stages: tuple[str, ...]
    metric: str

    @property
    def label(self) -> str:
        return "/".join((self.kind, *self.stages, self.metric))


def parse_term(label: str) -> AttributionTerm | None:
    """The term a label names, or None when it is not an attribution label (a plain metric)."""
    parts = label.split("/")
    n_stages = {"shapley": 1, "interaction": 2}.get(parts[0], 0)
    if parts[0] not in TERM_KINDS:
        return None
    if len(parts) != 2 + n_stages or not all(parts[1:]):
        shape = "/".join([parts[0], *["<stage>"] * n_stages, "<metric>"])
        raise ConfigError(f"attribution term {label!r}: expected {shape}")
    return AttributionTerm(parts[0], tuple(parts[1:-1]), parts[-1])
