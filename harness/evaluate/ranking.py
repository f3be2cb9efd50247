"""The ranking family: trec_eval-style metrics of each model's top-k per judged query.

Units are the data set's judged queries (users). Per query: every configured metric
(``harness.metrics.evaluate_ranking``, one compiled pass), the metric@k curves in the
same pass, and for pipelines the metrics of every stage but the last:

- ``<stage>/<metric>`` over the same queries (e.g. ``retrieval/recall@500``, the
  ceiling of the later stages; see :func:`stage_metric_names`);
- ``<stage>/within_candidates/<metric>`` for every stage but the first: the stage
  judged only on the judgments of the candidates it was given, which isolates its own
  quality from the recall of the stages before it. Queries none of whose relevant
  items reached the stage are NaN there, so these columns have their own query sets
  and are summarised in ``results.json["units"][model]["stages"]``.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable

import numpy as np
import pandas as pd
from scipy import special

from harness.datasets.base import seen_matrix, seen_pairs
from harness.datasets.ids import id_maps
from harness.errors import DataValidationError, describe_examples
from harness.evaluate.family import Family, FamilyResult, ModelOutput, mean_values
from harness.evaluate.model_view import ModelView
from harness.evaluate.sources import ScoresSource, SourceCollection
from harness.evaluate.units import UnitTable
from harness.metrics import RANKING_METRICS
from harness.metrics._names import parse_label, parse_metric_names, value_range
from harness.metrics.ranking import RankingResult
from harness.spec.families import RankingEval
from harness.types import PAD_ITEM, Dataset, Ranking

if TYPE_CHECKING:
    import scipy.sparse as sp

# retrieval depth when no metric has a cut-off (e.g. only full-list 'map')
DEFAULT_DEPTH = 100
# metrics drawn as metric@k curves (k = 1 .. the largest configured cut-off)
CURVE_METRICS = ("ndcg", "recall", "precision", "map", "mrr", "hit_rate")


def curve_names(metrics: list[str]) -> list[str]:
    """Names (without cut-off) of the configured metrics that have a cut-off and a curve."""
    names = [parse_label(m).name for m in metrics if parse_label(m).k is not None]
    return [n for n in dict.fromkeys(names) if n in CURVE_METRICS]


def stage_metric_names(metrics: list[str], stage_k: int, *, ceiling: bool = True) -> list[str]:
    """The configured metrics that fit within a stage's k, plus ``recall@k`` (its ceiling)
    when ``ceiling``."""
    labels = [s.label for s in parse_metric_names(metrics, known=RANKING_METRICS)
              if s.k is not None and int(s.k) <= stage_k]
    extra = f"recall@{stage_k}"
    return labels + ([extra] if ceiling and extra not in labels else [])


def curve_intervals(means: pd.DataFrame, std_errors: pd.DataFrame, n: int,
                    confidence: float) -> dict[str, dict[str, list[float]]]:
    """Student-t interval of every point of the metric@k curves (the same interval as the
    cut-off metrics'), kept inside the metric's range: ``{name: {"low": [...], "high": [...]}}``."""
    half = std_errors * (special.stdtrit(n - 1, 0.5 + confidence / 2) if n > 1 else np.nan)
    out = {}
    for name in means:
        low, high = value_range(name) or (-np.inf, np.inf)
        out[name] = {"low": np.clip(means[name] - half[name], low, high).tolist(),
                     "high": np.clip(means[name] + half[name], low, high).tolist()}
    return out


class RankingFamily(Family[RankingEval]):
    key = "ranking"
    unit = "query"
    spec_type = RankingEval

    @property
    def cutoffs(self) -> list[int]:
        return [k for k in (parse_label(m).k for m in self.spec.metrics) if k is not None]

    def depth(self) -> int:
        return self.spec.k or max(self.cutoffs, default=DEFAULT_DEPTH)

    def _options(self) -> dict[str, object]:
        s = self.spec
        return {"gain": s.gain, "ties": s.ties, "relevance_threshold": s.relevance_threshold,
                "no_relevant": s.no_relevant, "item_names": getattr(self.dataset, "item_ids", None)}

    def __init__(self, spec: RankingEval, dataset: Dataset, *, seed: int, confidence: float) -> None:
        super().__init__(spec, dataset, seed=seed, confidence=confidence)
        self.users = id_maps(dataset)[0]
        self.counts: dict[str, dict[str, int]] = {}
        self.seen_ranked: dict[str, tuple[int, int]] = {}  # model -> (training items ranked, queries)
        self._seen: sp.csr_matrix | None = None  # the data set's training pairs (seen_matrix), when needed
        self.n_no_relevant = 0  # of a collection read by the backend (SourceCollection), from it
        qrels = getattr(dataset, "qrels", None)  # judgments in memory (not a collection Spark reads)
        if isinstance(qrels, pd.DataFrame) and len(qrels) and spec.no_relevant == "skip":
            grades = qrels["relevance"].to_numpy()
            if not (grades >= spec.relevance_threshold).any():  # what every model's run would refuse
                raise self._nothing_relevant(int(qrels["query_id"].nunique()), int(grades.max()))

    def _nothing_relevant(self, n_queries: int, top_grade: int | None = None) -> DataValidationError:
        """No judged query has an item at the relevance threshold: nothing to average. The
        fix is the data set's relevance rule when it graded everything 0, else the threshold."""
        threshold = self.spec.relevance_threshold
        fix = ("the data set's relevance rule (dataset.relevance) judged every held-out item 0: loosen it "
               "(e.g. a lower rating threshold)" if top_grade == 0 else
               f"lower evaluate.ranking.relevance_threshold (the highest grade is {top_grade})"
               if top_grade is not None else
               "lower evaluate.ranking.relevance_threshold, or check the data set's relevance rule")
        return DataValidationError(f"ranking: none of the {n_queries} judged queries has a relevant item "
                                   f"(relevance >= {threshold}); {fix}")

    def measure(self, view: ModelView) -> ModelOutput:
        curves = curve_names(self.spec.metrics)
        options = {**self._options(), "curves": curves or None, "max_k": max(self.cutoffs, default=None)}
        if isinstance(view.model, ScoresSource):  # a score table the backend reads where it computes
            del options["item_names"]  # the tables hold the user's own ids: ties break by those
            found = self.backend.evaluate_ranking_source(self.dataset, view.model, self.spec.metrics,
                                                         depth=self.depth(), **options)
            self.n_no_relevant = found.n_no_relevant
            if found.units is not None:  # the per-query values stay with the backend
                return self._measure_units(view.name, found.result, found.units)
            res, unranked, own_ids = found.result, found.unranked, True
        else:
            ranking = view.ranking.top(self.depth())
            self._count_seen(view.name, ranking)
            res = self.backend.evaluate_ranking(self.dataset.qrels, ranking, self.spec.metrics, **options)
            unranked = (np.asarray(ranking.query_ids)[ranking.items[:, 0] == PAD_ITEM] if ranking.k
                        else ranking.query_ids)
            own_ids = False
        if res.per_query.empty:
            raise self._nothing_relevant(res.skipped.get("no_relevant", 0))
        decode = (lambda ids: ids) if own_ids else self.users.decode
        per_query = self._missing(view.name, res.per_query, unranked, decode)
        self.counts[view.name] = {"judged": len(res.per_query) + sum(res.skipped.values()),
                                  "evaluated": len(per_query), "missing_from_run": res.n_missing_from_run,
                                  **{f"skipped_{k}": v for k, v in res.skipped.items()}}
        info = self._info(res)
        if view.stages is not None:
            stages, within = self._stage_tables(view.stages)
            per_query = per_query.join(stages)
            if within.shape[1]:  # each stage on its own candidates: query sets of their own
                info["stages"] = {v.metric: {"value": v.value, "ci_low": v.ci_low, "ci_high": v.ci_high,
                                             "n_units": v.n_units}
                                  for v in mean_values(within, self.confidence)}
        # units in the data's own ids, so per_unit.parquet joins to the user's tables
        per_query = per_query.set_axis(pd.Index(np.asarray(decode(per_query.index.to_numpy())).astype(str),
                                                name="unit_id"))
        return ModelOutput(per_unit=per_query, values=mean_values(per_query, self.confidence),
                           info=info)

    def _count_seen(self, name: str, ranking: Ranking) -> None:
        """How many of the model's ranked items are its users' own training items (and in
        how many queries): the built-in retrievers leave them out by default, stored
        scores keep whatever they hold, so two models may not be ranking the same pool."""
        if not len(self.dataset.train) or not ranking.k:
            return
        if self._seen is None:
            self._seen = seen_matrix(self.dataset.train, self.dataset.n_users, self.dataset.n_items)
        hit = seen_pairs(self._seen, np.asarray(ranking.query_ids), ranking.items)
        if hit.any():
            self.seen_ranked[name] = (int(hit.sum()), int(hit.any(axis=1).sum()))

    def _info(self, res: RankingResult) -> dict[str, object]:
        """``results.json["units"][model]``: counts and the metric@k curves with their bands."""
        info: dict[str, object] = {"n_queries": res.n_queries, "skipped": res.skipped,
                                   "n_missing_from_run": res.n_missing_from_run}
        if res.curves is not None:
            info["curves"] = {c: res.curves[c].tolist() for c in res.curves}
            info["curve_intervals"] = curve_intervals(res.curves, res.curve_std_errors, res.n_queries,
                                                      self.confidence)
        return info

    def _measure_units(self, name: str, res: RankingResult, units: UnitTable) -> ModelOutput:
        """A model whose per-query values the backend kept (a :class:`UnitTable` of the
        evaluated queries, those it ranked nothing for flagged): what :meth:`measure`
        does with a frame, through the table's aggregates."""
        if units.n_units == 0:
            raise self._nothing_relevant(res.skipped.get("no_relevant", 0))
        n_all = units.n_units
        gone = units.n_flagged()
        if gone and self.spec.missing == "error":
            error = self._missing_error(name, gone, n_all, units.flagged_examples())
            units.release()
            raise error
        if gone and self.spec.missing == "skip":
            units = units.without_flagged()
        self.counts[name] = {"judged": n_all + sum(res.skipped.values()),
                             "evaluated": units.n_units, "missing_from_run": res.n_missing_from_run,
                             **{f"skipped_{k}": v for k, v in res.skipped.items()}}
        return ModelOutput(per_unit=units, values=units.headline(self.confidence), info=self._info(res))

    def _missing_error(self, name: str, n_gone: int, n_judged: int, examples: object) -> DataValidationError:
        return DataValidationError(
            f"model {name!r} ranks nothing for {n_gone} of {n_judged} judged queries "
            f"({describe_examples(examples)}); set evaluate.ranking.missing to "
            "'zero' (score them 0) or 'skip' (leave them out of the comparison)")

    def _missing(self, name: str, per_query: pd.DataFrame, unranked: np.ndarray,
                 decode: Callable[[np.ndarray], np.ndarray]) -> pd.DataFrame:
        """Apply ``missing`` to the evaluated queries the model ranked nothing for
        (``unranked``, in the ids of ``per_query``'s index; ``decode`` gives the user's)."""
        gone = per_query.index.intersection(pd.Index(unranked))
        if len(gone) and self.spec.missing == "error":
            raise self._missing_error(name, len(gone), len(per_query), decode(gone.to_numpy()))
        return per_query.drop(gone) if self.spec.missing == "skip" else per_query

    def _stage_tables(self, stages: dict[str, Ranking]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``<stage>/<metric>`` and ``<stage>/within_candidates/<metric>`` per query."""
        qrels, names = self.dataset.qrels, list(stages)
        tables, within = [], []
        for stage in names[:-1]:
            res = self.backend.evaluate_ranking(qrels, stages[stage], stage_metric_names(self.spec.metrics, stages[stage].k),
                                   **self._options())
            tables.append(res.per_query.add_prefix(f"{stage}/"))
        for prev, stage in zip(names, names[1:]):
            # the stage judged only on what it was given: judgments of its candidates
            reachable = qrels.merge(stages[prev].to_frame()[["query_id", "item_id"]], on=["query_id", "item_id"])
            metrics = stage_metric_names(self.spec.metrics, stages[stage].k, ceiling=False)
            if len(reachable) and metrics:
                # a query none of whose relevant items reached the stage says nothing of it
                res = self.backend.evaluate_ranking(reachable, stages[stage], metrics, **{**self._options(), "no_relevant": "skip"})
                within.append(res.per_query.add_prefix(f"{stage}/within_candidates/"))

        def joined(parts: list[pd.DataFrame]) -> pd.DataFrame:
            return pd.concat(parts, axis=1) if parts else pd.DataFrame(index=pd.Index([], name="query_id"))

        return joined(tables), joined(within)

    def finish(self, outputs: dict[str, ModelOutput], skipped: list[str]) -> FamilyResult:
        result = super().finish(outputs, skipped)
        result.pairing = "common" if self.spec.missing == "skip" else "same"
        result.extra = {"missing": self.spec.missing, "counts": self.counts}
        what = {"zero": "scored 0", "skip": "left out of its means and comparisons", "error": ""}[self.spec.missing]
        for model, c in self.counts.items():
            if c["missing_from_run"]:
                result.notices.append(f"ranking: {model} ranks nothing for {c['missing_from_run']} of "
                                      f"{c['judged']} judged queries: {what} (evaluate.ranking.missing)")
        for model, output in outputs.items():
            # every metric 0 on every query: nothing it ranks is relevant, most often item ids
            # that are not the judgments' ("sku-a12" for "sku-A12", codes for names)
            if output.values and all(v.value == 0 for v in output.values):
                result.notices.append(f"ranking: {model} scores 0 on every metric for all {output.values[0].n_units} "
                                      "evaluated queries: none of the items it ranks is relevant; check that its "
                                      "item ids are the judgments' (same case, type and prefix)")
        for model, (n_items, n_queries) in self.seen_ranked.items():
            if model in outputs:
                result.notices.append(
                    f"ranking: {model} ranks {n_items} of its users' own training items (in {n_queries} queries' "
                    f"top {self.depth()}): they are relevant only if the user came back to them in the test "
                    "split, and the built-in retrievers leave them out (exclude_seen: true, their default), so "
                    "models that keep them are not ranking the same pool; drop them from stored scores with "
                    "params.exclude_seen: true (precomputed)")
        no_relevant = self.n_no_relevant if isinstance(self.dataset, SourceCollection) else int(
            (self.dataset.qrels.groupby("query_id")["relevance"].max() < self.spec.relevance_threshold).sum())
        if no_relevant:
            what = {"skip": "left out of every ranking mean", "zero": "scored 0 on every metric"}[self.spec.no_relevant]
            result.notices.append(f"ranking: {no_relevant} judged queries have no relevant item (relevance >= "
                                  f"{self.spec.relevance_threshold}): {what} (evaluate.ranking.no_relevant)")
        k = pd.RangeIndex(1, max(self.cutoffs, default=0) + 1, name="k")
        curves = {m: pd.DataFrame(o.info["curves"], index=k) for m, o in outputs.items() if o.info.get("curves")}
        bands = {m: (pd.DataFrame({c: b["low"] for c, b in o.info["curve_intervals"].items()}, index=k),
                     pd.DataFrame({c: b["high"] for c, b in o.info["curve_intervals"].items()}, index=k))
                 for m, o in outputs.items() if o.info.get("curve_intervals")}
        if curves:
            from harness.evaluate.plots import plot_metric_curves

            result.figures["ranking_curves"] = partial(plot_metric_curves, curves, bands=bands,
                                                       confidence=self.confidence)
        return result
