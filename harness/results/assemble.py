"""From the families' outputs to the rows of a results folder (any family, same code)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.evaluate.family import FamilyResult
from harness.evaluate.units import release_kept
from harness.results.folder import INPUT_COLUMNS, PerUnitRows, long_table


def metric_rows(results: dict[str, FamilyResult]) -> list[dict[str, Any]]:
    """``results.json["metrics"]``: ``{model, metric, value, ci_low, ci_high, n_units}``
    for every model and every metric any family measured, model by model."""
    rows = [{"model": model, "metric": v.metric, "value": v.value, "ci_low": v.ci_low, "ci_high": v.ci_high,
             "n_units": v.n_units, "family": key}
            for key, result in results.items() for model, output in result.models.items() for v in output.values]
    order = {m: i for i, m in enumerate(dict.fromkeys(r["model"] for r in rows))}
    return sorted(rows, key=lambda r: order[r["model"]])  # stable: family order within a model


def per_unit_table(results: dict[str, FamilyResult]) -> pd.DataFrame | PerUnitRows:
    """``per_unit.parquet``: every family's per-unit values, long, with its family; when
    a model's values are kept by the backend (a :class:`~harness.evaluate.units.UnitTable`),
    the rows to stream into the file instead (:class:`PerUnitRows`)."""
    parts = [(key, m, o.per_unit) for key, r in results.items() for m, o in r.models.items()]
    frames = {(key, m): t for key, m, t in parts if isinstance(t, pd.DataFrame)}
    if len(frames) < len(parts):
        return PerUnitRows(parts)
    return pd.concat([long_table(key, {m: frames[key, m] for m in r.models}) for key, r in results.items()],
                     ignore_index=True)


def release(results: dict[str, FamilyResult]) -> None:
    """Free the per-unit tables kept by the backend (once the results folder is written)."""
    release_kept(o.per_unit for r in results.values() for o in r.models.values())


def inputs_table(results: dict[str, FamilyResult]) -> pd.DataFrame:
    """``unit_inputs.parquet``: the per-unit model inputs families stored (may be empty)."""
    parts = [long_table(key, {m: o.inputs for m, o in r.models.items() if o.inputs is not None}, name="input")
             for key, r in results.items()]
    parts = [p for p in parts if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=INPUT_COLUMNS)


def family_sections(results: dict[str, FamilyResult]) -> dict[str, Any]:
    """``results.json["families"]`` (what a unit is, what is compared, what is capped)
    plus each family's own section under its key."""
    sections: dict[str, Any] = {"families": {
        key: {"unit": r.unit, "pairing": r.pairing, "compared": r.compared, "skipped_models": r.skipped,
              "caps": {m: o.caps for m, o in r.models.items() if o.caps}}
        for key, r in results.items()}}
    sections.update({key: r.extra for key, r in results.items() if r.extra})
    sections["notices"] = [n for r in results.values() for n in r.notices]
    return sections


def model_info(results: dict[str, FamilyResult]) -> dict[str, dict[str, Any]]:
    """``results.json["units"][model]``: every family's per-model details, merged."""
    info: dict[str, dict[str, Any]] = {}
    for result in results.values():
        for model, output in result.models.items():
            info.setdefault(model, {}).update(output.info)
    return info


def figures(results: dict[str, FamilyResult]) -> dict[str, Any]:
    """Every family's figures by name (saved as ``plots/<name>.png``)."""
    return {name: fig for r in results.values() for name, fig in r.figures.items()}


def files(results: dict[str, FamilyResult]) -> dict[str, str]:
    """Every family's extra files of the results folder (name -> text)."""
    return {name: text for r in results.values() for name, text in r.files.items()}


def invalid(results: dict[str, FamilyResult]) -> list[str]:
    """Why the families' data cannot be trusted (empty when they can): the verdict is INVALID."""
    return [r.invalid for r in results.values() if r.invalid]
