"""report.html: sections for the run's families, numbers equal to results.json, names
escaped, self-contained (no script, no network reference), written by run and by
`harness report`; the console summary fits 100 columns."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import harness
from harness.apps.cli import app
from harness.results.html import render_report
from harness.results.report import CONSOLE_WIDTH, console_summary
from harness.results.sections import SECTIONS, ReportData, Section, generic_section, register_section
from tests.conftest import small_config, write_config

runner = CliRunner()
EVIL = "<script>alert(1)</script>"


class Page(HTMLParser):
    """Sections (by id), tables (caption -> rows of (text, data-value)), images, links, tags."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.tables: dict[str, list[list[tuple[str, str | None]]]] = {}
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.tags: set[str] = set()
        self._caption: str | None = None
        self._cell: list[str] | None = None
        self._value: str | None = None
        self._in_caption = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.add(tag)
        if tag == "section" and a.get("id"):
            self.sections.append(a["id"])
        elif tag == "caption":
            self._in_caption, self._caption = True, ""
        elif tag == "tr":
            self.tables.setdefault(self._caption or "", []).append([])
        elif tag == "td":
            self._cell, self._value = [], a.get("data-value")
        elif tag == "img":
            self.images.append(a)
        elif tag == "a":
            self.links.append(a.get("href") or "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption":
            self._in_caption = False
        elif tag == "td" and self._cell is not None:
            self.tables[self._caption or ""][-1].append(("".join(self._cell).strip(), self._value))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._in_caption:
            self._caption = (self._caption or "") + data
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with ranking, beyond-accuracy, calibration and off-policy families, a
    candidate named like a script tag, and a gate with a primary and a guardrail."""
    tmp = tmp_path_factory.mktemp("html")
    cfg = small_config(tmp, name="report-test")
    cfg["models"] = {"prod": {"kind": "oracle_clicks"}, EVIL: {"kind": "oracle_clicks", "params": {"power": 2.0}}}
    cfg["compare"] = {"baseline": "prod", "candidates": [EVIL], "n_resamples": 300}
    cfg["evaluate"] = {"ranking": {"metrics": ["ndcg@10", "recall@[10,50]"]},
                       "beyond_accuracy": {"metrics": ["coverage@10", "novelty@10"]},
                       "calibration": {"metrics": ["ece", "brier"], "n_bins": 10, "n_per_user": 5,
                                       "segment_by": "item_popularity"},
                       "off_policy": {"synthetic": {"n_rounds": 3000}, "estimators": ["ips", "snips"]}}
    cfg["gate"] = [{"metric": "ndcg@10", "role": "primary", "direction": "higher"},
                   {"metric": "ece", "role": "guardrail", "direction": "lower", "max_regression": 0.005}]
    return harness.run(harness.parse_config(cfg), progress=False).results_dir


@pytest.fixture(scope="module")
def page(run_dir: Path) -> Page:
    return Page((run_dir / "report.html").read_text())


@pytest.fixture(scope="module")
def data(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "results.json").read_text())


def test_sections_of_the_run_are_present_in_order(page: Page, data: dict[str, Any]) -> None:
    families = [f"family-{key}" for key in data["families"]]
    assert families == ["family-ranking", "family-beyond_accuracy", "family-calibration", "family-off_policy"]
    notices = ["notices"] if data["notices"] else []  # e.g. low-overlap caps of off-policy estimates
    assert page.sections == ["verdict", "gate", *families, *notices, "provenance"]


def test_gate_table_equals_the_verdict(page: Page, data: dict[str, Any]) -> None:
    rows = next(rows for caption, rows in page.tables.items() if caption.startswith("Gate criteria"))
    rows = [r for r in rows if r]
    criteria = data["verdict"]["criteria"]
    assert len(rows) == len(criteria) == 2
    for row, c in zip(rows, criteria):
        comp = next(r for r in data["comparison"] if r["metric"] == c["metric"])
        cells = dict(zip(["candidate", "metric", "role", "baseline", "value", "delta", "interval", "pass p",
                          "regression p", "criterion", "result"], row))
        assert cells["candidate"][0] == EVIL and cells["metric"][0] == c["metric"]
        assert float(cells["delta"][1]) == c["delta"] and cells["delta"][0] == f"{c['delta']:+.4f}"
        assert cells["interval"][0] == f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]"
        assert float(cells["baseline"][1]) == comp["baseline_value"]
        assert float(cells["value"][1]) == comp["candidate_value"]
        assert float(cells["regression p"][1]) == c["p_regression_adjusted"]
        assert cells["result"][0] == c["outcome"]


def test_verdict_banner_has_the_decision_and_every_reason(run_dir: Path, data: dict[str, Any]) -> None:
    text = (run_dir / "report.html").read_text()
    assert f'data-decision="{data["verdict"]["decision"]}"' in text
    from html import escape

    for reason in data["verdict"]["reasons"]:
        assert escape(reason, quote=False) in text


def test_every_metric_value_equals_results_json(page: Page, data: dict[str, Any]) -> None:
    """Each family's metric table: one row per metric, (value, interval) per model."""
    models = list(dict.fromkeys(r["model"] for r in data["metrics"]))
    checked = 0
    metric_tables = [rows for caption, rows in page.tables.items() if caption == "Metrics (95% interval)"]
    shown = {}
    for rows in metric_tables:
        for row in rows:
            if not row:
                continue
            for j, model in enumerate(models):
                shown[(model, row[0][0])] = (row[1 + 2 * j], row[2 + 2 * j])
    for r in data["metrics"]:
        value, interval = shown[(r["model"], r["metric"])]
        assert float(value[1]) == r["value"] and value[0] == f"{r['value']:.4f}"
        if r["ci_low"] is not None:
            assert interval[0] == f"[{r['ci_low']:.4f}, {r['ci_high']:.4f}]"
        checked += 1
    assert checked == len(data["metrics"]) > 10


def test_off_policy_weights_and_calibration_segments_equal_results_json(page: Page, data: dict[str, Any]) -> None:
    rows = [r for r in page.tables["Estimates and weight diagnostics"] if r]
    expected = [(m, e) for m, es in data["off_policy"]["estimates"].items() for e in es]
    assert len(rows) == len(expected) == 4
    for row, (model, e) in zip(rows, expected):
        assert row[0][0] == model and row[1][0] == e["estimator"] and float(row[2][1]) == e["value"]
        assert float(row[4][1]) == e["ess"] and float(row[6][1]) == e["max_weight"]
    segments = data["calibration"]["models"]["prod"]["by_segment"]
    table = [r for r in page.tables["prod: calibration by segment"] if r]
    assert [r[0][0] for r in table] == segments["segment"] == ["q1 least popular", "q2", "q3", "q4",
                                                                 "q5 most popular"]
    assert [float(r[3][1]) for r in table] == segments["mean_predicted"]
    assert [float(r[4][1]) for r in table] == segments["ece"]
    assert [int(float(r[1][1])) for r in table] == segments["n"]


def test_names_are_escaped_and_nothing_runs_or_loads(run_dir: Path, page: Page) -> None:
    text = (run_dir / "report.html").read_text()
    assert "<script" not in text and "script" not in page.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert not [link for link in page.links if not link.startswith("#")]  # not logged: no MLflow link
    assert "http://" not in text.replace('xmlns="http://www.w3.org', "") and "https://" not in text
    plots = {p.stem: p.read_bytes() for p in (run_dir / "plots").glob("*.png")}
    assert {i["data-plot"] for i in page.images} == set(plots) == {"ranking_curves", "reliability",
                                                                   "calibration_by_segment"}
    for image in page.images:
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix)
        assert base64.b64decode(image["src"][len(prefix):]) == plots[image["data-plot"]]


def test_report_command_rewrites_the_same_page(run_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "copy" / "report.html"
    result = runner.invoke(app, ["report", str(run_dir), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text() == (run_dir / "report.html").read_text()


def test_report_command_on_a_missing_folder_is_exit_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["report", str(tmp_path / "nope")])
    assert result.exit_code == 2 and "no results.json" in result.output


def test_a_family_without_a_builder_gets_the_generic_section() -> None:
    data = {"families": {"short_list": {"unit": "query", "compared": ["filled@5"], "skipped_models": ["x"],
                                        "caps": {"new": {"filled@5": "too few <units>"}}}},
            "metrics": [{"model": "new", "metric": "filled@5", "value": 0.25, "ci_low": 0.2, "ci_high": 0.3,
                         "n_units": 9, "family": "short_list"}],
            "verdict": {}, "config": {"name": "plugin"}, "run_id": "r"}
    page = Page(render_report(ReportData(data)))
    assert page.sections == ["verdict", "family-short_list", "provenance"]
    row = [r for r in page.tables["Metrics (95% interval)"] if r][0]
    assert row[0][0] == "filled@5" and float(row[1][1]) == 0.25 and row[2][0] == "[0.2000, 0.3000]"
    text = render_report(ReportData(data))
    assert "new: filled@5 cannot PASS: too few &lt;units&gt;" in text and "Not measured" in text


def test_a_registered_builder_contributes_its_section() -> None:
    data = {"families": {"toy_family": {"unit": "query", "compared": []}}, "metrics": [], "verdict": {},
            "config": {"name": "x"}, "run_id": "r"}
    before = dict(SECTIONS)

    @register_section("toy_family")
    def toy(report: ReportData, key: str) -> Section:
        section = generic_section(report, key)
        section.title, section.paragraphs = "Toy family", ["the toy lost 0.12 of ndcg@10"]
        return section

    try:
        text = render_report(ReportData(data))
    finally:  # the registry as it was: other tests see the built-in builders
        SECTIONS.clear()
        SECTIONS.update(before)
    assert "<h2>Toy family</h2>" in text and "the toy lost 0.12 of ndcg@10" in text


def test_console_summary_fits_100_columns(run_dir: Path) -> None:
    """Two models, and six with long names (wrapped into blocks); long reasons and notices wrap."""
    from harness.results.folder import EvalResult

    stored = harness.read_results_folder(run_dir)
    d = stored.data
    many = [{**r, "model": f"model-number-{i}"} for i in range(6) for r in d["metrics"] if r["model"] == "prod"]
    for metrics, shown in ((d["metrics"], EVIL), (many, "model-number-5")):
        result = EvalResult(run_id=d["run_id"], created_at=d["created_at"], config=d["config"],
                            config_hash=d["config_hash"], dataset=d["dataset"], metrics=metrics,
                            per_unit=stored.per_unit, comparison=d["comparison"], verdict=d["verdict"],
                            extra={"notices": ["a notice " * 30]})
        text = console_summary(result)
        assert max(len(line) for line in text.splitlines()) <= CONSOLE_WIDTH
        assert "GATE: " + d["verdict"]["decision"] in text and shown in text
        assert all(r[:60] in " ".join(text.split()) for r in d["verdict"]["reasons"])


def test_run_from_the_cli_prints_the_report_path(tmp_path: Path) -> None:
    cfg = small_config(tmp_path)
    result = runner.invoke(app, ["run", str(write_config(tmp_path, cfg)), "--no-progress"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if line.startswith("report:"))
    assert Path(line.split(None, 1)[1]).is_file()
    summary = [line for line in result.stdout.splitlines() if not line.startswith(("results:", "report:"))]
    assert max(len(line) for line in summary) <= CONSOLE_WIDTH  # paths are as long as they are


def test_curve_bands_equal_the_cut_off_intervals(data: dict[str, Any]) -> None:
    """The band of the metric@k curve at k = 10 is the interval of the metric ndcg@10."""
    for model, info in data["units"].items():
        row = next(r for r in data["metrics"] if r["model"] == model and r["metric"] == "recall@10")
        band = info["curve_intervals"]["recall"]
        assert info["curves"]["recall"][9] == pytest.approx(row["value"], abs=1e-12)
        assert (band["low"][9], band["high"][9]) == pytest.approx((row["ci_low"], row["ci_high"]), abs=1e-12)
        assert len(band["low"]) == len(info["curves"]["recall"]) == 50
