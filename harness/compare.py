"""Candidate vs baseline on the same units: paired deltas with intervals, p-values, MDE.

Mean-type metrics (one value per unit, the metric is their mean) come as per-unit
tables. Ratio-type metrics (SNIPS, ECE, ...: not a mean of per-unit values) come as
:class:`~harness.metrics.stats.SumStatistic` objects per model and metric; they get
percentile or BCa bootstrap intervals from the same resampling engine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Mapping

import numpy as np
import pandas as pd

from harness.errors import ConfigError, DataValidationError
from harness.metrics.stats import (BOOTSTRAP_METHODS, METHODS, DeltaInference, Estimand, SumStatistic,
                                   WeightedStatistic, bootstrap_estimands, bootstrap_weighted,
                                   infer_paired_means, minimum_detectable_effect,
                                   paired_weighted_difference)

# One-sided level and power at which every comparison reports its minimum detectable effect.
MDE_ALPHA = 0.05
MDE_POWER = 0.8


@dataclass
class MetricComparison:
    """One metric, one candidate vs the baseline.

    ``delta`` = candidate - baseline, ``relative_delta`` = candidate / baseline - 1 (None
    when the baseline value is 0), each with its own interval; ``mde`` and
    ``relative_mde`` are the effects a one-sided test at 5% detects with 80% power at
    this sample size; ``note`` says why the comparison cannot settle the gate (e.g.
    a low effective sample size), if it cannot.
    """

    metric: str
    baseline: str
    candidate: str
    baseline_value: float
    candidate_value: float
    delta: float
    relative_delta: float | None
    ci_low: float
    ci_high: float
    relative_ci_low: float | None
    relative_ci_high: float | None
    p_two_sided: float
    std_error: float
    n_units: int
    mde: float
    relative_mde: float | None
    method: str
    confidence: float
    kind: str = "mean"
    note: str | None = None
    inference: DeltaInference | None = field(default=None, repr=False)
    relative_inference: DeltaInference | None = field(default=None, repr=False)

    def to_row(self) -> dict:
        row = {k: v for k, v in asdict(self).items() if k not in ("inference", "relative_inference")}
        return row

    def __post_init__(self) -> None:
        if self.inference is None:
            raise DataValidationError(f"comparison of {self.metric!r}: needs an inference")


def _inference_fields(inf: DeltaInference, rel: DeltaInference | None) -> dict:
    return dict(delta=inf.estimate, ci_low=inf.ci_low, ci_high=inf.ci_high,
                relative_delta=None if rel is None else rel.estimate,
                relative_ci_low=None if rel is None else rel.ci_low,
                relative_ci_high=None if rel is None else rel.ci_high,
                p_two_sided=inf.p_two_sided(0.0), std_error=inf.std_error, n_units=inf.n_units,
                mde=minimum_detectable_effect(inf.std_error, alpha=MDE_ALPHA, power=MDE_POWER),
                relative_mde=None if rel is None else minimum_detectable_effect(
                    rel.std_error, alpha=MDE_ALPHA, power=MDE_POWER),
                inference=inf, relative_inference=rel)


def paired_frame(per_unit: Mapping[str, pd.DataFrame], baseline: str, candidate: str,
                 metrics: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Align two models' per-unit tables on their units; refuse any mismatch."""
    for model in (baseline, candidate):
        if model not in per_unit:
            raise ConfigError(f"compare: no per-unit values for model {model!r}; have {sorted(per_unit)}")
        missing = [m for m in metrics if m not in per_unit[model].columns]
        if missing:
            raise DataValidationError(f"compare: model {model!r} has no per-unit values for "
                                      f"{len(missing)} metric(s), e.g. {missing[:3]}")
    base, cand = per_unit[baseline][metrics], per_unit[candidate][metrics]
    for model, table in ((baseline, base), (candidate, cand)):
        dup = table.index[table.index.duplicated()]
        if len(dup):
            raise DataValidationError(f"compare: model {model!r} has {len(dup)} duplicated unit ids, "
                                      f"e.g. {list(dup[:3])}")
    if not base.index.equals(cand.index):
        only_base = base.index.difference(cand.index)
        only_cand = cand.index.difference(base.index)
        if len(only_base) or len(only_cand):
            example = list(only_base[:2]) + list(only_cand[:2])
            raise DataValidationError(
                f"cannot pair {candidate!r} with {baseline!r}: {len(only_base)} units only in the "
                f"baseline, {len(only_cand)} only in the candidate (e.g. {example})")
        cand = cand.loc[base.index]
    return base, cand


def _compare_statistics(base_stats: Mapping[str, SumStatistic], cand_stats: Mapping[str, SumStatistic],
                        names: list[str], *, method: str, confidence: float, n_resamples: int, seed: int,
                        weights: str) -> list[tuple[float, float, DeltaInference, DeltaInference | None, str]]:
    """Ratio-type metrics: delta and relative delta from one shared bootstrap of the units."""
    for name in names:
        if not isinstance(base_stats[name], SumStatistic):
            raise DataValidationError(f"compare: metric {name!r} of the baseline is a "
                                      f"{type(base_stats[name]).__name__}, of the candidate a SumStatistic; "
                                      "both sides need the same kind of statistic")
    cols, ests, values = [], [], []
    offset = 0
    n_units = {cand_stats[m].n_units for m in names} | {base_stats[m].n_units for m in names}
    if len(n_units) != 1:
        raise DataValidationError(f"ratio-type metrics {names}: cover different unit counts {sorted(n_units)}")
    for name in names:
        b, c = base_stats[name], cand_stats[name]
        kc, kb = c.parts.shape[1], b.parts.shape[1]
        cs, bs = np.arange(offset, offset + kc), np.arange(offset + kc, offset + kc + kb)
        offset += kc + kb
        cols += [c.parts, b.parts]
        bval, cval = b.value(), c.value()
        values.append((bval, cval))

        def delta(s: np.ndarray, t: np.ndarray, c=c, b=b, kc=kc) -> np.ndarray:
            return c.combine(s[..., :kc], t) - b.combine(s[..., kc:], t)

        def rel(s: np.ndarray, t: np.ndarray, c=c, b=b, kc=kc) -> np.ndarray:
            return c.combine(s[..., :kc], t) / b.combine(s[..., kc:], t) - 1.0

        both = np.concatenate([cs, bs])
        ests.append(Estimand(both, delta))
        ests.append(Estimand(both, rel) if bval != 0 else None)
    parts = np.hstack(cols)
    used = [e for e in ests if e is not None]
    infs = iter(bootstrap_estimands(parts, used, method=method, confidence=confidence,
                                    n_resamples=n_resamples, seed=seed, weights=weights))
    out = []
    for i, (bval, cval) in enumerate(values):
        absolute = next(infs)
        relative = next(infs) if ests[2 * i + 1] is not None else None
        out.append((bval, cval, absolute, relative, method))
    return out


def _compare_weighted(base: WeightedStatistic, cand: WeightedStatistic, name: str, *, method: str,
                      confidence: float, n_resamples: int, seed: int,
                      weights: str) -> tuple[float, float, DeltaInference, DeltaInference | None, str]:
    """A general weighted statistic (AUC, calibration slope): delta and relative delta."""
    for side, stat in (("baseline", base), ("candidate", cand)):
        if not isinstance(stat, WeightedStatistic):
            raise DataValidationError(f"compare: metric {name!r} of the {side} is a {type(stat).__name__}; "
                                      "both sides need the same kind of statistic")
    bval, cval = base.value(), cand.value()
    stats_ = [paired_weighted_difference(cand, base)]
    if bval != 0:
        stats_.append(paired_weighted_difference(cand, base, relative=True))
    infs = bootstrap_weighted(stats_, method=method, confidence=confidence, n_resamples=n_resamples,
                              seed=seed, weights=weights)
    return bval, cval, infs[0], infs[1] if bval != 0 else None, method


def compare_models(
    per_unit: Mapping[str, pd.DataFrame],
    *,
    baseline: str,
    candidates: list[str],
    metrics: list[str],
    method: str = "bootstrap",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    weights: str = "auto",
    statistics: Mapping[str, Mapping[str, SumStatistic | WeightedStatistic]] | None = None,
    notes: Mapping[tuple[str, str], str] | None = None,
) -> list[MetricComparison]:
    """Paired comparison of each candidate with the baseline on every metric.

    Parameters
    ----------
    per_unit : mapping model -> DataFrame
        Indexed by unit id, one column per mean-type metric.
    metrics : list of str
        Metrics to compare: columns of ``per_unit`` or keys of ``statistics``.
    method : {"bootstrap", "bca", "t_test", "randomization"}
        Percentile or BCa paired bootstrap, paired t-test (relative delta by the delta
        method), or paired sign-flip randomisation test (interval by test inversion).
    weights : {"auto", "multinomial", "poisson"}
        Bootstrap weights (see :func:`harness.metrics.stats.bootstrap_sums`).
    statistics : mapping model -> metric -> SumStatistic or WeightedStatistic, optional
        Ratio-type metrics (``SumStatistic``: functions of column sums, such as SNIPS
        and ECE) and other statistics of weighted units (``WeightedStatistic``: AUC,
        calibration slope). The candidate's and the baseline's statistic of a metric
        must have one row per unit, the same units in the same order (e.g. the logged
        rounds of an off-policy data set). Always bootstrapped: with ``method``
        ``t_test`` or ``randomization`` they get BCa, and the row's ``method`` says so.
    notes : mapping (candidate, metric) -> str, optional
        Why a comparison cannot settle the gate (e.g. ``"effective sample size 40 <
        100"``); the gate then reports that criterion INCONCLUSIVE.

    Notes
    -----
    All metrics of a candidate share one resample of the units (seed ``seed + i`` for
    the i-th candidate), which keeps their correlation.
    """
    if method not in METHODS:
        raise ConfigError(f"compare.method: unknown value {method!r}; use one of {', '.join(METHODS)}")
    if not candidates:
        raise ConfigError("compare.candidates: need at least one candidate")
    if baseline in candidates:
        raise ConfigError(f"compare: the baseline {baseline!r} cannot also be a candidate")
    statistics = statistics or {}
    notes = notes or {}
    rows: list[MetricComparison] = []
    for c_index, candidate in enumerate(candidates):
        stat_names = [m for m in metrics if m in statistics.get(candidate, {})]
        mean_names = [m for m in metrics if m not in stat_names]
        results: dict[str, tuple] = {}
        if mean_names:
            base, cand = paired_frame(per_unit, baseline, candidate, mean_names)
            absolute, relative = infer_paired_means(
                cand.to_numpy(dtype=np.float64), base.to_numpy(dtype=np.float64), method=method,
                confidence=confidence, n_resamples=n_resamples, seed=seed + c_index, weights=weights)
            for j, name in enumerate(mean_names):
                results[name] = (float(base[name].mean()), float(cand[name].mean()), absolute[j],
                                 relative[j], method, "mean")
        if stat_names:
            missing = [m for m in stat_names if m not in statistics.get(baseline, {})]
            if missing:
                raise DataValidationError(f"compare: ratio-type metric(s) {missing} given for {candidate!r} "
                                          f"but not for the baseline {baseline!r}")
            used = method if method in BOOTSTRAP_METHODS else "bca"
            kwargs = dict(method=used, confidence=confidence, n_resamples=n_resamples, seed=seed + c_index,
                          weights=weights)
            sums = [m for m in stat_names if isinstance(statistics[candidate][m], SumStatistic)]
            general = [m for m in stat_names if m not in sums]
            if sums:
                for name, res in zip(sums, _compare_statistics(statistics[baseline], statistics[candidate],
                                                               sums, **kwargs)):
                    results[name] = (*res, "statistic")
            for name in general:
                results[name] = (*_compare_weighted(statistics[baseline][name], statistics[candidate][name],
                                                    name, **kwargs), "statistic")
        for name in metrics:
            b_val, c_val, inf, rel, used_method, kind = results[name]
            rows.append(MetricComparison(
                metric=name, baseline=baseline, candidate=candidate, baseline_value=b_val,
                candidate_value=c_val, method=used_method, confidence=confidence, kind=kind,
                note=notes.get((candidate, name)), **_inference_fields(inf, rel)))
    return rows



# --------------------------------------------------------------------------- results folders


@dataclass
class RunSide:
    """One side of ``harness compare``: a results folder (or MLflow run) and one model in it."""

    source: str
    model: str
    table: pd.DataFrame  # per-unit values, indexed by unit id, one column per metric
    data: dict


def _download_run(ref: str, tracking_uri: str | None) -> str:
    """Fetch results.json and per_unit.parquet of an MLflow (parent) run into a temp folder."""
    import shutil
    import tempfile

    from harness.errors import ResultsError, TrackingError
    from harness.results import PER_UNIT, RESULTS_JSON

    run_id = ref.removeprefix("runs:/").strip("/")
    try:
        import mlflow.artifacts
    except ImportError as exc:  # pragma: no cover - mlflow is a dependency
        raise TrackingError(f"cannot read MLflow run {ref}: {exc}") from None
    dst = tempfile.mkdtemp(prefix="harness-compare-")
    for name in (RESULTS_JSON, PER_UNIT):
        try:
            mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=name, dst_path=dst,
                                                tracking_uri=tracking_uri)
        except Exception as exc:  # mlflow raises its own exception types
            shutil.rmtree(dst, ignore_errors=True)
            raise ResultsError(f"{ref}: cannot download artifact {name!r} of MLflow run {run_id} "
                               f"({type(exc).__name__}: {exc}); pass the harness parent run") from None
    return dst


def load_side(ref: str, *, model: str | None, role: str, tracking_uri: str | None = None) -> RunSide:
    """Read the per-unit values of ``model`` from a results folder or an MLflow run id.

    Without ``model``: the folder's only model, or (for the candidate side) the single
    candidate its config compared.
    """
    import re
    import shutil
    from pathlib import Path

    from harness.errors import ResultsError
    from harness.results import PER_UNIT, read_results_json

    path = Path(ref)
    downloaded = not path.exists() and (ref.startswith("runs:/") or re.fullmatch(r"[0-9a-f]{32}", ref))
    if downloaded:
        path = Path(_download_run(ref, tracking_uri))
    if not path.is_dir():
        raise ResultsError(f"{role}: {ref!r} is neither a results folder nor an MLflow run id")
    try:
        data = read_results_json(path)
        if not (path / PER_UNIT).is_file():
            raise ResultsError(f"{role}: no {PER_UNIT} in {ref}")
        long = pd.read_parquet(path / PER_UNIT)
    finally:
        if downloaded:
            shutil.rmtree(path, ignore_errors=True)
    missing = {"unit_id", "model", "metric", "value"} - set(long.columns)
    if missing:
        raise ResultsError(f"{role}: {ref}/{PER_UNIT} lacks column(s) {sorted(missing)}")
    models = list(dict.fromkeys(long["model"].astype(str)))
    if model is None:
        compared = (data.get("config") or {}).get("compare") or {}
        if len(models) == 1:
            model = models[0]
        elif role == "candidate" and len(compared.get("candidates", [])) == 1:
            model = compared["candidates"][0]
        else:
            raise ConfigError(f"{role}: {ref} holds {len(models)} models {models}; name one with "
                              f"--{role}-model")
    if model not in models:
        raise ConfigError(f"--{role}-model: {model!r} is not in {ref}; it holds {models}")
    rows = long[long["model"].astype(str) == model]
    dup = rows.duplicated(["unit_id", "metric"])
    if dup.any():
        raise DataValidationError(f"{role}: {int(dup.sum())} duplicated (unit_id, metric) rows for {model!r} "
                                  f"in {ref}, e.g. {rows.loc[dup, ['unit_id', 'metric']].iloc[0].tolist()}")
    table = rows.pivot(index="unit_id", columns="metric", values="value")
    table.index = table.index.astype(str)
    table.columns.name = None
    return RunSide(ref, model, table[list(dict.fromkeys(rows["metric"]))], data)


def load_gate_file(path: str) -> list:
    """Gate criteria from a YAML file: a list of criteria, or a mapping with a ``gate`` key."""
    from harness.config import read_yaml

    raw = read_yaml(path, label="--gate")
    if isinstance(raw, dict):
        raw = raw.get("gate")
    if not isinstance(raw, list):
        raise ConfigError(f"--gate {path}: expected a list of criteria or a mapping with a 'gate' list")
    return load_criteria(raw, source=f"--gate {path}")


def compare_runs(
    baseline_ref: str,
    candidate_ref: str,
    *,
    baseline_model: str | None = None,
    candidate_model: str | None = None,
    gate: list | None = None,
    metrics: list[str] | None = None,
    method: str | None = None,
    n_resamples: int | None = None,
    confidence: float | None = None,
    correction: str | None = None,
    seed: int | None = None,
    tracking_uri: str | None = None,
):
    """``harness compare``: pair two runs' per-unit values by unit id and metric, compare
    and gate them. Unset options come from the candidate run's config (``compare``,
    ``gate``, ``seed``), then the defaults. Returns ``(EvalResult, Verdict)``."""
    from datetime import datetime, timezone

    from harness.gate import comparison_rows, decide
    from harness.results import EvalResult, new_run_id, per_unit_long
    from harness.runner import metric_rows

    base = load_side(baseline_ref, model=baseline_model, role="baseline", tracking_uri=tracking_uri)
    cand = load_side(candidate_ref, model=candidate_model, role="candidate", tracking_uri=tracking_uri)
    fps = [(s.data.get("dataset") or {}).get("fingerprint") for s in (base, cand)]
    if fps[0] != fps[1]:
        raise DataValidationError(f"compare: the runs evaluated different data (dataset fingerprint "
                                  f"{fps[0]!r} vs {fps[1]!r}); unit ids would not name the same units")
    config = cand.data.get("config") or {}
    spec = config.get("compare") or {}
    criteria = gate if gate is not None else load_criteria(config.get("gate") or [])
    common = [m for m in cand.table.columns if m in base.table.columns and m not in CALIBRATION_INPUTS]
    statistics = _calibration_statistics(base, cand, config)
    wanted = list(metrics or common) + [c.metric for c in criteria]
    ratio = [m for m in dict.fromkeys(wanted) if m not in common and m in statistics.get(cand.model, {})]
    chosen = [m for m in (metrics or common) if m not in ratio]
    absent = [m for m in wanted if m not in common and m not in ratio]
    if absent:
        raise ConfigError(f"compare: metric(s) {sorted(set(absent))} are not in both runs; common: {common}")
    b_name, c_name = base.model, cand.model
    if b_name == c_name:
        b_name, c_name = f"{b_name} (baseline)", f"{c_name} (candidate)"
    method = method or spec.get("method", "bootstrap")
    confidence = confidence or spec.get("confidence", 0.95)
    correction = correction or spec.get("correction", "holm")
    seed = config.get("seed", 0) if seed is None else seed
    n_resamples = n_resamples or spec.get("n_resamples", 2000)
    options = dict(baseline=b_name, candidates=[c_name], method=method, confidence=confidence,
                   n_resamples=n_resamples, seed=seed)
    comps, families = [], []
    for names in _unit_families(base.table, chosen):  # queries, click:<row>, log:<row> apart
        family = {b_name: _family_table(base.table, names), c_name: _family_table(cand.table, names)}
        families.append(family)
        comps += compare_models(family, metrics=names, **options)
    if ratio:  # ece, mce, ... rebuilt from each click row's label and p
        comps += compare_models({}, metrics=ratio, **options,
                                statistics={b_name: statistics[base.model], c_name: statistics[cand.model]})
    for comp in comps:  # an off-policy estimate with too little overlap never passes, offline either
        low = [side.model for side in (base, cand) if _low_ess(side, comp.metric)]
        if low:
            comp.note = f"low effective sample size of {low} in the source runs: too little overlap with the logs"
    verdict = decide(criteria, comps, correction=correction)
    result = EvalResult(
        run_id=new_run_id(), created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config={"name": f"compare {b_name} vs {c_name}",
                "compare": {"baseline": b_name, "candidates": [c_name], "method": method,
                            "n_resamples": n_resamples,
                            "confidence": confidence, "correction": correction},
                "gate": [c.model_dump(mode="json") for c in criteria], "seed": seed,
                "sources": {"baseline": base.source, "candidate": cand.source}},
        config_hash="", dataset=dict(cand.data.get("dataset") or {}),
        metrics=[row for f in families for row in metric_rows(f, confidence)],
        per_unit=pd.concat([per_unit_long(f) for f in families], ignore_index=True),
        comparison=comparison_rows(comps, verdict), verdict=verdict.to_dict())
    return result, verdict


CALIBRATION_INPUTS = ("calibration:label", "calibration:p")


def _calibration_statistics(base: RunSide, cand: RunSide, config: dict) -> dict[str, dict[str, SumStatistic]]:
    """Ratio-type calibration statistics of both sides from their stored labels and p,
    with the candidate run's binning; empty when either side lacks them."""
    from harness.metrics.calibration_stats import calibration_statistics

    if not all(c in side.table.columns for side in (base, cand) for c in CALIBRATION_INPUTS):
        return {}
    cal = (config.get("evaluate") or {}).get("calibration") or {}
    ratio = ["ece", "mce", "normalized_entropy", "oe_ratio"]
    out = {}
    for side in (base, cand):
        rows = side.table[list(CALIBRATION_INPUTS)].dropna()
        out[side.model] = calibration_statistics(rows[CALIBRATION_INPUTS[0]].to_numpy(),
                                                 rows[CALIBRATION_INPUTS[1]].to_numpy(), ratio,
                                                 n_bins=cal.get("n_bins", 15), strategy=cal.get("strategy", "uniform"),
                                                 eps=cal.get("eps", 1e-15))
    return out


def _low_ess(side: RunSide, metric: str) -> bool:
    """Whether the source run flagged this off-policy estimate of the model as low-ESS."""
    rows = ((side.data.get("off_policy") or {}).get("estimates") or {}).get(side.model, [])
    return any(r.get("estimator") == metric and r.get("low_ess") for r in rows)


def _unit_families(table: pd.DataFrame, metrics: list[str]) -> list[list[str]]:
    """Metrics grouped by the kind of unit they are measured on, read from the unit-id
    prefix of their rows (``click:``, ``log:``, or none for queries)."""
    groups: dict[str, list[str]] = {}
    for metric in metrics:
        units = table[metric].dropna().index
        prefix = str(units[0]).split(":", 1)[0] + ":" if len(units) and ":" in str(units[0]) else ""
        groups.setdefault(prefix, []).append(metric)
    return list(groups.values())


def _family_table(table: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The units on which all of ``metrics`` are measured."""
    sub = table[metrics]
    return sub[sub.notna().all(axis=1)]


def load_criteria(raw: list, *, source: str = "the candidate run's config") -> list:
    """Validate gate criteria given as plain mappings; errors name each bad key."""
    from pydantic import TypeAdapter, ValidationError

    from harness.config import GateCriterion

    try:
        return TypeAdapter(list[GateCriterion]).validate_python(raw)
    except ValidationError as exc:
        lines = [f"  gate[{'.'.join(str(p) for p in e['loc'])}]: {e['msg'].removeprefix('Value error, ')}"
                 for e in exc.errors()]
        raise ConfigError(f"{source}: invalid gate criteria:\n" + "\n".join(lines)) from None
