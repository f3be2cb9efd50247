"""``harness compare``: two results folders (or MLflow runs) compared and gated offline."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.errors import ConfigError, DataValidationError
from harness.inference.paired import compare_models
from harness.metrics.stats import SumStatistic
from harness.spec.config import load_criteria



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
    from harness.results.folder import PER_UNIT, RESULTS_JSON

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
    from harness.results.folder import PER_UNIT, read_results_json

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

    from harness.inference.gate import comparison_rows, decide
    from harness.results.folder import EvalResult, new_run_id, per_unit_long
    from harness.apps.run import metric_rows

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
