"""``harness validate``: the dry run of ``harness run``.

Everything ``run`` would refuse is refused here, with the same error, before any
model is fitted: the config (keys, types, references, adapter kinds), the data set
(files, schema, split, candidates), every model's construction (files, checkpoints,
parameters, with "did you mean" for near misses), every family's inputs (click logs,
logged feedback files and their propensities) and the output folder. ``run`` makes
the same checks first, so a bad output folder is found before the first model runs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from harness.adapters.registry import build_config_model, check_model_kinds
from harness.errors import ConfigError
from harness.evaluate import Evaluation
from harness.evaluate.data import load_dataset, load_segments
from harness.evaluate.sources import SourceCollection, collection_sources
from harness.spec.config import EvalConfig, read_yaml
from harness.spec.config import load_config as parse_config_file
from harness.types import Dataset


@dataclass
class DryRun:
    """What a dry run resolved: the data set, and the models built (not fitted)."""

    config: EvalConfig
    dataset: Dataset | SourceCollection  # the latter: tables a Spark run reads where it computes
    models: dict[str, object]
    evaluation: Evaluation

    def __repr__(self) -> str:  # a line, not the data set's every id and table
        return (f"DryRun(config={self.config.name!r}, dataset={self.dataset.name!r} "
                f"({self.dataset.n_users} users, {self.dataset.n_items} items), models={list(self.models)}, "
                f"families={[f.key for f in self.evaluation.families]})")


def load_config(path: str | Path) -> EvalConfig:
    """Read and validate a YAML config: the schema, then what needs the adapter registry."""
    config = parse_config_file(path)
    check_model_kinds({name: spec.kind for name, spec in config.models.items()})
    return config


def check_output(folder: str | Path, *, fix: str = "set 'output' in the config or pass --output") -> Path:
    """The results root must be writable, or creatable where it does not exist yet;
    checked without leaving anything behind (a probe file is written and removed).
    ``fix`` says how the user changes it (commands without a config: their option)."""
    root = Path(folder)
    existing = root
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"output folder {root}: {existing} is a file, not a folder; {fix}")
    probe = existing / f".harness-write-check-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        where = "" if existing == root else f" ({existing} cannot hold new folders)"
        raise ConfigError(f"output folder {root}: not writable{where}: {exc.strerror or exc}; {fix}") from None
    return root


def check_output_file(path: str | Path, *, fix: str) -> Path:
    """A file to write (a report): not an existing folder, in a folder that is writable
    or can be created (:func:`check_output`)."""
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"output file {target}: is a folder; {fix}")
    check_output(target.parent, fix=fix)
    return target


def dry_run(config: EvalConfig, *, output: str | Path | None = None) -> DryRun:
    """Resolve everything ``run`` needs without fitting or scoring a model."""
    check_model_kinds({name: spec.kind for name, spec in config.models.items()})
    check_output(output or config.output)
    if config.engine.kind == "spark":  # installed? (the session itself starts with the run)
        from harness.spark.session import require_pyspark

        require_pyspark()
    collection = collection_sources(config) if config.engine.kind == "spark" else None
    if collection is not None:  # tables the run leaves to Spark: their names checked, nothing read
        from harness.spark.collection import check_sources

        check_sources(collection)
        evaluation = Evaluation(config.evaluate.blocks(), collection, seed=config.seed, confidence=0.95)
        return DryRun(config, collection, dict(collection.runs), evaluation)
    dataset = load_dataset(config)
    if config.attribution is not None and config.attribution.segments is not None:
        load_segments(config.attribution.segments, dataset)
    baseline = config.compare.baseline if config.compare else ""
    if baseline.startswith("runs:/"):  # what run reuses: a child run, of this data, with these metrics
        from harness.tracking.prior_runs import load_prior_run
        from harness.tracking.store import resolve_uri

        load_prior_run(baseline, fingerprint=dataset.fingerprint, metrics=config.evaluate.ranking.metrics,
                       tracking_uri=resolve_uri(config.tracking.uri))
    models = {name: build_config_model(name, spec.kind, spec.params, dataset, config.seed)
              for name, spec in config.models.items()
              if not (spec.kind == "mlflow" and str(spec.params.get("uri", "")).startswith(("models:/", "runs:/")))}
    confidence = config.compare.confidence if config.compare else 0.95
    evaluation = Evaluation(config.evaluate.blocks(), dataset, seed=config.seed, confidence=confidence)
    evaluation.check_gate([c.metric for c in config.gate],
                          {n: m for n, m in models.items() if n in config.gated_models()})
    evaluation.check_stored({n: m for n, m in models.items() if config.models[n].kind == "precomputed"})
    return DryRun(config, dataset, models, evaluation)


def validate(path: str | Path, *, output: str | Path | None = None) -> DryRun:
    """``harness validate PATH``: load the config and dry-run it."""
    read_yaml(path, label="config")  # a missing or malformed file first, named as such
    return dry_run(load_config(path), output=output)
