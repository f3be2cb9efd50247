"""``harness decompose BEFORE AFTER --segments FILE --by COLUMN``: which segment moved a
metric between two stored runs.

Each side is one model of a results folder (or MLflow run), as in ``harness compare``;
unlike compare, the runs may cover different units (last week's users and this week's):
that is what the mix shift measures. Per metric: within-segment effect + mix shift =
total, per-segment changes with simultaneous intervals, a Simpson's-paradox warning
(``harness.inference.decomposition``). The results folder (on disk first) holds the
section, both sides' per-unit values, waterfalls and the report; MLflow logging is as
for every run.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from harness.apps.compare import RunSide, load_side
from harness.datasets.segments import read_segments
from harness.errors import ConfigError
from harness.evaluate.family import mean_values
from harness.inference.decomposition import decomposition_section
from harness.inference.gate import decide
from harness.results.folder import EvalResult, long_table, new_run_id
from harness.options import check_choice, check_confidence


def _family(before: RunSide, after: RunSide, family: str | None, metrics: list[str] | None) -> str:
    """The family both runs measured the metrics in: ``family``, else the only common one
    holding every requested metric (``ranking`` first)."""
    common = [f for f in after.families() if f in before.families()]
    if family is not None:
        if family not in common:
            raise ConfigError(f"decompose: family {family!r} is not in both runs (common: {common})")
        return family
    fits = [f for f in common if metrics is None or set(metrics) <= set(after.table(f).columns)]
    if "ranking" in fits:
        return "ranking"
    if len(fits) != 1:
        raise ConfigError(f"decompose: {'no' if not fits else 'several'} families of both runs hold "
                          f"{metrics or 'metrics'} ({fits or common}); name one with --family")
    return fits[0]


def decompose_runs(before_ref: str, after_ref: str, *, segments: str | Path, by: str, id_column: str = "unit_id",
                   segments_after: str | Path | None = None, before_model: str | None = None,
                   after_model: str | None = None, family: str | None = None, metrics: list[str] | None = None,
                   missing: str = "error", confidence: float = 0.95, tracking_uri: str | None = None) -> EvalResult:
    """Decompose each metric's change from ``before_ref`` to ``after_ref`` by the segments
    in ``segments`` (and ``segments_after`` for the after run's units, when they moved)."""
    check_confidence(confidence, name="--confidence")
    check_choice(missing, ("error", "separate"), name="--missing")
    seg0 = read_segments(segments, by=by, id_column=id_column)
    seg1 = read_segments(segments_after, by=by, id_column=id_column) if segments_after is not None else None
    before = load_side(before_ref, model=before_model, role="before", tracking_uri=tracking_uri)
    after = load_side(after_ref, model=after_model, role="after", tracking_uri=tracking_uri)
    key = _family(before, after, family, metrics)
    b_table, a_table = before.table(key), after.table(key)
    wanted = metrics or [m for m in a_table.columns if m in b_table.columns]
    names = (before.model, after.model) if before.model != after.model else \
        (f"{before.model} (before)", f"{after.model} (after)")
    source = str(segments) if segments_after is None else f"{segments} (before), {segments_after} (after)"
    section = decomposition_section(b_table, a_table, seg0, segments_after=seg1, metrics=wanted, by=by,
                                    names=names, source=source, missing=missing, confidence=confidence)
    tables = {names[0]: b_table[wanted], names[1]: a_table[wanted]}
    metric_rows = [{"model": model, "metric": v.metric, "value": v.value, "ci_low": v.ci_low, "ci_high": v.ci_high,
                    "n_units": v.n_units, "family": "decomposition"}
                   for model, table in tables.items() for v in mean_values(table, confidence)]
    unit = (after.families().get(key) or {}).get("unit", "query")
    return EvalResult(
        run_id=new_run_id(), created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config={"name": f"decompose {names[0]} -> {names[1]} by {by}",
                "decomposition": {"before": before_ref, "after": after_ref, "segments": str(segments),
                                  "segments_after": None if segments_after is None else str(segments_after),
                                  "by": by, "id_column": id_column, "family": key, "metrics": wanted,
                                  "missing": missing, "confidence": confidence},
                "sources": {"before": before.source, "after": after.source}},
        config_hash="", dataset=dict(after.data.get("dataset") or {}),
        metrics=metric_rows, per_unit=long_table("decomposition", tables), comparison=[],
        verdict=decide([], []).to_dict(),
        extra={"families": {"decomposition": {"unit": unit, "compared": [], "skipped_models": [], "caps": {}}},
               "decomposition": section, "notices": list(section["notes"])})
