"""Human and CI views of a result: console table, markdown summary, JUnit XML.

The console summary fits a terminal of ``CONSOLE_WIDTH`` columns: metrics are rows and
models columns (wrapped into blocks when there are many models), long reasons wrap.

The markdown fits a PR comment or ``$GITHUB_STEP_SUMMARY``; the JUnit XML has one
testcase per gate criterion and candidate (FAIL -> ``failure``, INCONCLUSIVE ->
``skipped``), so a CI test view names the metric that stopped the launch.
"""

from __future__ import annotations

import textwrap
from xml.etree import ElementTree as ET

import pandas as pd

from harness.results.folder import EvalResult

ICONS = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "⚠️", "NO_GATE": "➖", "INVALID": "🚫"}
CONSOLE_WIDTH = 100


def _num(value: object, spec: str = "+.4f") -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    return format(value, spec)


def _pct(value: object) -> str:
    return "—" if value is None else f"{value:+.2%}"


def metric_table(result: EvalResult) -> pd.DataFrame:
    """Models as rows, metrics as columns, values ``mean [low, high]``."""
    df = result.metrics_frame
    cell = df.apply(lambda r: f"{r['value']:.4f} [{_num(r['ci_low'], '.4f')}, {_num(r['ci_high'], '.4f')}]",
                    axis=1)
    table = df.assign(cell=cell).pivot(index="model", columns="metric", values="cell")
    order = list(dict.fromkeys(df["metric"]))
    models = list(dict.fromkeys(df["model"]))
    return table.loc[models, order].fillna("—")  # a model may lack a metric (e.g. no predict_proba)


def _wrapped(text: str, first: str, rest: str = "      ") -> list[str]:
    return textwrap.wrap(text, CONSOLE_WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False) or [first.rstrip()]


def _comparison_text(rows: list[dict[str, object]]) -> str:
    """Candidates' paired deltas: signed deltas and interval, relative change, the
    two-sided p-value of any difference and the gate criterion's adjusted one-sided one."""
    several = len({r["candidate"] for r in rows}) > 1
    table = pd.DataFrame({
        **({"candidate": [r["candidate"] for r in rows]} if several else {}),
        "metric": [r["metric"] for r in rows],
        "delta": [_num(r["delta"]) for r in rows],
        "interval": [f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}]" for r in rows],
        "relative": [_pct(r.get("relative_delta")) for r in rows],
        # two tests: "any difference" (two-sided), and the gate criterion's own one-sided
        # test after multiplicity correction, which can be smaller
        "p (≠0)": [_num(r.get("p_two_sided"), ".3g") for r in rows],
        "gate p adj.": [_num(r.get("p_adjusted"), ".3g") for r in rows],
        "outcome": [r.get("outcome") or "—" for r in rows],
    })
    if not any(r.get("outcome") for r in rows):  # no criterion decided anything: the gate columns stay empty
        table = table.drop(columns=["gate p adj.", "outcome"])
    # a CUPED delta is not the difference of the raw means in the metric table: say so
    notes = [f"{r['metric']}" + (f" ({r['candidate']})" if several else "") + ": delta adjusted by CUPED "
             f"(adjusted means {_num(r.get('baseline_value'), '.4f')} vs {_num(r.get('candidate_value'), '.4f')}, "
             f"variance {_pct(-float(r.get('variance_reduction') or 0.0))}); the metric table shows raw means"
             for r in rows if r.get("method") == "cuped"]
    return "\n".join([table.to_string(index=False, line_width=CONSOLE_WIDTH),
                      *[line for n in notes for line in _wrapped(n, "  ", "    ")]])


def console_summary(result: EvalResult) -> str:
    """Plain text for stdout, at most ``CONSOLE_WIDTH`` columns: metric table, comparison,
    notices, verdict with its reasons."""
    lines = _wrapped(f"run {result.run_id} — dataset {result.dataset.get('name')} "
                     f"({result.dataset.get('fingerprint')})", "", "  ") + [""]
    table = metric_table(result).T.rename_axis(index="metric", columns=None)
    lines.append(table.to_string(line_width=CONSOLE_WIDTH))
    if result.comparison:
        rows = result.comparison
        lines += ["", f"comparison vs {rows[0]['baseline']}:", _comparison_text(rows)]
    notices = result.extra.get("notices") or []
    if notices:
        lines += ["", "notices:"] + [line for n in notices for line in _wrapped(n, "  - ", "    ")]
    verdict = result.verdict
    if verdict:
        lines += ["", f"GATE: {verdict['decision']}"]
        lines += [line for r in verdict.get("reasons", []) for line in _wrapped(r, "  - ", "    ")]
        lines += [line for w in verdict.get("warnings", []) for line in _wrapped(w, "  WARNING: ", "    ")]
    return "\n".join(lines)


def _comparison_section(result: EvalResult) -> list[str]:
    rows = result.comparison
    if not rows:
        return []
    level = rows[0].get("confidence", 0.95)
    # an A/B test compares independent groups (its variants); offline runs, paired units
    pairings = {f.get("pairing") for f in (result.extra.get("families") or {}).values() if f.get("compared")}
    design = "independent groups" if pairings == {"independent"} else "paired"
    out = ["", f"### Comparison with `{rows[0]['baseline']}` ({design}, {rows[0].get('method', '')})", "",
           f"| candidate | metric | baseline | candidate | delta | {level * 100:g}% CI | relative | p (two-sided) "
           "| MDE |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['candidate']} | {r['metric']} | {_num(r.get('baseline_value'), '.4f')} | "
                   f"{_num(r.get('candidate_value'), '.4f')} | {_num(r['delta'])} | "
                   f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}] | {_pct(r.get('relative_delta'))} | "
                   f"{_num(r.get('p_two_sided'), '.3g')} | {_num(r.get('mde'), '.4f')} |")
    return out


def _criteria_section(result: EvalResult) -> list[str]:
    criteria = result.verdict.get("criteria", [])
    if not criteria:
        return []
    correction = result.verdict.get("correction", "holm")
    out = ["", f"### Gate criteria ({len(criteria)}; regression p adjusted by {correction}, pass p unadjusted: "
                "intersection-union)", "",
           "| candidate | metric | role | requirement | delta | CI | pass p | regression p (adj.) | outcome |",
           "|---|---|---|---|---|---|---|---|---|"]
    for c in criteria:
        fmt = _pct if c.get("relative") else _num
        out.append(f"| {c['candidate']} | {c['metric']} | {c['role']} | {c['criterion']} | {fmt(c['delta'])} | "
                   f"[{fmt(c['ci_low'])}, {fmt(c['ci_high'])}] | {c['p_adjusted']:.3g} | "
                   f"{c['p_regression_adjusted']:.3g} | {ICONS.get(c['outcome'], '')} **{c['outcome']}** |")
    out += [f"> ⚠️ {w}" for w in result.verdict.get("warnings", [])]
    out += ["", "<details><summary>Why</summary>", ""]
    out += [f"- {r}" for r in result.verdict.get("reasons", [])]
    out += ["", "</details>"]
    return out


def _ab_section(result: EvalResult) -> list[str]:
    """An A/B run's sample ratio check and, when segmented, the heterogeneity tests."""
    ab = result.extra.get("ab")
    if not ab:
        return []
    srm = ab["srm"]
    total = sum(srm["observed"].values())
    shares = ", ".join(f"{k} {v / total:.3%} (planned {srm['expected'][k] / total:.3%})"
                       for k, v in srm["observed"].items())
    out = ["", "### Sample ratio", "",
           f"{'🚫 **MISMATCH**' if srm['invalid'] else 'ok'}: chi2 = {srm['statistic']:.4g} on {srm['df']} df, "
           f"p = {srm['p_value']:.3g} (threshold {srm['threshold']:g}); {shares}"]
    if ab.get("heterogeneity"):
        out += ["", "### Heterogeneity across segments (Cochran's Q)", "",
                "| treatment | metric | segments | Q | p | I² |", "|---|---|---|---|---|---|"]
        out += [f"| {h['treatment']} | {h['metric']} | {h['segments']} | {h['q']:.3g} | {h['p_value']:.3g} | "
                f"{h['i2']:.0%} |" for h in ab["heterogeneity"]]
    return out


def markdown_summary(result: EvalResult) -> str:
    """A summary fit for a PR comment or ``$GITHUB_STEP_SUMMARY``."""
    verdict = result.verdict.get("decision", "n/a")
    out = [f"## {ICONS.get(verdict, '')} Gate: {verdict} — `{result.config.get('name')}`", "",
           f"Run `{result.run_id}` · dataset `{result.dataset.get('name')}` "
           f"(fingerprint `{result.dataset.get('fingerprint')}`)", "", "### Metrics", ""]
    table = metric_table(result)
    out.append("| model | " + " | ".join(table.columns) + " |")
    out.append("|---|" + "---|" * len(table.columns))
    for model, row in table.iterrows():
        out.append(f"| {model} | " + " | ".join(row.values) + " |")
    out += _comparison_section(result)
    out += _criteria_section(result)
    out += _ab_section(result)
    return "\n".join(out) + "\n"


def junit_xml(result: EvalResult) -> str:
    """One testcase per gate criterion and candidate, so CI shows which metric failed."""
    criteria = result.verdict.get("criteria", [])
    suite = ET.Element("testsuite", name=f"harness-gate.{result.config.get('name')}",
                       tests=str(len(criteria)),
                       failures=str(sum(c["outcome"] == "FAIL" for c in criteria)),
                       errors="0",
                       skipped=str(sum(c["outcome"] == "INCONCLUSIVE" for c in criteria)))
    props = ET.SubElement(suite, "properties")
    for name, value in (("decision", result.verdict.get("decision", "n/a")), ("run_id", result.run_id),
                        ("correction", result.verdict.get("correction", "")),
                        ("dataset_fingerprint", result.dataset.get("fingerprint"))):
        ET.SubElement(props, "property", name=name, value=str(value))
    srm = (result.extra.get("ab") or {}).get("srm")
    if srm is not None:  # an A/B run: the sample ratio check is a test of its own
        case = ET.SubElement(suite, "testcase", classname="ab", name="sample ratio")
        if srm["invalid"]:
            text = f"sample ratio mismatch: p={srm['p_value']:.3g} < {srm['threshold']:g}"
            ET.SubElement(case, "failure", message=text, type="invalid").text = text
        suite.set("tests", str(len(criteria) + 1))
        suite.set("failures", str(int(suite.get("failures", "0")) + int(srm["invalid"])))
    for c in criteria:
        case = ET.SubElement(suite, "testcase", classname=f"gate.{c['candidate']}",
                             name=f"{c['metric']} ({c['role']})")
        if c["outcome"] == "FAIL":
            ET.SubElement(case, "failure", message=c["reason"], type="regression").text = c["reason"]
        elif c["outcome"] == "INCONCLUSIVE":
            ET.SubElement(case, "skipped", message=c["reason"])
        ET.SubElement(case, "system-out").text = c["reason"]
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
