"""The public API is pinned: what `harness` exports, and that the docs use nothing else."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import harness

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = {
    "AdapterError", "ConfigError", "DataValidationError", "HarnessError", "ResultsError", "TrackingError",
    "__version__", "EvalConfig", "GateCriterion", "FamilySpec", "parse_config", "load_config", "validate",
    "run", "RunOutcome", "compare_runs", "compare_models", "MetricComparison", "decide", "Verdict",
    "CriterionResult", "PASS", "FAIL", "INCONCLUSIVE", "NO_GATE", "INVALID", "EvalResult", "read_results_folder",
    "Ranking", "Retriever", "Ranker", "PointwiseModel", "Policy", "Dataset", "Family", "FamilyResult",
    "ModelOutput", "MetricValue", "Effect", "register_family", "Pipeline", "plot_reliability",
    "plot_calibration_by_segment", "plot_metric_curves", "save_figure",
    "attribute", "attribute_pipelines", "PipelineAttribution", "plot_attribution_waterfall",
}
# modules the docs may import from: the package and its three library subpackages
# the libraries and their modules, and the Spark backend's front door (an optional extra,
# so it is not imported by `import harness`)
ALLOWED = re.compile(r"^harness(\.(metrics|models|datasets)(\.\w+)?|\.spark)?$")


def test_the_exported_names_are_pinned_and_resolve() -> None:
    assert set(harness.__all__) == PUBLIC
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name


def test_importing_harness_stays_light() -> None:
    code = "import sys, harness; harness.decide; print(sorted(m for m in ('torch', 'mlflow', 'xgboost') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def _doc_imports() -> list[tuple[str, str]]:
    found = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S):
            for module in re.findall(r"^\s*(?:from\s+(\S+)\s+import|import\s+(\S+))", block, flags=re.M):
                name = module[0] or module[1]
                if name.split(".")[0] == "harness":
                    found.append((doc.name, name))
    return found


def test_docs_import_only_the_public_api() -> None:
    imports = _doc_imports()
    assert imports, "the README shows the Python API"
    private = [(doc, name) for doc, name in imports if not ALLOWED.match(name)]
    assert not private, f"docs import internal modules: {private}"
