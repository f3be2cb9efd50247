"""The calibration family: are each model's probabilities right, row by row?

Units are rows of a click log (impressions): the synthetic world's log with known
true click probabilities (``harness.datasets.synthetic_clicks``). Every model with
``predict_proba`` scores the log; Brier and log loss are row means (paired per row),
ECE, MCE, normalised entropy and O/E are sum statistics over the same rows (compared
by a shared bootstrap with each model's bin edges fixed at its full-sample edges).
Each row's label and p are stored as the family's per-unit inputs, so that
``harness compare`` can rebuild those statistics offline. Models without
``predict_proba`` are skipped and listed.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from harness.errors import DataValidationError, describe_examples
from harness.evaluate.family import Family, FamilyResult, FigureDraw, MetricValue, ModelOutput, Statistic
from harness.evaluate.model_view import ModelView
from harness.metrics import calibration as cal
from harness.metrics._names import value_range
from harness.metrics.calibration_stats import calibration_statistics
from harness.metrics.stats import bootstrap_statistics, mean_confidence_interval
from harness.spec.families import CalibrationEval
from harness.types import Dataset

LABEL, PROBA = "label", "p"


def popularity_bucket_names(n_buckets: int) -> list[str]:
    """``q1 least popular``, ``q2``, .., ``qN most popular``: the name says which end is
    the popular one, and the names sort in bucket order (N <= 9)."""
    names = [f"q{b}" for b in range(1, n_buckets + 1)]
    names[0], names[-1] = f"{names[0]} least popular", f"{names[-1]} most popular"
    return names


def popularity_buckets(train: pd.DataFrame, items: np.ndarray, n_items: int, n_buckets: int = 5) -> np.ndarray:
    """Item popularity bucket of each row: quantile bucket of the item's training count,
    named by :func:`popularity_bucket_names`; the items of one training count are split
    between buckets by rank, so every bucket holds about 1/N of the catalogue."""
    counts = np.bincount(train["item_id"].to_numpy(), minlength=n_items)
    ranks = pd.Series(counts).rank(method="first").to_numpy()
    bucket = np.minimum((ranks - 1) * n_buckets // n_items, n_buckets - 1).astype(np.int64)
    return np.asarray(popularity_bucket_names(n_buckets), dtype=object)[bucket[items]].astype(str)


def synthetic_clicks(spec: CalibrationEval, dataset: Dataset, seed: int) -> pd.DataFrame:
    """The synthetic world's click log: labels drawn from known true probabilities."""
    from harness.datasets.synthetic_clicks import make_click_log

    return make_click_log(dataset, n_per_user=spec.n_per_user, scale=spec.scale, base_rate=spec.base_rate,
                          seed=seed + 1)


def read_labels(spec: CalibrationEval, dataset: Dataset) -> pd.DataFrame:
    """The user's labelled pairs, ids mapped to the data set's codes, labels checked 0/1;
    every message names the file's own columns."""
    from harness.datasets.ids import id_maps
    from harness.datasets.tables import read_table

    f = spec.labels
    cols = f.columns
    table = read_table(f.path, id_columns=[cols["user"], cols["item"]])
    missing = [c for c in cols.values() if c not in table.columns]
    if missing:
        raise DataValidationError(f"{f.path}: missing column(s) {missing}; has {list(table.columns)}")
    if not len(table):
        raise DataValidationError(f"{f.path}: no labelled rows")
    label = pd.to_numeric(table[cols["label"]], errors="coerce")
    bad = ~label.isin([0, 1])
    if bad.any():
        raise DataValidationError(f"{f.path}: column {cols['label']!r}: {int(bad.sum())} of {len(table)} rows "
                                  f"are not 0/1 labels ({describe_examples(table[cols['label']][bad])})")
    users, items = id_maps(dataset)
    return pd.DataFrame({"query_id": users.encode(table[cols["user"]], source=f.path, column=cols["user"]),
                         "item_id": items.encode(table[cols["item"]], source=f.path, column=cols["item"]),
                         "label": label.to_numpy(dtype=np.int64)})


def ratio_metrics(metrics: list[str]) -> list[str]:
    """The configured metrics compared as sum statistics, not as row means."""
    from harness.metrics.calibration_stats import STATISTIC_METRICS

    return [m for m in metrics if m in STATISTIC_METRICS and m not in cal.PER_ROW_METRICS]


class CalibrationFamily(Family[CalibrationEval]):
    key = "calibration"
    unit = "impression"
    spec_type = CalibrationEval

    def __init__(self, spec: CalibrationEval, dataset: Dataset, *, seed: int, confidence: float) -> None:
        super().__init__(spec, dataset, seed=seed, confidence=confidence)
        self.clicks = read_labels(spec, dataset) if spec.labels is not None else synthetic_clicks(spec, dataset, seed)
        self.segments = (popularity_buckets(dataset.train, self.clicks["item_id"].to_numpy(), dataset.n_items)
                         if spec.segment_by == "item_popularity" else None)
        self.unit_ids = pd.Index(pd.RangeIndex(len(self.clicks)).astype(str), name="unit_id")
        self.curves: dict[str, pd.DataFrame] = {}
        self.by_segment: dict[str, pd.DataFrame] = {}

    def cannot_measure(self, view: ModelView) -> str | None:
        return None if view.is_pointwise else "has no predict_proba()"

    def check_stored(self, view: ModelView) -> None:
        """Stored probabilities: one for every labelled pair (a lookup, as in :meth:`measure`)."""
        if self.cannot_measure(view) is None:
            view.predict_proba(self.clicks[["query_id", "item_id"]])

    def measure(self, view: ModelView) -> ModelOutput | None:
        """Score the click log with the model and compute every calibration output."""
        if self.cannot_measure(view) is not None:  # the engine says so and lists it as skipped
            return None
        s, name = self.spec, view.name
        p = view.predict_proba(self.clicks[["query_id", "item_id"]])
        y = self.clicks["label"].to_numpy()
        summary = cal.calibration_summary(y, p, n_bins=s.n_bins, strategy=s.strategy, eps=s.eps)
        per_row = pd.DataFrame({"brier": cal.brier_score_per_row(y, p),
                                "log_loss": cal.log_loss_per_row(y, p, eps=s.eps)}, index=self.unit_ids)
        self.curves[name] = cal.reliability_curve(y, p, n_bins=s.n_bins, strategy=s.strategy)
        if self.segments is not None:
            self.by_segment[name] = cal.calibration_by_segment(y, p, self.segments, n_bins=s.n_bins,
                                                               strategy=s.strategy, eps=s.eps)
        statistics = calibration_statistics(y, p, ratio_metrics(s.metrics), n_bins=s.n_bins, strategy=s.strategy,
                                            eps=s.eps)
        intervals = self._intervals(per_row, statistics, summary)
        values = [MetricValue(m, summary[m], *intervals.get(m, (float("nan"), float("nan"))), len(y))
                  for m in s.metrics]
        keep = [m for m in s.metrics if m in cal.PER_ROW_METRICS]
        inputs = pd.DataFrame({LABEL: y.astype(np.float64), PROBA: p}, index=self.unit_ids)
        return ModelOutput(per_unit=per_row[keep], values=values, inputs=inputs,
                           statistics=statistics,
                           info={"metrics": summary, "intervals": {k: list(v) for k, v in intervals.items()}})

    def _intervals(self, per_row: pd.DataFrame, stats: dict[str, Statistic],
                   summary: dict[str, float]) -> dict[str, tuple[float, float]]:
        """Intervals of the configured metrics at level ``confidence``.

        Student t over rows for the row means (brier, log_loss), as for ranking metrics,
        kept inside the metric's range;
        one shared percentile bootstrap of the rows (``n_resamples``) for ece, mce,
        normalized_entropy and oe_ratio; Wald intervals for the slope and intercept.
        A statistic undefined on some resample (e.g. no positives) gets no interval.
        """
        s, confidence = self.spec, self.confidence
        nan = (float("nan"), float("nan"))
        out: dict[str, tuple[float, float]] = {}
        for metric in per_row.columns:
            out[metric] = mean_confidence_interval(per_row[metric].to_numpy(), confidence=confidence,
                                                   bounds=value_range(metric))
        boot = list(stats)

        def run(names: list[str]) -> list[Any]:
            return bootstrap_statistics([stats[m] for m in names], confidence=confidence,
                                        n_resamples=s.n_resamples, seed=self.seed)
        try:
            out.update({m: (inf.ci_low, inf.ci_high) for m, inf in zip(boot, run(boot))})
        except DataValidationError:  # isolate the undefined statistic (same seed: same resamples)
            for m in boot:
                try:
                    inf = run([m])[0]
                    out[m] = (inf.ci_low, inf.ci_high)
                except DataValidationError:
                    out[m] = nan
        z = float(special.ndtri(0.5 + confidence / 2))
        for metric in ("calibration_slope", "calibration_intercept"):
            est, se = summary[metric], summary[f"{metric}_se"]
            out[metric] = (est - z * se, est + z * se)
        return out

    @classmethod
    def restore_statistics(cls, inputs: pd.DataFrame, block: dict[str, Any]) -> dict[str, Statistic]:
        """ECE, MCE, normalised entropy and O/E of one model as sum statistics of its rows,
        with the run's binning (``block`` is the run's ``evaluate.calibration``)."""
        ratio = ratio_metrics(block.get("metrics") or ["ece", "mce", "normalized_entropy", "oe_ratio"])
        if not ratio:
            return {}
        return calibration_statistics(inputs[LABEL].to_numpy(), inputs[PROBA].to_numpy(), ratio,
                                      n_bins=block.get("n_bins", 15), strategy=block.get("strategy", "uniform"),
                                      eps=block.get("eps", 1e-15))

    def finish(self, outputs: dict[str, ModelOutput], skipped: list[str]) -> FamilyResult:
        """Extras for ``results.json["calibration"]`` and the reliability / segment plots."""
        result = super().finish(outputs, skipped)
        result.extra = {
            "n_rows": len(self.clicks), "base_rate": float(self.clicks["label"].mean()),
            "skipped_models": skipped,
            "models": {m: {**o.info, "reliability": self.curves[m].to_dict(orient="list"),
                           **({"by_segment": self.by_segment[m].reset_index().to_dict(orient="list")}
                              if m in self.by_segment else {})}
                       for m, o in outputs.items()},
        }
        if self.curves:
            result.figures = self._figures(result.extra)
        for output in outputs.values():
            output.info = {}  # the metrics live in the family's section, not per model
        return result

    def _figures(self, result: dict[str, Any]) -> dict[str, FigureDraw]:
        """``reliability`` (all models on one diagram) and ``calibration_by_segment``."""
        from harness.evaluate.plots import plot_calibration_by_segment, plot_reliability

        figures: dict[str, FigureDraw] = {"reliability": partial(
            plot_reliability, self.curves, metrics={m: {"ece": s["metrics"]["ece"]} for m, s in result["models"].items()})}
        if self.by_segment:
            figures["calibration_by_segment"] = partial(
                plot_calibration_by_segment, self.by_segment,
                title=f"Calibration by {self.spec.segment_by.replace('_', ' ')}")
        return figures
