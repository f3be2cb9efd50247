"""The evaluation spec: YAML validated by pydantic. Unknown keys and wrong types are
``ConfigError``s that name the key; sections this build does not support are refused."""

from __future__ import annotations

import difflib
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, Tag, field_validator, model_validator

from harness.errors import ConfigError
from harness.metrics.attribution import parse_term
from harness.options import check_confidence
from harness.spec.uris import is_external_baseline, parse_models_uri
from harness.spec.attribution import AttributionSpec, attribution_labels, pipeline_stage_names
from harness.spec.base import Strict as _Strict
from harness.spec.data import DatasetSpec
from harness.spec.families import (_PLUGIN_BLOCKS, BeyondAccuracyEval, CalibrationEval, FamilySpec, OffPolicyEval,
                                   RankingEval, SlateOffPolicyEval)

__all__ = ["AttributionSpec", "BeyondAccuracyEval", "CalibrationEval", "CompareSpec", "DatasetSpec", "EngineSpec",
           "EvalConfig", "EvaluateSpec",
           "FamilySpec", "GateCriterion", "ModelSpec", "OffPolicyEval", "PromoteSpec", "RankingEval",
           "SlateOffPolicyEval", "TrackingSpec", "load_config", "load_criteria", "load_gate_file", "parse_config",
           "read_yaml"]


class ModelSpec(_Strict):
    """One model: an adapter kind and its parameters."""

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)


class EvaluateSpec(BaseModel):
    """The evaluation families to run, one block each. Ranking always runs; the others
    run when their block is given. Families registered with
    ``harness.evaluate.register_family`` add their own block under their key."""

    model_config = ConfigDict(extra="allow", frozen=True)

    ranking: RankingEval = Field(default_factory=RankingEval)
    beyond_accuracy: BeyondAccuracyEval | None = None
    calibration: CalibrationEval | None = None
    off_policy: OffPolicyEval | None = None
    slate_off_policy: SlateOffPolicyEval | None = None

    @model_validator(mode="after")
    def _plugin_blocks(self) -> "EvaluateSpec":
        for key, raw in list((self.__pydantic_extra__ or {}).items()):
            if key == "ab":
                raise ValueError("ab: an A/B test compares the variants in its data, not this run's models; "
                                 "analyse it with 'harness ab DATA --config AB.yaml'")
            if key not in _PLUGIN_BLOCKS:
                families = [*type(self).model_fields, *_PLUGIN_BLOCKS]
                close = difflib.get_close_matches(key, families, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ValueError(f"unknown key {key!r}; {hint}families: {', '.join(families)}")
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


class EngineSpec(_Strict):
    """Where the families' numbers are computed: ``local`` (NumPy/numba in this process)
    or ``spark`` (the same kernels in Spark's Python workers; ``master``, ``conf`` and
    ``app_name`` configure the session, unless one is already active). Both give the same
    numbers; the Spark engine runs the ranking and off_policy families."""

    kind: Literal["local", "spark"] = "local"
    master: str | None = None
    conf: dict[str, str | int | float | bool] = Field(default_factory=dict)
    app_name: str = Field("recsys-harness", min_length=1)

    # families the Spark engine computes; the others are refused, never run locally unasked
    SPARK_FAMILIES: ClassVar[tuple[str, ...]] = ("ranking", "off_policy")

    @model_validator(mode="after")
    def _local_has_no_session(self) -> "EngineSpec":
        if self.kind == "local" and (self.master is not None or self.conf):
            raise ValueError("engine: master and conf configure a Spark session; set kind: spark")
        return self


# the comparison methods the Spark engine computes from distributed per-unit values (bca and
# randomization need every value in one process)
SPARK_COMPARE_METHODS = ("auto", "bootstrap", "t_test")


class EvalConfig(_Strict):
    """A whole evaluation: data, models, metrics, comparison, gate, tracking, output."""

    name: str = Field(min_length=1)
    seed: int = 0
    dataset: DatasetSpec
    models: dict[str, ModelSpec] = Field(min_length=1)
    evaluate: EvaluateSpec = Field(default_factory=EvaluateSpec)
    compare: CompareSpec | None = None
    gate: list[GateCriterion] = Field(default_factory=list)
    attribution: AttributionSpec | None = None
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    engine: EngineSpec = Field(default_factory=EngineSpec)
    output: str = "results"

    def gated_models(self) -> list[str]:
        """The models the gate judges: the compared baseline and candidates (none without
        a gate or a compare section)."""
        if not self.gate or self.compare is None:
            return []
        return [self.compare.baseline, *self.compare.candidates]

    def reads_tables(self) -> bool:
        """True when a backend can measure every model from tables it reads where it
        computes: a ``trec`` data set, every model a ``precomputed`` score table (params
        ``path``, ``missing``, ``format``, ``name`` only, with valid values), only the
        ranking family, no baseline from a registry (``models:/``). Under the Spark engine
        such a run keeps its per-query values in Spark (``harness.evaluate.sources``)."""
        if self.dataset.kind != "trec" or set(self.evaluate.blocks()) != {"ranking"}:
            return False
        if self.compare is not None and self.compare.baseline.startswith("models:/"):
            return False
        for model in self.models.values():
            params = model.params
            if (model.kind != "precomputed" or "path" not in params
                    or set(params) - {"path", "missing", "format", "name"}
                    or params.get("missing", "error") not in ("error", "empty")
                    or params.get("format", "auto") not in ("auto", "table", "trec")):
                return False
        return True

    @model_validator(mode="after")
    def _spark_families(self) -> "EvalConfig":
        if self.engine.kind != "spark":
            return self
        other = [k for k in self.evaluate.blocks() if k not in EngineSpec.SPARK_FAMILIES]
        if other:
            raise ValueError(f"engine: kind spark computes {list(EngineSpec.SPARK_FAMILIES)}; evaluate.{other[0]} "
                             "is not supported on Spark yet (remove it, or use engine kind local)")
        ope = self.evaluate.off_policy
        if ope is not None and ope.method == "bootstrap" and ope.resampling != "poisson":
            raise ValueError("engine: kind spark: evaluate.off_policy.method bootstrap resamples with the local "
                             "multinomial stream, which Spark cannot draw in parallel; set resampling: poisson "
                             "(the same intervals on both engines), or use method analytic")
        if self.compare is not None and self.compare.method not in SPARK_COMPARE_METHODS and self.reads_tables():
            raise ValueError(f"engine: kind spark: compare.method {self.compare.method} needs every per-query value "
                             "in one process, but this run keeps them in Spark (a trec collection of score tables); "
                             "set compare.method to auto, bootstrap or t_test (the same numbers as the local "
                             "engine), or use engine kind local")
        return self

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
        if self.dataset.kind == "trec":
            trained = sorted(name for name, spec in self.models.items() if spec.kind != "precomputed")
            for name in trained:  # a misspelt kind is a typo, not a model that trains
                kind = self.models[name].kind
                if difflib.get_close_matches(kind, ["precomputed"], n=1):
                    raise ValueError(f"models.{name}.kind: unknown kind {kind!r}; did you mean 'precomputed'? "
                                     "(a trec dataset has no training data: every model is a precomputed run)")
            if trained:
                raise ValueError(f"models: {trained} need training data, which a trec dataset (qrels only) does "
                                 "not have; score them elsewhere and give their runs as kind: precomputed")
        metrics: set[str] = set()
        reported: set[str] = set()
        for key, block in self.evaluate.blocks().items():
            problem = block.dataset_problem(self.dataset.kind)
            if problem is not None:
                raise ValueError(f"evaluate.{key}: {problem}")
            metrics |= set(block.compared_metrics())
            reported |= set(block.reported_metrics())
        if self.attribution is not None:
            metrics |= self._check_attribution(self.attribution)
        for i, crit in enumerate(self.gate):
            try:
                term = parse_term(crit.metric)
            except ConfigError as exc:
                raise ValueError(f"gate[{i}].metric: {exc}") from None
            if term is not None and self.attribution is None:
                raise ValueError(f"gate[{i}].metric: {crit.metric!r} names an attribution term; it needs an "
                                 "'attribution' section (run by 'harness attribute')")
            if crit.metric in metrics:
                continue
            if crit.metric in reported:
                raise ValueError(f"gate[{i}].metric: {crit.metric!r} is evaluated but cannot be gated: it is one "
                                 "number for the whole data (e.g. catalogue coverage, a fitted slope), with no "
                                 f"per-unit values to pair; gateable: {sorted(metrics)}")
            close = difflib.get_close_matches(crit.metric, sorted(metrics), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"gate[{i}].metric: {crit.metric!r} is not evaluated{hint} "
                             f"(evaluated and gateable: {sorted(metrics)})")
        return self


    def attribution_pair(self) -> tuple[str, str]:
        """(baseline, candidate) of ``attribution``: its own, else ``compare``'s."""
        spec = self.attribution or AttributionSpec()
        compare = self.compare
        baseline = spec.baseline or (compare.baseline if compare else None)
        candidate = spec.candidate or (compare.candidates[0] if compare and len(compare.candidates) == 1 else None)
        if baseline is None or candidate is None:
            raise ValueError("attribution: name baseline and candidate (or give a compare section with one candidate)")
        return baseline, candidate

    def attribution_metrics(self) -> list[str]:
        """``attribution.metrics``, else ``evaluate.ranking.metrics``."""
        spec = self.attribution or AttributionSpec()
        return list(spec.metrics or self.evaluate.ranking.metrics)

    def _check_attribution(self, spec: AttributionSpec) -> set[str]:
        """Both sides are pipelines of this config with the same stages; returns the term
        labels a gate may name."""
        pair = self.attribution_pair()
        stages = []
        for role, name in zip(("baseline", "candidate"), pair):
            if name not in self.models:
                raise ValueError(f"attribution.{role}: {name!r} is not one of models: {sorted(self.models)}")
            names = pipeline_stage_names(self.models[name].kind, self.models[name].params)
            if names is None:
                raise ValueError(f"attribution.{role}: model {name!r} is kind {self.models[name].kind!r}; "
                                 "stage attribution needs two 'kind: pipeline' models")
            stages.append(names)
        if stages[0] != stages[1]:
            raise ValueError(f"attribution: {pair[0]!r} has stages {stages[0]} and {pair[1]!r} has {stages[1]}; "
                             "both pipelines need the same stage names in the same order")
        if pair[0] == pair[1]:
            raise ValueError("attribution: baseline and candidate must be different models")
        return attribution_labels(stages[0], self.attribution_metrics())

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


def _sections(annotation: Any) -> list[tuple[type[BaseModel], set[str]]]:
    """The config section types an annotation names (``X | None``, a tagged union of
    kinds), each with its union tags (its ``kind`` values and ``Tag``s)."""
    metadata: tuple = ()
    if typing.get_origin(annotation) is typing.Annotated:
        annotation, *rest = typing.get_args(annotation)
        metadata = tuple(rest)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        kind = annotation.model_fields.get("kind")
        tags = {str(t) for t in typing.get_args(kind.annotation)} if kind is not None else set()
        return [(annotation, tags | {m.tag for m in metadata if isinstance(m, Tag)})]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [section for member in typing.get_args(annotation) for section in _sections(member)]
    return []


def _schema_path(root: type[BaseModel], loc: tuple) -> tuple[tuple, list[str]]:
    """``loc`` (in a ``root`` config) as the user wrote it (pydantic adds a tagged union's tag, as in
    ``dataset.movielens.split``), and the keys the schema allows at its end (for "did you
    mean"; empty where it does not lead to a section). Through list indices and mapping
    keys: ``("gate", 0)``, ``("models", "cand")``."""
    annotation: Any = root
    written: list = []
    for key in loc:
        written.append(key)
        if annotation is None:
            continue
        if typing.get_origin(annotation) in (list, tuple, dict):  # an index or a mapping's key
            annotation = typing.get_args(annotation)[-1]
            continue
        sections = _sections(annotation)
        tagged = [model for model, tags in sections if len(sections) > 1 and key in tags]
        if tagged:  # the union member pydantic chose: not a key of the config
            written.pop()
            annotation = tagged[0]
            continue
        field = sections[0][0].model_fields.get(str(key)) if len(sections) == 1 else None
        annotation = field.annotation if field is not None else None
    sections = _sections(annotation) if annotation is not None else []
    return tuple(written), list(sections[0][0].model_fields) if len(sections) == 1 else []


def _format_errors(root: type[BaseModel], exc: ValidationError, source: str) -> str:
    lines = []
    for err in exc.errors():
        written, _ = _schema_path(root, err["loc"])
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in written).lstrip(".")  # gate[0].metric
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(err["loc"][-1]), _schema_path(root, err["loc"][:-1])[1], n=1)
            msg = "unknown key" + (f"; did you mean {close[0]!r}?" if close else "")
        elif err["type"] == "union_tag_invalid":  # a section's kind (pydantic names its discriminator function)
            tag, known = str(err["ctx"]["tag"]), [t.strip(" '") for t in str(err["ctx"]["expected_tags"]).split(",")]
            close = difflib.get_close_matches(tag, known, n=1)
            where += ".kind"
            msg = (f"unknown kind {tag!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                   + f" (known: {', '.join(known)})")
        lines.append(f"  {where}: {msg}" if where else f"  {msg}")
    return f"invalid config {source}:\n" + "\n".join(lines)


M = TypeVar("M", bound=BaseModel)


def validate_mapping(model: type[M], data: Any, *, source: str) -> M:
    """Validate a config mapping as ``model``; raise ``ConfigError`` naming each bad key."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid config {source}: expected a mapping at the top level, "
                          f"got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(model, exc, source)) from None


def parse_config(data: Any, *, source: str = "<dict>") -> EvalConfig:
    """Validate a config mapping; raise ``ConfigError`` naming each bad key."""
    return validate_mapping(EvalConfig, data, source=source)


def read_yaml(path: str | Path, *, label: str) -> Any:
    """Parse a YAML file; a missing file or malformed YAML is a ``ConfigError`` naming ``label``."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{label} file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ConfigError(f"{label} {path}: not a text file (expected YAML)") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{label} {path}: malformed YAML: {exc}") from None


def load_config(path: str | Path) -> EvalConfig:
    """Read and validate a YAML config file."""
    return parse_config(read_yaml(path, label="config"), source=str(path))


class _GateSection(_Strict):
    """Gate criteria on their own (a --gate file, a stored run's config), validated and
    reported as the run config's ``gate`` is: ``gate[0].directon: unknown key; did you mean``."""

    gate: list[GateCriterion]


def load_criteria(raw: list, *, source: str = "the candidate run's config") -> list:
    """Validate gate criteria given as plain mappings; errors name each bad key."""
    return validate_mapping(_GateSection, {"gate": raw}, source=source).gate


def load_gate_file(path: str) -> list:
    """Gate criteria from a YAML file: a list of criteria, or a mapping with a ``gate`` key."""
    raw = read_yaml(path, label="--gate")
    if isinstance(raw, dict):
        raw = raw.get("gate")
    if not isinstance(raw, list):
        raise ConfigError(f"--gate {path}: expected a list of criteria or a mapping with a 'gate' list")
    return load_criteria(raw, source=f"--gate {path}")
