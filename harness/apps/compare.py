"""``harness compare``: two results folders (or MLflow runs) compared and gated offline.

Each side is one model of a stored run. Metrics are paired family by family (a
family's units are queries, click rows or logged rows: ``results.json["families"]``),
ratio-type statistics are rebuilt from the stored per-unit inputs by the family that
wrote them, and caps stored with a run (too little overlap) still keep a criterion
from passing. Folders of every readable schema version work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pandas as pd

from harness.errors import ConfigError, DataValidationError, HarnessError
from harness.evaluate import FamilyResult, ModelOutput, family_class, mean_values
from harness.evaluate.family import Statistic
from harness.inference.gate import Verdict, comparison_rows, decide, invalidate, resample_count
from harness.inference.paired import MetricComparison, compare_family
from harness.results import assemble
from harness.results.folder import EvalResult, StoredRun, new_run_id, read_results_folder, wide_table
from harness.spec.config import GateCriterion, load_criteria


@dataclass
class RunSide:
    """One side of ``harness compare``: a stored run and one model in it."""

    source: str
    model: str
    stored: StoredRun

    @property
    def data(self) -> dict[str, Any]:
        return self.stored.data

    def families(self) -> dict[str, dict[str, Any]]:
        """``results.json["families"]``; without one, every metric of each family is compared."""
        stored = self.data.get("families")
        if stored is not None:
            return stored
        per_unit = self.stored.per_unit
        return {family: {"compared": list(dict.fromkeys(rows["metric"]))}
                for family, rows in per_unit.groupby("family", sort=False)}

    def table(self, family: str) -> pd.DataFrame:
        """This model's per-unit values in ``family``: unit ids x metrics."""
        rows = self.stored.per_unit
        return wide_table(rows[(rows["model"] == self.model) & (rows["family"] == family)])

    def statistics(self, family: str) -> dict[str, Statistic]:
        """Ratio-type statistics rebuilt from the stored inputs by the family that wrote them."""
        rows = self.stored.inputs
        rows = rows[(rows["model"] == self.model) & (rows["family"] == family)]
        if not len(rows):
            return {}
        try:
            restore = family_class(family).restore_statistics
        except HarnessError:  # a family this build does not know: its mean-type metrics still compare
            return {}
        inputs = wide_table(rows, "input")
        block = ((self.data.get("config") or {}).get("evaluate") or {}).get(family) or {}
        return restore(inputs, block)

    def caps(self, family: str) -> dict[str, str]:
        return ((self.families().get(family) or {}).get("caps") or {}).get(self.model, {})


def _download_run(ref: str, tracking_uri: str | None) -> str:
    """Fetch results.json and per_unit.parquet of an MLflow (parent) run into a temp folder."""
    import shutil
    import tempfile

    from harness.errors import ResultsError, TrackingError
    from harness.results.folder import PER_UNIT, RESULTS_JSON
    from harness.tracking.store import resolve_uri

    # the store runs log to (the harness's own unless one is set), not MLflow's ./mlflow.db
    tracking_uri = resolve_uri(tracking_uri)
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

    path = Path(ref)
    downloaded = not path.exists() and (ref.startswith("runs:/") or re.fullmatch(r"[0-9a-f]{32}", ref))
    if downloaded:
        path = Path(_download_run(ref, tracking_uri))
    if not path.is_dir():
        raise ResultsError(f"{role}: {ref!r} is neither a results folder nor an MLflow run id")
    try:
        try:
            stored = read_results_folder(path)
        except ResultsError as exc:
            raise ResultsError(f"{role}: {exc}") from None
    finally:
        if downloaded:
            shutil.rmtree(path, ignore_errors=True)
    models = list(dict.fromkeys(stored.per_unit["model"]))
    if not models and "variants" in (stored.data.get("config") or {}):  # an A/B run read from MLflow
        raise ConfigError(f"{role}: {ref} is an A/B test's run; harness compare gates an A/B test again from its "
                          "results folder, given twice: harness compare FOLDER FOLDER --gate GATE.yaml")
    if model is None:
        compared = (stored.data.get("config") or {}).get("compare") or {}
        if len(models) == 1:
            model = models[0]
        elif role == "candidate" and len(compared.get("candidates", [])) == 1:
            model = compared["candidates"][0]
        else:
            raise ConfigError(f"{role}: {ref} holds {len(models)} models {models}; name one with "
                              f"--{role}-model")
    if model not in models:
        raise ConfigError(f"--{role}-model: {model!r} is not in {ref}; it holds {models}")
    rows = stored.per_unit[stored.per_unit["model"] == model]
    dup = rows.duplicated(["family", "unit_id", "metric"])
    if dup.any():
        raise DataValidationError(f"{role}: {int(dup.sum())} duplicated (unit_id, metric) rows for {model!r} "
                                  f"in {ref}, e.g. {rows.loc[dup, ['unit_id', 'metric']].iloc[0].tolist()}")
    return RunSide(ref, model, stored)


def _family_pair(family: str, base: RunSide, cand: RunSide, names: tuple[str, str],
                 wanted: set[str] | None) -> FamilyResult | None:
    """Both sides' outputs of one family on the metrics both compared (and ``wanted``)."""
    theirs = base.families().get(family) or {}
    ours = cand.families().get(family) or {}
    compared = [m for m in ours.get("compared", []) if m in theirs.get("compared", [])
                and (wanted is None or m in wanted)]
    if not compared:
        return None
    outputs = {}
    for name, side in zip(names, (base, cand)):
        table = side.table(family)
        statistics = {m: s for m, s in side.statistics(family).items() if m in compared}
        means = [m for m in compared if m not in statistics and m in table.columns]
        table = table[means].dropna()
        outputs[name] = ModelOutput(per_unit=table, values=[], statistics=statistics, caps=side.caps(family))
    compared = [m for m in compared if all(m in o.statistics or m in o.per_unit.columns for o in outputs.values())]
    return FamilyResult(family, ours.get("unit", family), compared, outputs) if compared else None


def _independent_family(ref: str) -> tuple[str, dict[str, Any]] | None:
    """(family key, results.json) when ``ref`` is a local results folder of a family whose
    models are measured on disjoint units (an A/B test's variants), else None."""
    from pathlib import Path

    from harness.results.folder import RESULTS_JSON, read_results_json

    if not (Path(ref) / RESULTS_JSON).is_file():
        return None
    data = read_results_json(ref)
    families = data.get("families") or {}
    keys = [k for k, f in families.items() if f.get("pairing") == "independent"]
    if not keys and "variants" in (data.get("config") or {}):  # written before families named their pairing
        keys = ["ab"]
    return (keys[0], data) if keys else None


def compare_within(
    ref: str,
    other: str,
    family: str,
    data: dict[str, Any],
    *,
    baseline_model: str | None,
    candidate_model: str | None,
    gate: list[GateCriterion] | None,
    metrics: list[str] | None,
    confidence: float | None,
    correction: str | None,
) -> tuple[EvalResult, Verdict]:
    """An A/B results folder gated again (new criteria, correction or level) from what it
    stored: its family rebuilds the effects (``Family.restore``: the A/B test's
    ``statistics.csv``), then the usual comparison rows and gate. Its variants are users of
    one experiment, so both sides must be that folder."""
    from pathlib import Path

    if Path(ref).resolve() != Path(other).resolve():
        raise ConfigError(f"compare: {ref} is an A/B test's results folder: its variants are different users of "
                          f"that experiment and pair with nothing in {other}. To gate it again with other criteria, "
                          f"pass it twice: harness compare {ref} {ref} --gate GATE.yaml")
    result = family_class(family).restore(Path(ref), data, confidence=confidence)
    if result is None:
        raise ConfigError(f"compare: the {family!r} family cannot be rebuilt from {ref}")
    config = data.get("config") or {}
    variants = config.get("variants") or {}
    baseline = baseline_model or variants.get("control")
    treatments = [m for m in result.models if m != baseline]
    candidate = candidate_model or (treatments[0] if len(treatments) == 1 else None)
    for role, name in (("baseline", baseline), ("candidate", candidate)):
        if name is None or name not in result.models:
            raise ConfigError(f"--{role}-model: {name!r} is not a variant of {ref}; it holds {list(result.models)}")
    criteria = gate if gate is not None else load_criteria(config.get("gate") or [])
    wanted = None if metrics is None else set(metrics) | {c.metric for c in criteria}
    absent = sorted((wanted or set()) - set(result.compared))
    if absent:
        raise ConfigError(f"compare: metric(s) {absent} are not in {ref}; it has {result.compared}")
    result.compared = [m for m in result.compared if wanted is None or m in wanted]
    level = confidence or (config.get("analysis") or {}).get("confidence", 0.95)
    correction = correction or (config.get("analysis") or {}).get("correction", "holm")
    comps = compare_family(result, baseline=baseline, candidates=[candidate])  # at the restored level
    results = {family: result}
    verdict = invalidate(decide(criteria, comps, correction=correction), assemble.invalid(results))
    result.models = {m: o for m, o in result.models.items() if m in (baseline, candidate)}
    sections = assemble.family_sections(results)
    out = EvalResult(
        run_id=new_run_id(), created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config={"name": f"compare {baseline} vs {candidate}",
                "compare": {"baseline": baseline, "candidates": [candidate], "method": "ab", "confidence": level,
                            "correction": correction},
                "gate": [c.model_dump(mode="json") for c in criteria], "sources": {"baseline": ref, "candidate": ref}},
        config_hash="", dataset=dict(data.get("dataset") or {}),
        metrics=[r for r in assemble.metric_rows(results) if r["metric"] in result.compared],
        per_unit=assemble.per_unit_table(results), comparison=comparison_rows(comps, verdict),
        verdict=verdict.to_dict(), extra=sections)
    return out, verdict


def compare_runs(
    baseline_ref: str,
    candidate_ref: str,
    *,
    baseline_model: str | None = None,
    candidate_model: str | None = None,
    gate: list[GateCriterion] | None = None,
    metrics: list[str] | None = None,
    method: str | None = None,
    n_resamples: int | None = None,
    confidence: float | None = None,
    correction: str | None = None,
    seed: int | None = None,
    tracking_uri: str | None = None,
) -> tuple[EvalResult, Verdict]:
    """``harness compare``: pair two runs' per-unit values by family, unit id and metric,
    compare and gate them. Unset options come from the candidate run's config
    (``compare``, ``gate``, ``seed``), then the defaults. An A/B test's folder is gated
    again within itself (:func:`compare_within`)."""
    for ref, other in ((candidate_ref, baseline_ref), (baseline_ref, candidate_ref)):
        found = _independent_family(ref)
        if found is not None:
            return compare_within(ref, other, *found, baseline_model=baseline_model, candidate_model=candidate_model,
                                  gate=gate, metrics=metrics, confidence=confidence, correction=correction)
    base = load_side(baseline_ref, model=baseline_model, role="baseline", tracking_uri=tracking_uri)
    cand = load_side(candidate_ref, model=candidate_model, role="candidate", tracking_uri=tracking_uri)
    fps = [(s.data.get("dataset") or {}).get("fingerprint") for s in (base, cand)]
    if fps[0] != fps[1]:
        raise DataValidationError(f"compare: the runs evaluated different data (dataset fingerprint "
                                  f"{fps[0]!r} vs {fps[1]!r}); unit ids would not name the same units")
    config = cand.data.get("config") or {}
    spec = config.get("compare") or {}
    criteria = gate if gate is not None else load_criteria(config.get("gate") or [])
    b_name, c_name = base.model, cand.model
    if b_name == c_name:
        b_name, c_name = f"{b_name} (baseline)", f"{c_name} (candidate)"
    wanted = None if metrics is None else set(metrics) | {c.metric for c in criteria}
    pairs = [p for family in cand.families()
             if (p := _family_pair(family, base, cand, (b_name, c_name), wanted)) is not None]
    have = [m for p in pairs for m in p.compared]
    absent = [m for m in list(metrics or []) + [c.metric for c in criteria] if m not in have]
    if absent:  # the message lists every metric both runs have, not only those asked for
        common = [m for family in cand.families()
                  if (p := _family_pair(family, base, cand, (b_name, c_name), None)) is not None for m in p.compared]
        raise ConfigError(f"compare: metric(s) {sorted(set(absent))} are not in both runs; common: {common}")
    method = method or spec.get("method", "auto")
    confidence = confidence or spec.get("confidence", 0.95)
    correction = correction or spec.get("correction", "holm")
    seed = config.get("seed", 0) if seed is None else seed
    n_resamples = n_resamples or spec.get("n_resamples") or resample_count(criteria, 1, correction)
    comps: list[MetricComparison] = []
    for pair in pairs:
        comps += compare_family(pair, baseline=b_name, candidates=[c_name], method=method, confidence=confidence,
                                n_resamples=n_resamples, seed=seed)
        for output in pair.models.values():
            output.values = mean_values(output.per_unit, confidence)
    verdict = decide(criteria, comps, correction=correction)
    results = {p.family: p for p in pairs}
    result = EvalResult(
        run_id=new_run_id(), created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config={"name": f"compare {b_name} vs {c_name}",
                "compare": {"baseline": b_name, "candidates": [c_name], "method": method,
                            "n_resamples": n_resamples, "confidence": confidence, "correction": correction},
                "gate": [c.model_dump(mode="json") for c in criteria], "seed": seed,
                "sources": {"baseline": base.source, "candidate": cand.source}},
        config_hash="", dataset=dict(cand.data.get("dataset") or {}),
        metrics=assemble.metric_rows(results), per_unit=assemble.per_unit_table(results),
        comparison=comparison_rows(comps, verdict), verdict=verdict.to_dict(),
        extra=assemble.family_sections(results))
    return result, verdict
