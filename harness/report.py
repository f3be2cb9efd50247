"""Human and CI views of a result: console table, markdown summary, JUnit XML."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pandas as pd

from harness.results import EvalResult


def _fmt(value: object, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "—"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def metric_table(result: EvalResult) -> pd.DataFrame:
    """Models as rows, metrics as columns, values ``mean [low, high]``."""
    df = result.metrics_frame
    cell = df.apply(lambda r: f"{r['value']:.4f} [{r['ci_low']:.4f}, {r['ci_high']:.4f}]", axis=1)
    table = df.assign(cell=cell).pivot(index="model", columns="metric", values="cell")
    order = list(dict.fromkeys(df["metric"]))
    models = list(dict.fromkeys(df["model"]))
    return table.loc[models, order]


def console_summary(result: EvalResult) -> str:
    """Plain text for stdout: metric table, comparison, verdict."""
    lines = [f"run {result.run_id} — dataset {result.dataset.get('name')} "
             f"({result.dataset.get('fingerprint')})", ""]
    lines.append(metric_table(result).to_string())
    if result.comparison:
        comp = pd.DataFrame(result.comparison)
        cols = ["candidate", "metric", "delta", "ci_low", "ci_high", "p_adjusted", "outcome"]
        lines += ["", "comparison vs " + str(comp["baseline"].iloc[0]) + ":",
                  comp[[c for c in cols if c in comp]].to_string(index=False, na_rep="—",
                                                             float_format=lambda x: f"{x:+.4f}")]
    verdict = result.verdict
    if verdict:
        lines += ["", f"GATE: {verdict['decision']}"]
        lines += [f"  - {r}" for r in verdict.get("reasons", [])]
    return "\n".join(lines)


def markdown_summary(result: EvalResult) -> str:
    """A summary fit for a PR comment or ``$GITHUB_STEP_SUMMARY``."""
    verdict = result.verdict.get("decision", "n/a")
    icon = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "⚠️"}.get(verdict, "")
    out = [f"## {icon} Gate: {verdict} — `{result.config.get('name')}`", "",
           f"Run `{result.run_id}` · dataset `{result.dataset.get('name')}` "
           f"(fingerprint `{result.dataset.get('fingerprint')}`)", "", "### Metrics", ""]
    table = metric_table(result)
    out.append("| model | " + " | ".join(table.columns) + " |")
    out.append("|---|" + "---|" * len(table.columns))
    for model, row in table.iterrows():
        out.append(f"| {model} | " + " | ".join(row.values) + " |")
    criteria = result.verdict.get("criteria", [])
    if criteria:
        out += ["", "### Gate criteria", "",
                "| candidate | metric | role | delta | 95% CI | p (adj.) | outcome |",
                "|---|---|---|---|---|---|---|"]
        for c in criteria:
            out.append(f"| {c['candidate']} | {c['metric']} | {c['role']} | {c['delta']:+.4f} | "
                       f"[{c['ci_low']:+.4f}, {c['ci_high']:+.4f}] | {c['p_adjusted']:.3g} | "
                       f"**{c['outcome']}** |")
        out += ["", "<details><summary>Reasons</summary>", ""]
        out += [f"- {r}" for r in result.verdict.get("reasons", [])]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"


def junit_xml(result: EvalResult) -> str:
    """One testcase per gate criterion, so CI shows which metric failed."""
    criteria = result.verdict.get("criteria", [])
    suite = ET.Element("testsuite", name=f"harness-gate.{result.config.get('name')}",
                       tests=str(len(criteria)),
                       failures=str(sum(c["outcome"] == "FAIL" for c in criteria)),
                       skipped=str(sum(c["outcome"] == "INCONCLUSIVE" for c in criteria)))
    for c in criteria:
        case = ET.SubElement(suite, "testcase", classname=f"gate.{c['candidate']}",
                             name=f"{c['metric']} ({c['role']})")
        if c["outcome"] == "FAIL":
            ET.SubElement(case, "failure", message=c["reason"]).text = c["reason"]
        elif c["outcome"] == "INCONCLUSIVE":
            ET.SubElement(case, "skipped", message=c["reason"])
        ET.SubElement(case, "system-out").text = c["reason"]
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
