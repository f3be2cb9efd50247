"""The evaluation spec: YAML validated by pydantic. Unknown keys and wrong types are
``ConfigError``s that name the key; sections this build does not support are refused."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from harness.errors import ConfigError
from harness.options import check_confidence
from harness.spec.uris import is_external_baseline, parse_models_uri


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CandidatesSpec(_Strict):
    """What each query's ranking is judged among: the full catalogue (default), sampled
    negatives (seeded; not comparable with full-catalogue metrics, Krichene & Rendle
    2020), or a given table of (user, item) rows in raw ids (file-backed data sets)."""

    kind: Literal["full", "sampled", "given"] = "full"
    n_negatives: int = Field(100, ge=1)
    seed: int = 0
    path: str | None = None
    user: str = "user"
    item: str = "item"

    @model_validator(mode="after")
    def _given(self) -> "CandidatesSpec":
        if (self.kind == "given") != (self.path is not None):
            raise ValueError("candidates: kind 'given' needs a path (and only it takes one)")
        return self


class SyntheticDataset(_Strict):
    """The built-in synthetic world (see ``harness.datasets.make_synthetic``)."""

    kind: Literal["synthetic"] = "synthetic"
    n_users: int = Field(1000, ge=1)
    n_items: int = Field(500, ge=2)
    dim: int = Field(16, ge=1)
    n_train_per_user: int = Field(20, ge=0)
    popularity_strength: float = Field(0.5, ge=0)
    temperature: float = Field(0.5, gt=0)
    candidates: CandidatesSpec | None = None


# --- file-backed data sets (harness.datasets.movielens / .interactions) -------------------
class RandomSplit(_Strict):
    """A seeded uniform sample of interactions is held out."""

    kind: Literal["random"]
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int | None = Field(None, description="default: the config's seed")


class TemporalSplit(_Strict):
    """One global time cut: interactions after it are held out."""

    kind: Literal["temporal"]
    test_fraction: float | None = Field(None, gt=0, lt=1)
    cutoff: float | str | None = Field(None, description="timestamp (number, or ISO date for datetimes)")

    @field_validator("cutoff", mode="before")
    @classmethod
    def _yaml_date(cls, value: Any) -> Any:
        # YAML reads an unquoted 2024-06-15 as a date: keep it as the ISO text it was
        return value.isoformat() if hasattr(value, "isoformat") else value

    @model_validator(mode="after")
    def _one_cut(self) -> "TemporalSplit":
        if self.test_fraction is not None and self.cutoff is not None:
            raise ValueError("split temporal: give test_fraction or cutoff, not both")
        if self.test_fraction is None and self.cutoff is None:
            object.__setattr__(self, "test_fraction", 0.2)
        return self


class LeaveLastOutSplit(_Strict):
    """Each user's last k interactions (by time) are held out."""

    kind: Literal["leave_last_out"]
    k: int = Field(1, ge=1)


class TemporalRatioSplit(_Strict):
    """Each user's last floor(n_u * test_fraction) interactions (by time) are held out."""

    kind: Literal["temporal_ratio"]
    test_fraction: float = Field(0.2, gt=0, lt=1)


DataSplit = Annotated[Union[RandomSplit, TemporalSplit, LeaveLastOutSplit, TemporalRatioSplit],
                      Field(discriminator="kind")]


class RelevanceSpec(_Strict):
    """Relevance of held-out interactions: ``{from: rating, threshold: 4}``, ``{from: rating,
    grades: {4: 1, 5: 2}}``, ``{from: label}`` or ``{from: interaction}`` (every one is 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, serialize_by_alias=True)
    source: Literal["rating", "label", "interaction"] = Field("rating", alias="from")
    threshold: float | None = None
    grades: dict[float, int] | None = None

    @model_validator(mode="after")
    def _rule(self) -> "RelevanceSpec":
        if self.source != "rating" and (self.threshold is not None or self.grades is not None):
            raise ValueError(f"relevance: threshold/grades apply to ratings, not to from: {self.source}")
        if self.threshold is not None and self.grades is not None:
            raise ValueError("relevance: give threshold or grades, not both")
        if self.source == "rating" and self.threshold is None and self.grades is None:
            object.__setattr__(self, "threshold", 4.0)
        return self


class _FileDataset(_Strict):
    split: DataSplit = Field(default_factory=lambda: LeaveLastOutSplit(kind="leave_last_out", k=1))
    relevance: RelevanceSpec = Field(default_factory=RelevanceSpec)
    cold_start: Literal["keep", "exclude", "only"] = "keep"
    duplicates: Literal["error", "keep_last"] = "error"
    exclude_seen: bool = True
    candidates: CandidatesSpec | None = None

    @field_validator("exclude_seen")
    @classmethod
    def _seen(cls, value: bool) -> bool:
        if not value:
            raise ValueError("exclude_seen: false is not supported at the data set level by this build; "
                             "set models.<name>.params.exclude_seen: false on the models instead")
        return value


class MovielensDataset(_FileDataset):
    """A MovieLens folder (100K, 1M, 10M, 20M, 25M, latest; see ``harness.datasets.movielens``)."""

    kind: Literal["movielens"]
    path: str = Field(min_length=1)
    format: Literal["auto", "100k", "1m", "10m", "20m", "25m", "latest"] = "auto"


class ColumnMapping(_Strict):
    """Source column of each canonical column; user and item are required."""

    user: str
    item: str
    rating: str | None = None
    label: str | None = None
    timestamp: str | None = None


class FeatureTable(_Strict):
    path: str = Field(min_length=1)
    id_column: str | None = Field(None, description="default: the source column mapped to user/item")
    category_column: str | None = None
    category_separator: str = "|"


class InteractionsDataset(_FileDataset):
    """Interaction logs in Parquet or CSV with a column mapping (``harness.datasets.interactions``)."""

    kind: Literal["interactions"]
    path: str | list[str]
    columns: ColumnMapping
    delimiter: str | None = None
    name: str | None = None
    rating_min: float | None = None
    rating_max: float | None = None
    item_features: FeatureTable | None = None
    user_features: FeatureTable | None = None

    @model_validator(mode="after")
    def _relevance_column(self) -> "InteractionsDataset":
        source = self.relevance.source
        if source in ("rating", "label") and getattr(self.columns, source) is None:
            raise ValueError(f"relevance.from: {source} needs columns.{source} (or use from: interaction)")
        return self


def _dataset_kind(value: Any) -> str:
    return value.get("kind", "synthetic") if isinstance(value, dict) else getattr(value, "kind", "synthetic")


DatasetSpec = Annotated[Union[Annotated[SyntheticDataset, Tag("synthetic")],
                              Annotated[MovielensDataset, Tag("movielens")],
                              Annotated[InteractionsDataset, Tag("interactions")]],
                        Discriminator(_dataset_kind)]


class FamilySpec(_Strict):
    """Base of one ``evaluate.<family>`` block: the options of one evaluation family.

    ``compared_metrics`` are the metrics measured per unit, so candidate and baseline
    are compared on them and a gate may name them; ``dataset_problem`` says why a
    data set kind cannot feed this family (None when it can).
    """

    def compared_metrics(self) -> list[str]:
        return []

    def dataset_problem(self, dataset_kind: str) -> str | None:
        return None


# config key under ``evaluate:`` -> block type of families added outside this module
# (see harness.evaluate.register_family); the built-in blocks are EvaluateSpec's fields
_PLUGIN_BLOCKS: dict[str, type[FamilySpec]] = {}


def register_family_spec(key: str, block: type[FamilySpec]) -> None:
    """Let ``evaluate.<key>`` hold a ``block``; the key must not shadow a built-in one."""
    if key in EvaluateSpec.model_fields:
        raise ConfigError(f"evaluate.{key} is a built-in family block")
    _PLUGIN_BLOCKS[key] = block


class ModelSpec(_Strict):
    """One model: an adapter kind and its parameters."""

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class RankingEval(FamilySpec):
    metrics: list[str] = Field(default_factory=lambda: ["ndcg@10", "recall@20"], min_length=1)
    ties: Literal["stable", "trec_eval", "average"] = "stable"
    gain: Literal["linear", "exponential"] = "linear"
    relevance_threshold: int = Field(1, ge=1)
    k: int | None = Field(None, ge=1, description="depth asked of retrievers (default: largest cut-off)")

    @field_validator("metrics")
    @classmethod
    def _parse(cls, names: list[str]) -> list[str]:
        from harness.metrics import RANKING_METRICS
        from harness.metrics._names import parse_metric_names

        return [s.label for s in parse_metric_names(names, known=RANKING_METRICS)]

    def compared_metrics(self) -> list[str]:
        return list(self.metrics)


class CalibrationEval(FamilySpec):
    """Calibration of models that implement ``predict_proba``, on a click log with known
    true probabilities (``harness.datasets.synthetic_clicks``)."""

    metrics: list[str] = Field(default_factory=lambda: ["ece", "brier", "log_loss"], min_length=1)
    n_bins: int = Field(15, ge=1)
    strategy: Literal["uniform", "quantile"] = "uniform"
    eps: float = Field(1e-15, ge=0, lt=0.5, description="clipping of p for log loss and logit(p)")
    n_resamples: int = Field(1000, ge=100, description="bootstrap resamples of the ECE interval")
    segment_by: Literal["none", "item_popularity"] = "item_popularity"
    n_per_user: int = Field(20, ge=1, description="impressions per user in the click log")
    scale: float = Field(1.5, ge=0, description="weight of the true affinity in the true click probability")
    base_rate: float = Field(0.1, gt=0, lt=1, description="click probability of an average (user, item)")

    @field_validator("metrics")
    @classmethod
    def _parse(cls, names: list[str]) -> list[str]:
        from harness.metrics._names import parse_metric_names
        from harness.metrics.calibration import CALIBRATION_METRICS

        return [s.label for s in parse_metric_names(names, known=CALIBRATION_METRICS)]

    def compared_metrics(self) -> list[str]:
        """Row means (brier, log_loss) and the other sum statistics (ece, mce, ...)."""
        from harness.metrics.calibration_stats import STATISTIC_METRICS

        return [m for m in self.metrics if m in STATISTIC_METRICS]

    def dataset_problem(self, dataset_kind: str) -> str | None:
        if dataset_kind != "synthetic":
            return ("needs the synthetic dataset (its click log has known true probabilities); "
                    f"got dataset kind {dataset_kind!r}")
        return None


class SyntheticLogsSpec(_Strict):
    """Logged feedback simulated over the synthetic world (``datasets.synthetic_logs``)."""

    n_rounds: int = Field(20000, ge=10)
    temperature: float = Field(1.0, gt=0, description="logging softmax temperature (larger: more overlap)")
    noise: float = Field(0.5, ge=0)


class OffPolicyEval(FamilySpec):
    """Counterfactual estimates of each model's top-1 policy from logged bandit feedback.

    ``feedback`` is a logged-feedback file (``harness.datasets.bandit``; ``context_id``
    = user id, ``action`` = item id); ``synthetic`` simulates logs over the synthetic
    world instead. A model becomes the epsilon-greedy policy of its top-ranked item.
    """

    feedback: str | None = None
    synthetic: SyntheticLogsSpec | None = None
    estimators: list[str | dict[str, Any]] = Field(default_factory=lambda: ["ips", "snips"], min_length=1)
    epsilon: float = Field(0.0, ge=0, le=1, description="exploration of the model's policy")
    reward_model: Literal["logistic", "ridge", "xgboost"] | None = None
    n_folds: int = Field(3, ge=2)
    method: Literal["analytic", "bootstrap"] = "analytic"
    n_bootstrap: int = Field(1000, ge=100)
    min_ess: float = Field(100.0, ge=0)
    min_ess_ratio: float = Field(0.01, ge=0, le=1)

    @model_validator(mode="after")
    def _source(self) -> "OffPolicyEval":
        if (self.feedback is None) == (self.synthetic is None):
            raise ValueError("evaluate.off_policy: give exactly one of 'feedback' (a file) or 'synthetic'")
        from harness.metrics.ope_evaluate import make_estimator

        needs_model = [make_estimator(e).name for e in self.estimators if make_estimator(e).needs_reward_model]
        if needs_model and self.reward_model is None:
            raise ValueError(f"evaluate.off_policy: {needs_model} need a reward_model (logistic, ridge or xgboost)")
        return self

    @property
    def estimator_names(self) -> list[str]:
        from harness.metrics.ope_evaluate import make_estimator

        return [make_estimator(e).name for e in self.estimators]

    def compared_metrics(self) -> list[str]:
        return self.estimator_names

    def dataset_problem(self, dataset_kind: str) -> str | None:
        if self.synthetic is not None and dataset_kind != "synthetic":
            return "synthetic logs need the synthetic dataset"
        return None


class BeyondAccuracyEval(FamilySpec):
    """Beyond-accuracy metrics of the top-k lists: per user ``novelty@k``, ``arp@k``,
    ``ild@k`` (gateable); over the catalogue ``coverage@k``, ``gini@k``, ``personalization@k``."""

    metrics: list[str] = Field(min_length=1)

    @field_validator("metrics")
    @classmethod
    def _parse(cls, names: list[str]) -> list[str]:
        from harness.metrics.beyond_accuracy import BEYOND_METRICS
        from harness.metrics._names import parse_metric_names

        return [s.label for s in parse_metric_names(names, known=BEYOND_METRICS)]

    @property
    def per_user(self) -> list[str]:
        from harness.metrics._names import parse_label
        from harness.metrics.beyond_accuracy import PER_USER_METRICS

        return [m for m in self.metrics if parse_label(m).name in PER_USER_METRICS]

    def compared_metrics(self) -> list[str]:
        return self.per_user


class EvaluateSpec(BaseModel):
    """The evaluation families to run, one block each. Ranking always runs; the others
    run when their block is given. Families registered with
    ``harness.evaluate.register_family`` add their own block under their key."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ranking: RankingEval = Field(default_factory=RankingEval)
    beyond_accuracy: BeyondAccuracyEval | None = None
    calibration: CalibrationEval | None = None
    off_policy: OffPolicyEval | None = None

    @model_validator(mode="after")
    def _plugin_blocks(self) -> "EvaluateSpec":
        for key, raw in list((self.__pydantic_extra__ or {}).items()):
            if key not in _PLUGIN_BLOCKS:
                raise ValueError(f"unknown key {key!r}; families: "
                                 f"{', '.join([*type(self).model_fields, *_PLUGIN_BLOCKS])}")
            try:
                self.__pydantic_extra__[key] = _PLUGIN_BLOCKS[key].model_validate(raw)
            except ValidationError as exc:
                raise ValueError(f"{key}: " + "; ".join(
                    f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())) from None
        return self

    def blocks(self) -> dict[str, FamilySpec]:
        """Every configured family block by key, built-in ones first."""
        out = {key: getattr(self, key) for key in type(self).model_fields if getattr(self, key) is not None}
        return {**out, **(self.__pydantic_extra__ or {})}


class CompareSpec(_Strict):
    """Paired comparison of each candidate with the baseline.

    ``method: auto`` (default) picks per metric kind: the paired t-test (Fieller's
    interval for relative deltas) for heavy-tailed metrics, the bootstrap for bounded
    ones (see docs/ci-gate.md). ``n_resamples`` left unset is chosen from the gate's
    family size and alpha so that the resampling floor 1/(B+1) never blocks a decision.
    """

    baseline: str
    candidates: list[str] = Field(min_length=1)
    method: Literal["auto", "bootstrap", "bca", "t_test", "randomization"] = "auto"
    n_resamples: int | None = Field(None, ge=100)
    confidence: float = 0.95
    correction: Literal["holm", "bh", "none"] = "holm"

    @field_validator("confidence")
    @classmethod
    def _confidence(cls, value: float) -> float:
        return check_confidence(value, name="")


class GateCriterion(_Strict):
    """One gate line. ``direction`` says which way is better; a primary metric must
    improve by more than ``min_improvement``; a guardrail must be shown to regress by
    less than ``max_regression`` (absolute, or a fraction of the baseline with
    ``relative``)."""

    metric: str
    role: Literal["primary", "guardrail"]
    direction: Literal["higher", "lower"] = "higher"
    min_improvement: float = Field(0.0, ge=0)
    max_regression: float | None = Field(None, ge=0)
    relative: bool = False
    alpha: float = Field(0.05, gt=0, lt=0.5)

    @model_validator(mode="after")
    def _margins(self) -> "GateCriterion":
        if self.role == "guardrail" and self.max_regression is None:
            raise ValueError(f"gate criterion {self.metric!r}: a guardrail needs max_regression")
        if self.role == "primary" and self.max_regression is not None:
            raise ValueError(f"gate criterion {self.metric!r}: max_regression is for guardrails; "
                             "a primary metric uses min_improvement")
        return self


class PromoteSpec(_Strict):
    """On PASS, point ``alias`` of ``registered_model`` at the candidate's version."""

    registered_model: str = Field(min_length=1)
    alias: str = Field("champion", pattern=r"^[A-Za-z0-9_\-]+$")


class TrackingSpec(_Strict):
    enabled: bool = True
    uri: str | None = None
    experiment: str | None = None
    promote: PromoteSpec | None = None


class EvalConfig(_Strict):
    """A whole evaluation: data, models, metrics, comparison, gate, tracking, output."""

    name: str = Field(min_length=1)
    seed: int = 0
    dataset: DatasetSpec
    models: dict[str, ModelSpec] = Field(min_length=1)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    compare: CompareSpec | None = None
    gate: list[GateCriterion] = Field(default_factory=list)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    output: str = "results"

    @model_validator(mode="after")
    def _cross_refs(self) -> "EvalConfig":
        if self.compare is not None:
            baseline = [] if is_external_baseline(self.compare.baseline) else [("baseline", self.compare.baseline)]
            for role, name in baseline + [("candidates", c) for c in self.compare.candidates]:
                if name not in self.models:
                    raise ValueError(f"compare.{role}: {name!r} is not one of models: {sorted(self.models)}")
            if self.compare.baseline in self.compare.candidates:
                raise ValueError("compare: the baseline cannot also be a candidate")
        if self.gate and self.compare is None:
            raise ValueError("gate: needs a 'compare' section naming baseline and candidates")
        if self.tracking.promote is not None:
            self._check_promotable(self.tracking.promote)
        metrics: set[str] = set()
        for key, block in self.evaluate.blocks().items():
            problem = block.dataset_problem(self.dataset.kind)
            if problem is not None:
                raise ValueError(f"evaluate.{key}: {problem}")
            metrics |= set(block.compared_metrics())
        for i, crit in enumerate(self.gate):
            if crit.metric not in metrics:
                raise ValueError(f"gate[{i}].metric: {crit.metric!r} is not evaluated; "
                                 f"evaluated: {sorted(metrics)}")
        return self


    def _check_promotable(self, promote: PromoteSpec) -> None:
        if self.compare is None or len(self.compare.candidates) != 1:
            raise ValueError("tracking.promote: needs a 'compare' section with exactly one candidate")
        name = self.compare.candidates[0]
        spec = self.models[name]
        uri = spec.params.get("uri", "")
        if spec.kind != "mlflow" or not str(uri).startswith("models:/"):
            raise ValueError(f"tracking.promote: candidate {name!r} must be a registered model version "
                             "(kind: mlflow, params: {uri: models:/NAME/VERSION})")
        if parse_models_uri(str(uri)).name != promote.registered_model:
            raise ValueError(f"tracking.promote: candidate {name!r} ({uri}) is not a version of "
                             f"{promote.registered_model!r}")


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {where}: {msg}")
    return f"invalid config {source}:\n" + "\n".join(lines)


def parse_config(data: Any, *, source: str = "<dict>") -> EvalConfig:
    """Validate a config mapping; raise ``ConfigError`` naming each bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: expected a mapping at the top level, "
                          f"got {type(data).__name__}")
    try:
        return EvalConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def read_yaml(path: str | Path, *, label: str) -> Any:
    """Parse a YAML file; a missing file or malformed YAML is a ``ConfigError`` naming ``label``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{label} file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label} {path}: malformed YAML: {exc}") from None


def load_config(path: str | Path) -> EvalConfig:
    """Read and validate a YAML config file."""
    return parse_config(read_yaml(path, label="config"), source=str(path))


def load_criteria(raw: list, *, source: str = "the candidate run's config") -> list:
    """Validate gate criteria given as plain mappings; errors name each bad key."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(list[GateCriterion]).validate_python(raw)
    except ValidationError as exc:
        lines = [f"  gate[{'.'.join(str(p) for p in e['loc'])}]: {e['msg'].removeprefix('Value error, ')}"
                 for e in exc.errors()]
        raise ConfigError(f"{source}: invalid gate criteria:\n" + "\n".join(lines)) from None


def load_gate_file(path: str) -> list:
    """Gate criteria from a YAML file: a list of criteria, or a mapping with a ``gate`` key."""
    raw = read_yaml(path, label="--gate")
    if isinstance(raw, dict):
        raw = raw.get("gate")
    if not isinstance(raw, list):
        raise ConfigError(f"--gate {path}: expected a list of criteria or a mapping with a 'gate' list")
    return load_criteria(raw, source=f"--gate {path}")
