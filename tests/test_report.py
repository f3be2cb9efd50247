"""Markdown summary, JUnit XML and console text of a gated result."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import numpy as np
import pandas as pd
import pytest

from harness.inference.paired import compare_models
from harness.spec.config import GateCriterion
from harness.inference.gate import comparison_rows, decide
from harness.results.report import console_summary, junit_xml, markdown_summary
from harness.evaluate import mean_values
from harness.results.folder import EvalResult, long_table

METRICS = ["ndcg@10", "recall@100", "mrr@10"]


@pytest.fixture(scope="module")
def result() -> EvalResult:
    """prod vs cand: ndcg@10 better (PASS), recall@100 regressed (FAIL), mrr@10 noise
    under a relative margin (INCONCLUSIVE)."""
    rng = np.random.default_rng(0)
    n = 300
    index = pd.Index([f"q{i}" for i in range(n)])
    base = rng.beta(3, 4, (n, 3))
    cand = base + np.array([0.05, -0.05, 0.0]) + rng.normal(0, [0.05, 0.05, 0.3], (n, 3))
    per_unit = {"prod": pd.DataFrame(base, index=index, columns=METRICS),
                "cand": pd.DataFrame(cand, index=index, columns=METRICS)}
    comps = compare_models(per_unit, baseline="prod", candidates=["cand"], metrics=METRICS, method="t_test")
    criteria = [GateCriterion(metric="ndcg@10", role="primary"),
                GateCriterion(metric="recall@100", role="guardrail", max_regression=0.01),
                GateCriterion(metric="mrr@10", role="guardrail", max_regression=0.001, relative=True)]
    verdict = decide(criteria, comps)
    assert [c.outcome for c in verdict.criteria] == ["PASS", "FAIL", "INCONCLUSIVE"]
    return EvalResult(run_id="r1", created_at="2026-11-23T10:00:00+00:00", config={"name": "ranker-v2"},
                      config_hash="h", dataset={"name": "synthetic", "fingerprint": "fp"},
                      metrics=[{"model": m, **vars(v)} for m, t in per_unit.items() for v in mean_values(t, 0.95)],
                      per_unit=long_table("ranking", per_unit),
                      comparison=comparison_rows(comps, verdict), verdict=verdict.to_dict())


def test_junit_has_one_testcase_per_criterion(result):
    suite = ET.fromstring(junit_xml(result).split("\n", 1)[1])
    assert suite.tag == "testsuite" and suite.get("name") == "harness-gate.ranker-v2"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["decision"] == "FAIL" and props["correction"] == "holm"
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    assert set(cases) == {"ndcg@10 (primary)", "recall@100 (guardrail)", "mrr@10 (guardrail)"}
    assert all(c.get("classname") == "gate.cand" for c in cases.values())
    assert cases["ndcg@10 (primary)"].find("failure") is None
    failure = cases["recall@100 (guardrail)"].find("failure")
    assert "regression beyond the margin 0.01" in failure.get("message")
    assert "units" in cases["mrr@10 (guardrail)"].find("skipped").get("message")


def test_markdown_has_verdict_comparison_and_criteria(result):
    md = markdown_summary(result)
    lines = md.splitlines()
    assert lines[0] == "## ❌ Gate: FAIL — `ranker-v2`"
    row = next(line for line in lines if line.startswith("| cand | recall@100 | guardrail"))
    crit = next(c for c in result.verdict["criteria"] if c["metric"] == "recall@100")
    assert f"{crit['delta']:+.4f}" in row and "**FAIL**" in row
    # the relative criterion is shown in percent
    rel = next(line for line in lines if line.startswith("| cand | mrr@10 | guardrail"))
    mrr = next(c for c in result.verdict["criteria"] if c["metric"] == "mrr@10")
    assert f"{mrr['delta']:+.2%}" in rel
    # every metric appears in the comparison table, gated or not, with its MDE
    comp = next(r for r in result.comparison if r["metric"] == "ndcg@10")
    assert any(line.startswith("| cand | ndcg@10 |") and f"{comp['mde']:.4f}" in line for line in lines)
    assert "3; regression p adjusted by holm, pass p unadjusted" in md
    assert all(f"- {r}" in md for r in result.verdict["reasons"])


def test_console_summary_lists_the_verdict_and_reasons(result):
    text = console_summary(result)
    assert "GATE: FAIL" in text
    assert text.count("  - ") == 3
    assert "comparison vs prod" in text
