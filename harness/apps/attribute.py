"""``harness attribute``: which stage of a pipeline moved each metric.

Data set -> the baseline and candidate pipelines (stages with the same spec are one
shared model, fitted once) -> every hybrid on the same queries, stage outputs reused
(``harness.evaluate.attribution``) -> Shapley values, interactions, ceiling terms and one
paired bootstrap for all of them (``harness.inference.attribution``) -> the gate's
criteria that name a term -> results folder (on disk first) -> MLflow, where the terms
are logged as deltas on the candidate's child run (``delta_shapley/ranking/ndcg_at_10``).
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from harness.adapters.pipeline import Pipeline
from harness.adapters.registry import build_config_model, check_model_kinds
from harness.apps.run import RunOutcome, config_hash, exit_code_for, resolve_tracking_uri, save_and_track
from harness.errors import ConfigError, say
from harness.evaluate.data import id_types, load_dataset, load_segments
from harness.evaluate.family import mean_values
from harness.inference.attribution import attribute_pipelines
from harness.inference.decomposition import decomposition_section
from harness.inference.gate import comparison_rows, decide, resample_count
from harness.datasets.ids import id_maps
from harness.metrics._names import value_range
from harness.results.attribution import attribution_section, attribution_table, per_unit_terms, waterfall_figures
from harness.results.decomposition import decomposition_figures, decomposition_table
from harness.results.folder import EvalResult, long_table, new_run_id
from harness.results.report import junit_xml, markdown_summary
from harness.spec.attribution import AttributionSpec, is_attribution_criterion
from harness.spec.config import EvalConfig
from harness.types import Dataset, adapter_call


def build_pipelines(config: EvalConfig, dataset: Dataset, baseline: str, candidate: str) -> tuple[Pipeline, Pipeline]:
    """Both pipelines, fitted; a stage whose spec is the same on both sides is ONE model
    (built and fitted once), so it is not a differing stage."""
    pipes = {}
    for name in (baseline, candidate):
        spec = config.models[name]
        model = build_config_model(name, spec.kind, spec.params, dataset, config.seed)
        if not isinstance(model, Pipeline):
            raise ConfigError(f"attribution: model {name!r} is not a pipeline")
        pipes[name] = model
    base, cand = pipes[baseline], pipes[candidate]
    b_specs = config.models[baseline].params["stages"]
    c_specs = config.models[candidate].params["stages"]
    for b_spec, c_spec in zip(b_specs, c_specs):
        if b_spec == c_spec:
            cand = cand.replace(b_spec["name"], base.stage(b_spec["name"]).model)
    fitted: set[int] = set()
    for name, pipe in ((baseline, base), (candidate, cand)):
        for stage in pipe.stages:
            if id(stage.model) in fitted or not hasattr(stage.model, "fit") or isinstance(stage.model, type):
                continue
            say(f"fitting {name}/{stage.name} ({type(stage.model).__name__})")
            with adapter_call(f"{name}/{stage.name}", "fit", what="stage"):
                stage.model.fit(dataset.train, n_users=dataset.n_users, n_items=dataset.n_items)
            fitted.add(id(stage.model))
    return base, cand


def attribute(config: EvalConfig, *, output: str | Path | None = None, progress: bool = True,
              inconclusive: str = "fail", require_gate: bool = False, plots: bool = True) -> RunOutcome:
    """Attribute every metric's change to the differing stages, gate, write, log (the
    waterfalls drawn unless ``plots`` is off)."""
    from harness.apps.validate import check_output

    if config.attribution is None:
        raise ConfigError("harness attribute: the config has no 'attribution' section (it names the baseline "
                          "and candidate pipelines, or uses compare's; 'attribution: {}' takes every default)")
    spec: AttributionSpec = config.attribution
    check_model_kinds({name: s.kind for name, s in config.models.items()})
    out_root = check_output(output or config.output)
    baseline, candidate = config.attribution_pair()
    metrics = config.attribution_metrics()
    dataset = load_dataset(config)
    say(f"dataset {dataset.name}: {len(dataset.query_ids)} queries, fingerprint {dataset.fingerprint}")
    segments = load_segments(spec.segments, dataset) if spec.segments is not None else None
    started_ms = int(time.time() * 1000)
    base, cand = build_pipelines(config, dataset, baseline, candidate)
    criteria = [c for c in config.gate if is_attribution_criterion(c.metric)]
    correction = config.compare.correction if config.compare else "holm"
    n_resamples = spec.n_resamples or resample_count(criteria, 1, correction)
    ranking = config.evaluate.ranking
    found = attribute_pipelines(base, cand, dataset.qrels, dataset.query_ids, metrics, method=spec.method,
                                confidence=spec.confidence, n_resamples=n_resamples, seed=config.seed,
                                max_exact=spec.max_exact_stages, n_permutations=spec.n_permutations,
                                ceiling=spec.ceiling, batch_size=spec.batch_size, names=(baseline, candidate),
                                options={"gain": ranking.gain, "ties": ranking.ties,
                                         "relevance_threshold": ranking.relevance_threshold}, progress=progress)
    players, plan, hv, columns, comparisons = found.players, found.plan, found.hybrids, found.columns, found.rows
    say(f"attribution: {len(players)} differing stages ({', '.join(players)}), {len(plan.masks)} hybrids"
         + ("" if plan.exact else f" from {spec.n_permutations} sampled stage orders"))
    others = [c.metric for c in config.gate if not is_attribution_criterion(c.metric)]
    notices = list(columns.notes) + ([f"attribution: gate criteria on {others} are decided by 'harness run'"]
                                     if others else [])
    verdict = decide(criteria, comparisons, correction=correction)
    section = attribution_section(baseline=baseline, candidate=candidate, stages=base.names, players=players,
                                  plan=plan, hv=hv, comparisons=comparisons, method=spec.method,
                                  confidence=spec.confidence, n_resamples=n_resamples, seed=config.seed,
                                  notes=notices)
    units = id_maps(dataset)[0].decode(hv.query_ids)
    base_col = list(plan.masks).index(0)
    cand_col = list(plan.masks).index((1 << len(players)) - 1)
    tables = {side: per_unit_terms(units, metrics, np.column_stack([hv.values[m][:, col] for m in metrics]))
              for side, col in ((baseline, base_col), (candidate, cand_col))}
    terms_table = per_unit_terms(units, [t.label for t in columns.terms], columns.matrix())
    metric_rows = [{"model": model, "metric": v.metric, "value": v.value, "ci_low": v.ci_low, "ci_high": v.ci_high,
                    "n_units": v.n_units, "family": "attribution"}
                   for model, table in tables.items() for v in mean_values(table, spec.confidence, value_range)]
    per_unit = long_table("attribution", {baseline: tables[baseline],
                                          candidate: tables[candidate].join(terms_table)})
    families = {"attribution": {"unit": "query", "compared": [c.metric for c in comparisons],
                                "skipped_models": [], "caps": {}}}
    extra: dict[str, Any] = {"attribution": section}
    if segments is not None:
        assert spec.segments is not None
        extra["decomposition"] = decomposition_section(
            tables[baseline], tables[candidate], segments[0], metrics=metrics, by=spec.segments.by,
            names=(baseline, candidate), source=segments[1], missing=spec.segments.missing,
            confidence=spec.confidence)
        families["decomposition"] = {"unit": "query", "compared": [], "skipped_models": [], "caps": {}}
        notices = notices + [n for n in extra["decomposition"]["notes"] if n not in notices]  # a new list: the
        # attribution section holds the old one
    ended_ms = int(time.time() * 1000)
    result = EvalResult(
        run_id=new_run_id(),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=config.model_dump(mode="json"),
        config_hash=config_hash(config),
        dataset={"name": dataset.name, "fingerprint": dataset.fingerprint, "settings": dataset.settings,
                 "id_types": id_types(dataset)},
        metrics=metric_rows,
        per_unit=per_unit,
        comparison=comparison_rows(comparisons, verdict),
        verdict=verdict.to_dict(),
        extra={"units": {m: {"started_ms": started_ms, "ended_ms": ended_ms} for m in (baseline, candidate)},
               "families": families, **extra, "notices": notices},
    )
    figures = waterfall_figures(section)
    if "decomposition" in extra:
        figures.update(decomposition_figures(extra["decomposition"]))
    results_dir = save_and_track(result, out_root, {"summary.md": markdown_summary(result),
                                                    "junit.xml": junit_xml(result)}, figures=figures,
                                 plots=plots, tracking_uri=resolve_tracking_uri(config.tracking.uri)
                                 if config.tracking.enabled else None)
    return RunOutcome(result, results_dir, exit_code_for(verdict, inconclusive=inconclusive,
                                                         require_gate=require_gate))


def print_outcome(outcome: RunOutcome) -> None:
    """The attribution table, then the usual summary (comparison rows are the terms)."""
    from harness.results.report import console_summary

    section: dict[str, Any] = outcome.result.extra["attribution"]
    print(attribution_table(section))
    print()
    if "decomposition" in outcome.result.extra:
        print(decomposition_table(outcome.result.extra["decomposition"]))
        print()
    print(console_summary(outcome.result))
    print(f"\nresults: {outcome.results_dir}")
