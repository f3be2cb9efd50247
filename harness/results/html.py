"""``report.html``: one self-contained page a reviewer reads to decide a launch.

Verdict banner with the reasons, the gate table, a section per family of the run (see
:mod:`harness.results.sections`), other figures, notices and provenance (data set and
config fingerprints, models and their parameters, MLflow runs). Inline CSS, images as
data URIs, no script and no network request: it opens from disk, in a mail attachment
or as an MLflow artifact alike. Jinja2 templates shipped in ``harness/templates``,
autoescaped: a model named ``<script>`` shows as text.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.results import family_sections  # noqa: F401  (registers the built-in sections)
from harness.results.folder import read_results_folder
from harness.results.sections import Cell, ReportData, Section, Table, build_sections, interval, number
from harness.version import __version__

if TYPE_CHECKING:
    from jinja2 import Environment

REPORT_HTML = "report.html"
DECISIONS = ("PASS", "FAIL", "INCONCLUSIVE", "NO_GATE")


@functools.cache
def _environment() -> "Environment":
    """One template environment a process: it keeps the compiled templates (compiling
    the report's templates costs more than rendering them)."""
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(loader=PackageLoader("harness", "templates"), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)


def gate_table(data: dict[str, Any]) -> Table | None:
    """One row per gate criterion and candidate: the numbers the verdict rests on."""
    criteria = (data.get("verdict") or {}).get("criteria", [])
    if not criteria:
        return None
    values = {(r["candidate"], r["metric"]): r for r in data.get("comparison", [])}
    rows = []
    for c in criteria:
        comp = values.get((c["candidate"], c["metric"]), {})
        spec = "+.2%" if c.get("relative") else "+.4f"
        rows.append([Cell(c["candidate"]), Cell(c["metric"]), Cell(c["role"]), number(comp.get("baseline_value")),
                     number(comp.get("candidate_value")), number(c["delta"], spec),
                     interval(c["ci_low"], c["ci_high"], spec), number(c.get("p_adjusted"), ".3g"),
                     number(c.get("p_regression_adjusted"), ".3g"), Cell(c["criterion"]),
                     Cell(c["outcome"], None, "outcome " + c["outcome"].lower())])
    correction = (data.get("verdict") or {}).get("correction", "")
    return Table(f"Gate criteria (regression p adjusted by {correction}; pass p unadjusted: intersection-union)",
                 ["candidate", "metric", "role", "baseline", "candidate value", "delta", "interval", "pass p",
                  "regression p (adj.)", "criterion", "result"], rows)


def provenance_table(data: dict[str, Any]) -> Table:
    """Where the numbers come from: data, config, code, tracking."""
    dataset, tracking, config = data.get("dataset") or {}, data.get("tracking") or {}, data.get("config") or {}
    facts = [("run", data.get("run_id")), ("created", data.get("created_at")),
             ("config", f"{config.get('name')} (hash {data.get('config_hash')})"), ("seed", config.get("seed")),
             ("data set", dataset.get("name")), ("data fingerprint", dataset.get("fingerprint")),
             ("report by", f"recsys-harness {__version__}"), ("MLflow", tracking.get("status")),
             ("tracking URI", tracking.get("uri")), ("MLflow experiment", tracking.get("experiment_id"))]
    facts += [(f"MLflow run: {name}", run_id) for name, run_id in (tracking.get("mlflow_run_ids") or {}).items()]
    return Table("Provenance", ["", ""], [[Cell(k), Cell(str(v))] for k, v in facts if v not in (None, "")])


def models_table(data: dict[str, Any]) -> Table:
    """Each model's kind, parameters, version and time to fit and evaluate."""
    models, units = (data.get("config") or {}).get("models") or {}, data.get("units") or {}
    rows = []
    for name in dict.fromkeys([*models, *units]):
        spec, info = models.get(name) or {}, units.get(name) or {}
        seconds = ((info["ended_ms"] - info["started_ms"]) / 1000 if {"started_ms", "ended_ms"} <= set(info)
                   else None)
        source = info.get("model_version_uri") or info.get("reused_from") or ""
        rows.append([Cell(name), Cell(str(spec.get("kind", "stored run"))),
                     Cell(json.dumps(spec.get("params") or {}, sort_keys=True, default=str)), Cell(source),
                     number(seconds, ".1f")])
    return Table("Models", ["model", "kind", "params", "version / source", "fit + evaluate (s)"], rows)


def render_report(report: ReportData) -> str:
    """The report's HTML (a string)."""
    data = report.data
    verdict = data.get("verdict") or {}
    decision = verdict.get("decision") or "NO_GATE"
    sections: list[Section] = build_sections(report)
    shown = {f.name for s in sections for f in s.figures}
    others = [f for f in (report.figure(name, name.replace("_", " ")) for name in sorted(report.plots))
              if f is not None and f.name not in shown]
    tracking = data.get("tracking") or {}
    return _environment().get_template("report.html.j2").render(
        title=(data.get("config") or {}).get("name") or data.get("run_id"), run_id=data.get("run_id"),
        created_at=data.get("created_at"), decision=decision, decision_css=decision.lower(),
        reasons=verdict.get("reasons", []), warnings=verdict.get("warnings", []),
        baseline=(data.get("comparison") or [{}])[0].get("baseline"), gate=gate_table(data), sections=sections,
        other_figures=others, no_figures=not report.plots, notices=data.get("notices") or [], dataset_warnings=(data.get("dataset") or {})
        .get("warnings") or [], provenance=provenance_table(data), models=models_table(data),
        links=tracking.get("ui") or {}, pending=tracking.get("status") == "pending",
        config_json=json.dumps(data.get("config") or {}, indent=2, default=str))


def read_plots(folder: Path) -> dict[str, bytes]:
    return {p.stem: p.read_bytes() for p in sorted((folder / "plots").glob("*.png"))}


def write_report(folder: str | Path, data: dict[str, Any] | None = None, output: str | Path | None = None) -> Path:
    """Render the report of a results folder (its ``results.json``, or ``data`` when
    given) with the folder's plots; written atomically to ``output`` (default: the
    folder's ``report.html``)."""
    folder = Path(folder)
    if data is None:
        data = read_results_folder(folder).data
    target = Path(output) if output is not None else folder / REPORT_HTML
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        tmp.write_text(render_report(ReportData(data, read_plots(folder))), encoding="utf-8")
        os.replace(tmp, target)
    except BaseException:  # nothing half-written left behind (a full disk, Ctrl-C)
        tmp.unlink(missing_ok=True)
        raise
    return target
