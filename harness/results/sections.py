"""The HTML report's family sections: a registry keyed by family, consumed generically.

A section is data, not markup: a title, paragraphs, tables of cells, figures and notes,
which one template (``templates/section.html.j2``) lays out. Each family of a run
contributes one section: the builder registered for its key with
:func:`register_section`, else :func:`generic_section` (its metrics, comparisons, caps
and skipped models), so a new family appears in the report before anyone writes a
builder for it. A builder usually starts from the generic section and adds to it::

    @register_section("attribution")
    def attribution_section(report: ReportData, key: str) -> Section:
        section = generic_section(report, key)
        section.figures.append(report.figure("attribution_waterfall", "Stage attribution"))
        return section

Cells keep the exact number they show (``Cell.value``), so a test or a reader's script
can check every figure of the page against ``results.json``.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass, field
from typing import Any, Callable

UNIT_NAMES = {"query": "queries", "impression": "labelled rows", "logged_row": "logged rows",
              "slate": "logged slates"}


@dataclass
class Cell:
    """One table cell: the text shown and, for numbers, the value it rounds."""

    text: str
    value: float | None = None
    css: str = ""


@dataclass
class Table:
    caption: str
    columns: list[str]
    rows: list[list[Cell]]


@dataclass
class Figure:
    caption: str
    src: str  # a data URI: the report makes no network request
    name: str


@dataclass
class Section:
    key: str
    title: str
    paragraphs: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class ReportData:
    """What the report is built from: ``results.json`` and the folder's plots (PNG bytes)."""

    data: dict[str, Any]
    plots: dict[str, bytes] = field(default_factory=dict)

    def figure(self, name: str, caption: str) -> Figure | None:
        png = self.plots.get(name)
        if png is None:
            return None
        return Figure(caption, "data:image/png;base64," + base64.b64encode(png).decode("ascii"), name)

    def rows(self, key: str) -> list[dict[str, Any]]:
        """``results.json["metrics"]`` rows of one family."""
        compared = set(self.family(key).get("compared", []))
        # rows of schema-1 folders have no family: those of the family's compared metrics
        return [r for r in self.data.get("metrics", [])
                if r.get("family") == key or ("family" not in r and r["metric"] in compared)]

    def family(self, key: str) -> dict[str, Any]:
        """``results.json["families"][key]``: unit, compared metrics, caps, skipped models."""
        return (self.data.get("families") or {}).get(key, {})


SectionBuilder = Callable[[ReportData, str], Section]
SECTIONS: dict[str, SectionBuilder] = {}


def register_section(family: str) -> Callable[[SectionBuilder], SectionBuilder]:
    """Register the report section builder of ``family`` (a decorator); the latest wins."""

    def add(builder: SectionBuilder) -> SectionBuilder:
        SECTIONS[family] = builder
        return builder

    return add


def build_sections(report: ReportData) -> list[Section]:
    """One section per family of the run, in the run's order."""
    families = report.data.get("families") or {}
    return [SECTIONS.get(key, generic_section)(report, key) for key in families]


def number(value: Any, spec: str = ".4f", css: str = "num") -> Cell:
    """A numeric cell; a missing or undefined value shows as a dash (and has no value)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return Cell("—", None, css)
    return Cell(format(value, spec), float(value), css)


def interval(low: Any, high: Any, spec: str = ".4f") -> Cell:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return Cell("—", None, "num")
    return Cell(f"[{format(low, spec)}, {format(high, spec)}]", None, "num")


def metric_table(report: ReportData, key: str, caption: str = "Metrics (95% interval)") -> Table | None:
    """Metric rows of a family: one row per metric, one column per model."""
    rows = report.rows(key)
    if not rows:
        return None
    models = list(dict.fromkeys(r["model"] for r in rows))
    by = {(r["model"], r["metric"]): r for r in rows}
    body = []
    for metric in dict.fromkeys(r["metric"] for r in rows):
        line = [Cell(metric)]
        for model in models:
            r = by.get((model, metric))
            line += [number(r["value"]) if r else Cell("—"), interval(r["ci_low"], r["ci_high"]) if r else Cell("—")]
        body.append(line)
    columns = ["metric"] + [h for m in models for h in (m, "interval")]
    return Table(caption, columns, body)


def comparison_table(report: ReportData, key: str) -> Table | None:
    """The paired comparisons of a family's metrics with the baseline."""
    compared = set(report.family(key).get("compared", []))
    rows = [r for r in report.data.get("comparison", []) if r["metric"] in compared]
    if not rows:
        return None
    body = [[Cell(r["candidate"]), Cell(r["metric"]), number(r.get("baseline_value")),
             number(r.get("candidate_value")), number(r["delta"], "+.4f"),
             interval(r["ci_low"], r["ci_high"], "+.4f"), number(r.get("p_two_sided"), ".3g")] for r in rows]
    independent = report.family(key).get("pairing") == "independent"  # an A/B test's variants
    return Table(f"Comparison with {rows[0]['baseline']} (independent groups)" if independent
                 else f"Paired comparison with {rows[0]['baseline']}",
                 ["candidate", "metric", "baseline", "candidate value", "delta", "interval", "p (two-sided)"], body)


def generic_section(report: ReportData, key: str) -> Section:
    """What any family has: its unit, metrics, comparisons, caps and skipped models."""
    family = report.family(key)
    unit = family.get("unit")
    section = Section(key, key.replace("_", " ").capitalize())
    if unit:
        section.paragraphs.append(f"Units: {UNIT_NAMES.get(unit, unit)}.")
    section.tables = [t for t in (metric_table(report, key), comparison_table(report, key)) if t is not None]
    for model, caps in (family.get("caps") or {}).items():
        by_reason: dict[str, list[str]] = {}
        for metric, why in caps.items():  # one reason usually caps every estimator alike
            by_reason.setdefault(why, []).append(metric)
        section.notes += [f"{model}: {', '.join(metrics)} cannot PASS: {why}" for why, metrics in by_reason.items()]
    if family.get("skipped_models"):
        section.notes.append("Not measured (the family does not apply to them): "
                             + ", ".join(family["skipped_models"]))
    return section
