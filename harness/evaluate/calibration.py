"""Calibration inside a run: click log -> each PointwiseModel's p -> metrics, per-row
units, reliability plot.

Calibration units are rows of the click log (impressions), not queries, so their
per-unit values live in their own table per model, indexed ``click:<row>``, beside the
per-query ranking table. Both end up in ``per_unit.parquet`` (the prefix keeps the unit
families apart), and comparisons pair a candidate with the baseline row by row on the
same click log. Models without ``predict_proba`` are skipped and listed.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pandas as pd

from harness.types import PointwiseModel, check_probabilities
from harness.errors import AdapterError, HarnessError

UNIT_PREFIX = "click:"
# per-row inputs stored beside the metrics (see with_units)
LABEL, PROBA = "calibration:label", "calibration:p"


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def popularity_buckets(train: pd.DataFrame, items: np.ndarray, n_items: int, n_buckets: int = 5) -> np.ndarray:
    """Item popularity bucket of each row: quantile bucket of the item's training count,
    ``"pop1"`` (least popular) .. ``"popN"``; ties share a bucket (by rank, so always N)."""
    counts = np.bincount(train["item_id"].to_numpy(), minlength=n_items)
    ranks = pd.Series(counts).rank(method="first").to_numpy()
    bucket = np.minimum((ranks - 1) * n_buckets // n_items, n_buckets - 1).astype(np.int64)
    return np.char.add("pop", (bucket[items] + 1).astype(str))


class CalibrationRun:
    """Collects calibration results of the models of one run (called once per model).

    With ``spec=None`` (no ``evaluate.calibration`` section) it is inert: calling it
    does nothing and every output is empty, so the runner needs no branches.
    """

    def __init__(self, spec: Any, dataset: Any, seed: int) -> None:
        from harness.datasets.synthetic_clicks import make_click_log

        self.spec = spec
        self.seed = seed
        self.clicks = pd.DataFrame({"query_id": [], "item_id": [], "label": []})
        self.segments: np.ndarray | None = None
        if spec is not None:
            self.clicks = make_click_log(dataset, n_per_user=spec.n_per_user, scale=spec.scale,
                                         base_rate=spec.base_rate, seed=seed + 1)
            if spec.segment_by == "item_popularity":
                self.segments = popularity_buckets(dataset.train, self.clicks["item_id"].to_numpy(),
                                                   dataset.n_items)
        self.unit_ids = UNIT_PREFIX + pd.RangeIndex(len(self.clicks)).astype(str)
        self.per_row: dict[str, pd.DataFrame] = {}
        self.proba: dict[str, np.ndarray] = {}
        self.summary: dict[str, dict[str, float]] = {}
        self.intervals: dict[str, dict[str, tuple[float, float]]] = {}
        self.curves: dict[str, pd.DataFrame] = {}
        self.by_segment: dict[str, pd.DataFrame] = {}
        self.skipped: list[str] = []

    def __call__(self, name: str, model: Any) -> None:
        """Score the click log with ``model`` and compute every calibration output."""
        from harness.metrics import calibration as cal

        if self.spec is None:
            return
        if not isinstance(model, PointwiseModel):
            self.skipped.append(name)
            _say(f"calibration: {name} has no predict_proba(); skipped")
            return
        pairs = self.clicks[["query_id", "item_id"]]
        try:
            p = model.predict_proba(pairs)
        except HarnessError:
            raise
        except Exception as exc:
            raise AdapterError(f"model {name!r} raised {type(exc).__name__} in predict_proba(): {exc}") from exc
        p = check_probabilities(p, len(pairs), source=f"model {name!r}")
        y = self.clicks["label"].to_numpy()
        s = self.spec
        self.proba[name] = p
        self.summary[name] = cal.calibration_summary(y, p, n_bins=s.n_bins, strategy=s.strategy, eps=s.eps)
        self.per_row[name] = pd.DataFrame({"brier": cal.brier_score_per_row(y, p),
                                           "log_loss": cal.log_loss_per_row(y, p, eps=s.eps)},
                                          index=pd.Index(self.unit_ids, name="unit_id"))
        self.curves[name] = cal.reliability_curve(y, p, n_bins=s.n_bins, strategy=s.strategy)
        if self.segments is not None:
            self.by_segment[name] = cal.calibration_by_segment(y, p, self.segments, n_bins=s.n_bins,
                                                               strategy=s.strategy, eps=s.eps)

    def _intervals(self, name: str, confidence: float) -> dict[str, tuple[float, float]]:
        """Intervals of the configured metrics at level ``confidence``.

        Student t over rows for the row means (brier, log_loss), as for ranking metrics;
        one shared percentile bootstrap of the rows (``n_resamples``) for ece, mce,
        normalized_entropy and oe_ratio; Wald intervals for the slope and intercept.
        A statistic undefined on some resample (e.g. no positives) gets no interval.
        """
        from scipy import stats as sps

        from harness.errors import DataValidationError
        from harness.metrics.calibration_stats import calibration_statistics
        from harness.metrics.stats import bootstrap_statistics, mean_confidence_interval

        s = self.spec
        y, p = self.clicks["label"].to_numpy(), self.proba[name]
        nan = (float("nan"), float("nan"))
        out: dict[str, tuple[float, float]] = {}
        for metric in self.per_row_metrics():
            out[metric] = mean_confidence_interval(self.per_row[name][metric].to_numpy(), confidence=confidence)
        boot = [m for m in self.comparable_metrics() if m not in self.per_row_metrics()]
        stats = calibration_statistics(y, p, boot, n_bins=s.n_bins, strategy=s.strategy, eps=s.eps)

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
        z = float(sps.norm.ppf(0.5 + confidence / 2))
        for metric in ("calibration_slope", "calibration_intercept"):
            est, se = self.summary[name][metric], self.summary[name][f"{metric}_se"]
            out[metric] = (est - z * se, est + z * se)
        return out

    def metric_rows(self, confidence: float) -> list[dict[str, Any]]:
        """Rows ``{model, metric, value, ci_low, ci_high, n_units}`` of the configured metrics,
        with the intervals of :meth:`_intervals` (none for the Brier decomposition terms)."""
        rows = []
        for model, summary in self.summary.items():
            self.intervals[model] = self._intervals(model, confidence)
            for metric in self.spec.metrics:
                low, high = self.intervals[model].get(metric, (float("nan"), float("nan")))
                rows.append({"model": model, "metric": metric, "value": summary[metric],
                             "ci_low": low, "ci_high": high, "n_units": len(self.clicks)})
        return rows

    def per_row_metrics(self) -> list[str]:
        """Configured metrics that are row means, so paired comparisons apply."""
        from harness.metrics.calibration import PER_ROW_METRICS

        return [m for m in self.spec.metrics if m in PER_ROW_METRICS] if self.spec else []

    def comparable_metrics(self) -> list[str]:
        """Configured metrics with a paired comparison: the row means and the other sum
        statistics (``harness.metrics.calibration_stats.STATISTIC_METRICS``)."""
        from harness.metrics.calibration_stats import STATISTIC_METRICS

        return [m for m in self.spec.metrics if m in STATISTIC_METRICS] if self.spec else []

    def with_units(self, per_unit_long: pd.DataFrame) -> pd.DataFrame:
        """``per_unit_long`` plus the per-row units ``click:<row>`` of the per-row metrics."""
        from harness.results.folder import per_unit_long as to_long

        if not self.per_row:
            return per_unit_long
        keep = self.per_row_metrics()
        # each row's label and p too, so that `harness compare` can rebuild the ratio-type
        # statistics (ece, mce, ...) of a stored run; they are inputs, never compared
        tables = {m: t[keep].assign(**{LABEL: self.clicks["label"].to_numpy(), PROBA: self.proba[m]})
                  for m, t in self.per_row.items()}
        return pd.concat([per_unit_long, to_long(tables)], ignore_index=True)

    def compare(self, compare_spec: Any, seed: int) -> list[Any]:
        """Paired comparisons row by row (same click log), when baseline and candidates have p.

        Brier and log loss compare their per-row values; ece, mce, normalized_entropy
        and oe_ratio are bootstrapped as sum statistics (bin edges of each model fixed
        at its full-sample edges), all from one shared resample of the rows per candidate.
        """
        from harness.inference.paired import compare_models
        from harness.metrics.calibration_stats import calibration_statistics

        names = [compare_spec.baseline, *compare_spec.candidates]
        metrics = self.comparable_metrics()
        if not metrics or any(n not in self.per_row for n in names):
            return []
        ratio_type = [m for m in metrics if m not in self.per_row_metrics()]
        y = self.clicks["label"].to_numpy()
        statistics = {n: calibration_statistics(y, self.proba[n], ratio_type, n_bins=self.spec.n_bins,
                                                strategy=self.spec.strategy, eps=self.spec.eps)
                      for n in names} if ratio_type else None
        return compare_models(self.per_row, baseline=compare_spec.baseline,
                              candidates=list(compare_spec.candidates), metrics=metrics,
                              method=compare_spec.method, confidence=compare_spec.confidence,
                              n_resamples=compare_spec.n_resamples, seed=seed, statistics=statistics)

    def extra(self) -> dict[str, Any]:
        """``{"calibration": ...}`` for results.json (all metrics, curves, segments), or {}."""
        return {"calibration": self.info()} if self.spec is not None else {}

    def info(self) -> dict[str, Any]:
        """JSON-ready summary: click log size, all metrics, ECE interval, curves, segments."""
        return {
            "n_rows": len(self.clicks), "base_rate": float(self.clicks["label"].mean()),
            "skipped_models": self.skipped,
            "models": {m: {"metrics": self.summary[m],
                           "intervals": {k: list(v) for k, v in self.intervals.get(m, {}).items()},
                           "reliability": self.curves[m].to_dict(orient="list"),
                           **({"by_segment": self.by_segment[m].reset_index().to_dict(orient="list")}
                              if m in self.by_segment else {})}
                       for m in self.summary},
        }

    def figures(self) -> dict[str, Any]:
        """``reliability`` (all models on one diagram) and ``calibration_by_segment``
        (ECE and O/E per segment) when any model had p."""
        if not self.curves:
            return {}
        import matplotlib.pyplot as plt

        from harness.results.plots import plot_calibration_by_segment, plot_reliability

        figures = {"reliability": plot_reliability(
            self.curves, metrics={m: {"ece": s["ece"]} for m, s in self.summary.items()})}
        if self.by_segment:
            figures["calibration_by_segment"] = plot_calibration_by_segment(
                self.by_segment, title=f"Calibration by {self.spec.segment_by.replace('_', ' ')}")
        for fig in figures.values():  # saved later by write_results; nothing stays open
            plt.close(fig)
        return figures
