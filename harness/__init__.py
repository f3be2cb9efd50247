"""recsys-harness: evaluation harness for recommender and ranking systems.

The public API. Everything importable from ``harness`` itself (and from
``harness.metrics``, ``harness.models`` and ``harness.datasets``) is supported; other
modules are internal and may move. Importing ``harness`` stays light: names load on
first use, and torch, xgboost and mlflow only where a model or the tracker needs them.

>>> import harness
>>> "run" in harness.__all__ and "decide" in harness.__all__
True
"""

from __future__ import annotations

from harness.lazy import lazy_exports
from harness.errors import AdapterError, ConfigError, DataValidationError, HarnessError, ResultsError, TrackingError
from harness.version import __version__

# public name -> the module that defines it (loaded on first access)
_EXPORTS = {
    # the spec: configs and gate criteria
    "EvalConfig": "harness.spec.config", "GateCriterion": "harness.spec.config", "FamilySpec": "harness.spec.config",
    "parse_config": "harness.spec.config",
    "load_config": "harness.apps.validate", "validate": "harness.apps.validate",
    # running an evaluation
    "run": "harness.apps.run", "RunOutcome": "harness.apps.run", "compare_runs": "harness.apps.compare",
    # which pipeline stage moved a metric
    "attribute": "harness.apps.attribute", "attribute_pipelines": "harness.inference.attribution",
    "PipelineAttribution": "harness.inference.attribution",
    # paired comparison and the gate
    "compare_models": "harness.inference.paired", "MetricComparison": "harness.inference.paired",
    "decide": "harness.inference.gate", "Verdict": "harness.inference.gate",
    "CriterionResult": "harness.inference.gate", "PASS": "harness.inference.gate", "FAIL": "harness.inference.gate",
    "INCONCLUSIVE": "harness.inference.gate", "NO_GATE": "harness.inference.gate", "INVALID": "harness.inference.gate",
    # results
    "EvalResult": "harness.results.folder", "read_results_folder": "harness.results.folder",
    # what models implement and families produce
    "Ranking": "harness.types", "Retriever": "harness.types", "Ranker": "harness.types",
    "PointwiseModel": "harness.types", "Policy": "harness.types", "Dataset": "harness.types",
    "Family": "harness.evaluate.family", "FamilyResult": "harness.evaluate.family",
    "ModelOutput": "harness.evaluate.family", "MetricValue": "harness.evaluate.family",
    "Effect": "harness.evaluate.family",
    "register_family": "harness.evaluate.registry",
    # multi-stage pipelines and the figures of a run
    "Pipeline": "harness.adapters.pipeline",
    "plot_reliability": "harness.evaluate.plots", "plot_calibration_by_segment": "harness.evaluate.plots",
    "plot_metric_curves": "harness.evaluate.plots", "save_figure": "harness.evaluate.plots",
    "plot_attribution_waterfall": "harness.evaluate.plots",
}

__all__ = sorted([*_EXPORTS, "AdapterError", "ConfigError", "DataValidationError", "HarnessError", "ResultsError",
                  "TrackingError", "__version__"])


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
