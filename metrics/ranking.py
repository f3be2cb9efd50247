"""Ranking metrics with trec_eval semantics: the friendly front door.

``evaluate_ranking`` validates qrels and a run once, factorises their ids once, groups
the run by query with a counting sort and hands everything to the compiled one-pass
kernel in ``_ranking_kernels``. Nothing here loops over queries or rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Literal

import numba
import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError, describe_examples
from harness.options import check_choice, check_integer, check_number

from . import _ranking_kernels as K
from ._names import Cutoff, MetricSpec, parse_metric_names, parse_label

if TYPE_CHECKING:
    from harness.types import Ranking

Gain = Literal["linear", "exponential"]
Ties = Literal["stable", "trec_eval", "average"]

MAX_ROWS = 2**31  # row indices are int32

# metric name -> whether it takes a cut-off
RANKING_METRICS: dict[str, Cutoff] = {
    "ndcg": "optional",
    "dcg": "optional",
    "recall": "optional",
    "precision": "required",
    "map": "optional",
    "mrr": "optional",
    "hit_rate": "required",
    "f1": "required",
    "r_precision": "none",
}


@dataclass
class RankingResult:
    """Per-query values and means of ranking metrics.

    Attributes
    ----------
    per_query : DataFrame
        Index ``query_id`` (queries with at least one relevant item), one column per metric.
    means : dict
        Metric label -> mean over ``per_query``.
    n_queries : int
        Queries evaluated (rows of ``per_query``).
    skipped : dict
        Reason -> count: ``no_relevant`` (in qrels but nothing relevant; left out of the
        means), ``not_in_qrels`` (in the run only; ignored).
    n_missing_from_run : int
        Evaluated queries that the run did not rank at all (they score 0).
    curves : DataFrame or None
        With ``curves=`` asked: mean metric@k for k = 1..max_k (index ``k``, one column
        per metric), from the same kernel pass as ``per_query``.
    curve_std_errors : DataFrame or None
        The standard error of each mean of ``curves`` (sample sd / sqrt(n_queries)),
        for interval bands.
    """

    per_query: pd.DataFrame
    means: dict[str, float]
    n_queries: int
    skipped: dict[str, int] = field(default_factory=dict)
    n_missing_from_run: int = 0
    curves: pd.DataFrame | None = None
    curve_std_errors: pd.DataFrame | None = None


@dataclass
class PreparedRun:
    """A run and its qrels, validated and factorised: the kernel's inputs."""

    query_ids: np.ndarray  # (n_q,) original ids of the qrels queries
    run_order: np.ndarray  # run row indices grouped by query
    run_offsets: np.ndarray  # (n_q + 1,)
    run_items: np.ndarray  # int64 item keys
    run_scores: np.ndarray
    run_tiebreak: np.ndarray  # int64; smaller ranks first among equal scores
    q_order: np.ndarray  # qrels row indices grouped by query
    q_offsets: np.ndarray  # (n_q + 1,)
    q_items: np.ndarray  # int64 item keys, same key space as run_items
    q_rels: np.ndarray
    n_run_only: int


def _check_frame(df: object, name: str, value_col: str) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(f"{name}: expected a DataFrame, got {type(df).__name__}")
    missing = [c for c in ("query_id", "item_id", value_col) if c not in df.columns]
    if missing:
        raise DataValidationError(f"{name}: missing column(s) {missing}; has {list(df.columns)}")
    if len(df) == 0:
        raise DataValidationError(f"{name}: is empty (0 rows)")
    for col in ("query_id", "item_id"):
        dtype = df[col].dtype
        if isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.integer):  # cannot hold a missing value
            continue
        nulls = df[col].isna().to_numpy()
        if nulls.any():
            raise DataValidationError(f"{name}: column {col!r} has {int(nulls.sum())} missing ids "
                                      f"(e.g. row {int(np.argmax(nulls))})")
    return df


def _numeric(values: np.ndarray, name: str) -> np.ndarray:
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)
            or values.dtype == np.bool_):
        raise DataValidationError(f"{name} must be numeric, got dtype {values.dtype}")
    return values.astype(np.float64, copy=False)


def _validate_qrels(qrels: pd.DataFrame) -> np.ndarray:
    _check_frame(qrels, "qrels", "relevance")
    raw = qrels["relevance"].to_numpy()
    rel = _numeric(raw, "qrels: column 'relevance'")
    # integer columns are whole and finite by construction: only their sign needs a check
    bad = (rel < 0) if np.issubdtype(raw.dtype, np.integer) else (
        ~np.isfinite(rel) | (rel < 0) | (rel != np.round(rel)))
    if bad.any():
        raise DataValidationError(
            f"qrels: column 'relevance' must hold integers >= 0; {int(bad.sum())} rows do not "
            f"({describe_examples(rel[bad])})")
    return rel


def _validate_run(run: pd.DataFrame) -> np.ndarray:
    _check_frame(run, "run", "score")
    scores = _numeric(run["score"].to_numpy(), "run: column 'score'")
    if np.isfinite(scores).all():  # one pass, one temporary: the common case
        return scores
    bad = ~np.isfinite(scores)
    raise DataValidationError(f"run: column 'score' has {int(bad.sum())} NaN or infinite values "
                              f"(queries {describe_examples(run['query_id'].to_numpy()[bad])})")


def _is_int(values: np.ndarray) -> bool:
    return np.issubdtype(values.dtype, np.integer)


def _item_keys(q_items: np.ndarray, r_items: np.ndarray, ties: str,
               item_names: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer keys for joining items, and the run's tie-break key (``item_names[code]``:
    the id trec_eval would see of each integer item code)."""
    if _is_int(q_items) and _is_int(r_items):
        qk, rk = q_items.astype(np.int64, copy=False), r_items.astype(np.int64, copy=False)
        if ties != "trec_eval":
            return qk, rk, rk
        # trec_eval breaks ties by the id as a string, descending
        uniques = pd.unique(rk)
        text = (np.asarray(item_names)[uniques] if item_names is not None else uniques).astype(str)
        rank = np.empty(len(uniques), dtype=np.int64)
        rank[np.argsort(text, kind="stable")[::-1]] = np.arange(len(uniques))
        return qk, rk, rank[pd.Index(uniques).get_indexer(rk)]
    both = np.concatenate([q_items.astype(object), r_items.astype(object)])
    kind = pd.api.types.infer_dtype(both, skipna=False)
    if kind not in ("string", "integer", "bytes"):
        kinds = [pd.api.types.infer_dtype(ids, skipna=False) for ids in (q_items, r_items)]
        if kinds[0] != kinds[1] and {"string", "integer"} >= set(kinds):  # each table sound, the two unlike
            raise DataValidationError(
                f"item_id: the qrels hold {kinds[0]} ids ({describe_examples(pd.unique(q_items))}) and the run "
                f"{kinds[1]} ids ({describe_examples(pd.unique(r_items))}); check the id types: give both "
                "tables the same one (e.g. .astype(str) on the integer one)")
        raise DataValidationError(f"item_id: ids must be all ints or all strings to be ordered; "
                                  f"got {kind} ({describe_examples(pd.unique(both))})")
    as_str = ties == "trec_eval"
    codes, _ = pd.factorize(both.astype(str) if as_str else both, sort=True)
    codes = codes.astype(np.int64)
    qk, rk = codes[: len(q_items)], codes[len(q_items):]
    return qk, rk, (-rk if as_str else rk)


def _run_lengths(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """First row and length of each run of equal consecutive ids, when rows come grouped
    by query (the usual case: then ids need looking up once a query, not once a row);
    None when runs are too short to pay."""
    if len(ids) < 2:
        return None
    change = np.empty(len(ids), dtype=bool)
    change[0] = True
    np.not_equal(ids[1:], ids[:-1], out=change[1:])
    heads = np.flatnonzero(change)
    if len(heads) * 4 > len(ids):
        return None
    return heads, np.diff(heads, append=len(ids))


def _factorize(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``pd.factorize`` (codes in order of first appearance) as int32, one lookup a run."""
    runs = _run_lengths(ids)
    if runs is None:
        codes, uniques = pd.factorize(ids)
        return codes.astype(np.int32), np.asarray(uniques)
    codes, uniques = pd.factorize(ids[runs[0]])
    return np.repeat(codes.astype(np.int32), runs[1]), np.asarray(uniques)


def _query_codes(index: pd.Index, ids: np.ndarray, chunk: int = 1 << 22) -> np.ndarray:
    """Position of each id in ``index`` (-1 if absent), as int32: one lookup a run of
    equal ids, else looked up in chunks, so that no int64 array of the run's length is
    ever allocated."""
    if len(ids) >= MAX_ROWS:
        raise DataValidationError(f"run: {len(ids):,} rows; evaluate at most {MAX_ROWS - 1:,} at a time "
                                  "(split the queries into batches)")
    runs = _run_lengths(ids)
    if runs is not None:
        return np.repeat(index.get_indexer(ids[runs[0]]).astype(np.int32), runs[1])
    out = np.empty(len(ids), dtype=np.int32)
    for start in range(0, len(ids), chunk):
        out[start : start + chunk] = index.get_indexer(ids[start : start + chunk])
    return out


def prepare(qrels: pd.DataFrame, run: "pd.DataFrame | Ranking", *, ties: Ties = "stable",
            item_names: np.ndarray | None = None) -> PreparedRun:
    """Validate and factorise once; group the run by query (O(n) counting sort)."""
    from harness.types import Ranking  # light module; imported here to avoid a cycle

    rel = _validate_qrels(qrels)
    if isinstance(run, Ranking):
        keep = (run.items != -1).ravel()
        r_q = np.repeat(np.asarray(run.query_ids), run.k)[keep]
        r_items = run.items.ravel()[keep]
        scores = run.scores.ravel()[keep].astype(np.float64)
        if r_items.size == 0:
            raise DataValidationError("run: the Ranking holds no items (all padding)")
    else:
        scores = _validate_run(run)
        r_q, r_items = run["query_id"].to_numpy(), run["item_id"].to_numpy()
    if len(qrels) >= MAX_ROWS:
        raise DataValidationError(f"qrels: {len(qrels):,} rows; at most {MAX_ROWS - 1:,} are supported")
    qq, query_ids = _factorize(qrels["query_id"].to_numpy())
    n_q = len(query_ids)
    rq = _query_codes(pd.Index(query_ids), r_q)
    q_items, r_keys, tiebreak = _item_keys(qrels["item_id"].to_numpy(), r_items, ties, item_names)
    if ties == "trec_eval":
        # trec_eval keeps scores as C floats: scores equal in single precision tie there
        scores = scores.astype(np.float32).astype(np.float64)

    q_order, q_offsets = K.group_offsets(qq, n_q)
    order, offsets = K.group_offsets(rq, n_q)
    n_run_only = 0
    if offsets[-1] < len(rq):  # some run queries are not in qrels (code -1)
        unknown = r_q[rq < 0]
        if offsets[-1] == 0:
            raise DataValidationError(
                f"run: none of its {len(pd.unique(r_q))} query ids appears in qrels (run ids "
                f"{describe_examples(pd.unique(r_q))}, qrels ids {describe_examples(query_ids)}); "
                f"check the id types ({np.asarray(r_q).dtype} vs {query_ids.dtype})")
        n_run_only = int(len(pd.unique(unknown)))
    del rq  # the largest temporary: free it before the kernel allocates
    # the kernels' fixed dtypes (one compiled version): no copy when already so
    return PreparedRun(np.asarray(query_ids), order, offsets, np.ascontiguousarray(r_keys, dtype=np.int64),
                       np.ascontiguousarray(scores, dtype=np.float64),
                       np.ascontiguousarray(tiebreak, dtype=np.int64), q_order, q_offsets,
                       np.ascontiguousarray(q_items, dtype=np.int64),
                       np.ascontiguousarray(rel, dtype=np.float64), n_run_only)


def _kernel_values(prep: PreparedRun, specs: list[MetricSpec], *, gain: Gain, ties: Ties,
                   threshold: float) -> tuple[np.ndarray, np.ndarray]:
    check_choice(gain, ("linear", "exponential"), name="gain")
    check_choice(ties, ("stable", "trec_eval", "average"), name="ties")
    check_number(threshold, name="relevance_threshold", low=0.0, low_open=True)  # grade 0 is not relevant
    codes = np.array([K.METRIC_CODES[s.name] for s in specs], dtype=np.int64)
    cutoffs = np.array([-1 if s.k is None else s.k for s in specs], dtype=np.int64)
    values, n_rel, duplicate, dup_judged = K.evaluate_segments(
        prep.run_order, prep.run_offsets, prep.run_items, prep.run_scores, prep.run_tiebreak,
        prep.q_order, prep.q_offsets, prep.q_items, prep.q_rels, codes, cutoffs, float(threshold),
        K.GAIN_LINEAR if gain == "linear" else K.GAIN_EXPONENTIAL,
        K.TIES_AVERAGE if ties == "average" else K.TIES_ORDERED, 16 * numba.get_num_threads(),
        K.COUNT_RANKS_MAX)
    bad = dup_judged >= 0
    if bad.any():
        raise DataValidationError(f"qrels: duplicate (query_id, item_id) rows in {int(bad.sum())} queries "
                                  f"(queries {describe_examples(prep.query_ids[bad])})")
    bad = duplicate >= 0
    if bad.any():
        raise DataValidationError(f"run: duplicate (query_id, item_id) rows in {int(bad.sum())} queries "
                                  f"(queries {describe_examples(prep.query_ids[bad])})")
    return values, n_rel


def evaluate_ranking(
    qrels: pd.DataFrame,
    run: "pd.DataFrame | Ranking",
    metrics: str | list[str],
    *,
    gain: Gain = "linear",
    ties: Ties = "stable",
    relevance_threshold: int = 1,
    curves: list[str] | None = None,
    max_k: int | None = None,
    no_relevant: Literal["skip", "zero"] = "skip",
    item_names: np.ndarray | None = None,
) -> RankingResult:
    """Evaluate a run against graded judgments.

    Parameters
    ----------
    qrels : DataFrame
        Columns ``query_id``, ``item_id``, ``relevance`` (integers >= 0).
    run : DataFrame or Ranking
        Columns ``query_id``, ``item_id``, ``score``; or a ``Ranking`` from an adapter.
        Ids may be ints or strings.
    metrics : str or list of str
        E.g. ``["ndcg@10", "recall@[10,20]", "map@100", "mrr@10", "r_precision"]``.
        Without a cut-off, ndcg/dcg/recall/map/mrr use the whole list (trec_eval's
        ``ndcg``, ``map``, ``recip_rank``).
    gain : {"linear", "exponential"}, default "linear"
        Gain of a relevance grade: ``rel`` (trec_eval, scikit-learn) or ``2**rel - 1``.
    ties : {"stable", "trec_eval", "average"}, default "stable"
        Order of equal scores: item id ascending; trec_eval's (scores compared in single
        precision, as trec_eval stores them, then id string descending); or the exact
        expectation over all orders of tied items.
    relevance_threshold : int, default 1
        Grade at or above which an item counts as relevant for binary metrics.
    curves : list of str, optional
        Metric names without cut-off (e.g. ``["ndcg", "recall"]``) whose mean at every
        k = 1..``max_k`` goes to ``RankingResult.curves``, in the same pass.
    max_k : int, optional
        Largest cut-off of the curves (required with ``curves``).
    no_relevant : {"skip", "zero"}, default "skip"
        Judged queries without a relevant item: left out of ``per_query`` and the means
        (counted in ``skipped``; recommender practice, where such users carry no signal),
        or kept with every metric 0 (trec_eval's and pytrec_eval's per-query output).
    item_names : ndarray, optional
        With integer item codes, the user's own id of each code (``dataset.item_ids``):
        ``ties="trec_eval"`` then breaks ties by those ids, as trec_eval on the user's
        files would, not by the codes.

    Returns
    -------
    RankingResult

    Notes
    -----
    With ``rel_i`` the grade at rank i, ``b_i = [rel_i >= threshold]`` and ``R`` the
    number of relevant judged items of the query:

    - DCG@k = sum_{i<=k} g(rel_i) / log2(i + 1); nDCG@k = DCG@k / IDCG@k, the ideal
      taken over all judged items of the query;
    - Recall@k = sum_{i<=k} b_i / R; Precision@k = sum_{i<=k} b_i / k;
      R-precision = Precision@R; F1@k = 2 P R / (P + R);
    - AP@k = sum_{i<=k} b_i * Precision@i / R (trec_eval's map_cut);
      MRR@k = 1 / min{i <= k : b_i}, else 0; HitRate@k = [sum_{i<=k} b_i > 0].

    Queries without a relevant item are left out and counted in ``skipped`` (or score 0
    with ``no_relevant="zero"``); queries in qrels that the run does not rank score 0.

    References
    ----------
    Järvelin & Kekäläinen, "Cumulated gain-based evaluation of IR techniques", TOIS 2002.
    McSherry & Najork, "Computing information retrieval performance measures efficiently
    in the presence of tied scores", ECIR 2008 (tie-averaged metrics).

    Examples
    --------
    >>> import pandas as pd
    >>> from harness.metrics import evaluate_ranking
    >>> qrels = pd.DataFrame({"query_id": [1, 1], "item_id": [10, 11], "relevance": [1, 0]})
    >>> run = pd.DataFrame({"query_id": [1, 1], "item_id": [11, 10], "score": [0.9, 0.5]})
    >>> evaluate_ranking(qrels, run, ["recall@1", "mrr@2"]).means
    {'recall@1': 0.0, 'mrr@2': 0.5}
    """
    specs = parse_metric_names(metrics, known=RANKING_METRICS)
    curve_specs = _curve_specs(curves, max_k) if curves else []
    prep = prepare(qrels, run, ties=ties, item_names=item_names)
    values, n_rel = _kernel_values(prep, specs + curve_specs, gain=gain, ties=ties, threshold=relevance_threshold)
    check_choice(no_relevant, ("skip", "zero"), name="no_relevant")
    has_relevant = n_rel > 0
    values[~has_relevant] = 0.0  # nothing relevant: every metric is 0 (kept only with "zero")
    evaluated = has_relevant if no_relevant == "skip" else np.ones_like(has_relevant)
    per_query = pd.DataFrame(values[evaluated, : len(specs)], columns=[s.label for s in specs],
                             index=pd.Index(prep.query_ids[evaluated], name="query_id"))
    ranked = np.diff(prep.run_offsets) > 0
    return RankingResult(
        per_query=per_query,
        means={c: float(per_query[c].mean()) if len(per_query) else float("nan") for c in per_query},
        n_queries=int(evaluated.sum()),
        skipped={"no_relevant": int((~evaluated).sum()), "not_in_qrels": prep.n_run_only},
        n_missing_from_run=int((evaluated & ~ranked).sum()),
        curves=_curve_table(values[evaluated, len(specs):], curve_specs, _mean) if curve_specs else None,
        curve_std_errors=(_curve_table(values[evaluated, len(specs):], curve_specs, _std_error)
                          if curve_specs else None),
    )


def _curve_specs(metrics: list[str], max_k: int | None) -> list[MetricSpec]:
    """Every k = 1..max_k of each named metric, metric-major."""
    check_integer(max_k, name="max_k", minimum=1)
    # curve names are bare ("precision") or labels ("precision@10"): the curve gives every
    # k itself, so a metric that needs a cut-off elsewhere needs none here
    names = list(dict.fromkeys(parse_label(m.strip().lower()).name for m in metrics))
    unknown = [n for n in names if n not in RANKING_METRICS]
    if unknown:
        raise ConfigError(f"curves: unknown metric(s) {unknown}; known: {', '.join(sorted(RANKING_METRICS))}")
    return [MetricSpec(name, k) for name in names for k in range(1, max_k + 1)]


def _mean(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=0)


def _std_error(values: np.ndarray) -> np.ndarray:
    n = values.shape[0]
    return values.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(values.shape[1], np.nan)


def _curve_table(values: np.ndarray, specs: list[MetricSpec],
                 column_stat: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
    """A statistic of every (metric, k) column as a table indexed by k, one column per metric."""
    names = list(dict.fromkeys(s.name for s in specs))
    max_k = len(specs) // len(names)
    table = column_stat(values).reshape(len(names), max_k).T
    return pd.DataFrame(table, columns=names, index=pd.RangeIndex(1, max_k + 1, name="k"))


def metric_curves(
    qrels: pd.DataFrame,
    run: "pd.DataFrame | Ranking",
    metrics: list[str],
    max_k: int,
    *,
    gain: Gain = "linear",
    ties: Ties = "stable",
    relevance_threshold: int = 1,
) -> pd.DataFrame:
    """Mean metric@k for every k = 1..max_k, in one pass (for plots and MLflow steps).

    Parameters
    ----------
    metrics : list of str
        Metric names without cut-off, e.g. ``["ndcg", "recall"]``.
    max_k : int
        Largest cut-off.

    Returns
    -------
    DataFrame indexed by ``k`` (1..max_k), one column per metric, means over the
    queries that have a relevant item.
    """
    specs = _curve_specs(metrics, max_k)
    prep = prepare(qrels, run, ties=ties)
    values, n_rel = _kernel_values(prep, specs, gain=gain, ties=ties, threshold=relevance_threshold)
    return _curve_table(values[n_rel > 0], specs, _mean)
