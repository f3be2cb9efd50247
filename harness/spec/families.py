"""``evaluate:``: one block per evaluation family (ranking, beyond-accuracy, calibration,
off-policy, slate off-policy), and the registry of blocks added by plug-in families."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from harness.spec.base import Strict as _Strict


class FamilySpec(_Strict):
    """Base of one ``evaluate.<family>`` block: the options of one evaluation family.

    ``compared_metrics`` are the metrics measured per unit, so candidate and baseline
    are compared on them and a gate may name them; ``dataset_problem`` says why a
    data set kind cannot feed this family (None when it can).
    """

    def compared_metrics(self) -> list[str]:
        return []

    def reported_metrics(self) -> list[str]:
        """Every metric the block reports, compared or not (e.g. catalogue-level ones)."""
        return self.compared_metrics()

    def dataset_problem(self, dataset_kind: str) -> str | None:
        return None


# config key under ``evaluate:`` -> block type of families added outside this module
# (see harness.evaluate.register_family); the built-in blocks are EvaluateSpec's fields
_PLUGIN_BLOCKS: dict[str, type[FamilySpec]] = {}


def register_family_spec(key: str, block: type[FamilySpec]) -> None:
    """Let ``evaluate.<key>`` hold a ``block`` (``harness.evaluate.register_family`` checks
    that the key is new)."""
    _PLUGIN_BLOCKS[key] = block


class RankingEval(FamilySpec):
    metrics: list[str] = Field(default_factory=lambda: ["ndcg@10", "recall@20"], min_length=1)
    ties: Literal["stable", "trec_eval", "average"] = "stable"
    missing: Literal["zero", "skip", "error"] = Field(
        "zero", description="a judged query a model ranks nothing for: scored 0, left out of the comparison, "
                            "or an error; counted and reported in every case")
    no_relevant: Literal["skip", "zero"] = Field(
        "skip", description="a judged query with no relevant item: left out of every mean (counted), or "
                            "scored 0 on every metric as trec_eval does")
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


class LabelsFile(_Strict):
    """Labelled (user, item) pairs in a Parquet/CSV file, in the data's own ids: the
    impressions with clicks, or any held-out set with a binary label."""

    path: str
    columns: dict[Literal["user", "item", "label"], str] = Field(
        default_factory=lambda: {"user": "user_id", "item": "item_id", "label": "label"})


class CalibrationEval(FamilySpec):
    """Calibration of models that implement ``predict_proba`` on labelled (user, item)
    rows: the user's own ``labels`` file, or on the synthetic world a click log drawn
    from known true probabilities (``harness.datasets.synthetic_clicks``)."""

    labels: LabelsFile | None = None

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

    def reported_metrics(self) -> list[str]:
        return list(self.metrics)

    def dataset_problem(self, dataset_kind: str) -> str | None:
        if dataset_kind != "synthetic" and self.labels is None:
            return ("needs labels (a file of labelled user, item pairs) or the synthetic dataset (its click log "
                    f"has known true probabilities); got dataset kind {dataset_kind!r} and no labels")
        return None


class SyntheticLogsSpec(_Strict):
    """Logged feedback simulated over the synthetic world (``datasets.synthetic_logs``)."""

    n_rounds: int = Field(20000, ge=10)
    temperature: float = Field(1.0, gt=0, description="logging softmax temperature (larger: more overlap)")
    noise: float = Field(0.5, ge=0)


class FeedbackFile(_Strict):
    """Logged feedback in a Parquet/CSV file, in the data's own user and item ids.

    ``columns`` maps the harness's names to the file's: ``context`` (the user id),
    ``action`` (the item shown), ``reward``, ``propensity`` (the logging probability of
    the shown item), and optionally ``position``.
    """

    path: str
    columns: dict[Literal["context", "action", "position", "reward", "propensity"], str] = Field(
        default_factory=lambda: {"context": "user_id", "action": "item_id", "reward": "reward",
                                 "propensity": "propensity"})
    context_features: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _required(self) -> "FeedbackFile":
        missing = [c for c in ("context", "action", "reward", "propensity") if c not in self.columns]
        if missing:
            raise ValueError(f"columns: needs {missing} (the file's column names)")
        return self


class OffPolicyEval(FamilySpec):
    """Counterfactual estimates of each model's top-1 policy from logged bandit feedback.

    ``feedback`` is a logged-feedback file: a mapping (``path``, ``columns``; ids are the
    data's own), or a path in the harness's own layout (``context_id``, ``action``,
    ``reward``, ``pscore`` as codes; ``harness.datasets.bandit``). ``synthetic`` simulates
    logs over the synthetic world instead.

    ``policy`` says how a model's ranking becomes the evaluation policy
    ``pi_e(a | user, position)``:

    - ``epsilon_greedy``: ``(1 - epsilon) 1{a = top_1(u)} + epsilon / n_actions`` at every
      position (the model picks one item per request);
    - ``top_k``: ``(1 - epsilon) 1{a = top_(p+1)(u)} + epsilon / n_actions`` at logged
      position ``p`` (the model fills the slots of the logged list in its order; the
      position model of ranked feeds);
    - ``softmax``: ``exp(s(u, a) / temperature) / sum_b exp(s(u, b) / temperature)`` over
      the items the model scores, at every position (items it does not return get 0).

    Estimators are names or mappings with parameters; a ``label`` names a copy, so one
    run may hold the same estimator twice (``{name: ips, lambda_: 20, label: ips_clip20}``).
    """

    feedback: FeedbackFile | str | None = None
    synthetic: SyntheticLogsSpec | None = None
    estimators: list[str | dict[str, Any]] = Field(default_factory=lambda: ["ips", "snips"], min_length=1)
    policy: Literal["epsilon_greedy", "top_k", "softmax"] = "epsilon_greedy"
    epsilon: float = Field(0.0, ge=0, le=1, description="exploration of epsilon_greedy and top_k policies")
    temperature: float = Field(1.0, gt=0, description="softmax policy: larger spreads the mass")
    reward_model: Literal["logistic", "ridge", "xgboost"] | None = None
    reward_design: Literal["dense", "sparse"] = Field(
        "dense", description="one-hot actions as a dense or a sparse design matrix (sparse: many actions)")
    reward_max_bytes: int = Field(1 << 30, ge=1 << 20, description="memory budget of reward-model blocks")
    n_folds: int = Field(3, ge=2)
    method: Literal["analytic", "bootstrap"] = "analytic"
    n_bootstrap: int = Field(1000, ge=100)
    resampling: Literal["multinomial", "poisson"] = Field(
        "multinomial", description="bootstrap resamples: n rows with replacement, or a Poisson(1) weight per row "
                                   "(drawn from (seed, replicate, row): what the Spark engine computes in parallel)")
    min_ess: float = Field(100.0, ge=0)
    min_ess_ratio: float = Field(0.01, ge=0, le=1)
    reward_range: tuple[float, float] | None = Field(
        None, description="[low, high] every logged reward lies in (e.g. [0, 1] for clicks): the policy values "
                          "do too, so their intervals and deltas are kept inside it")

    @model_validator(mode="after")
    def _source(self) -> "OffPolicyEval":
        if self.reward_range is not None and not self.reward_range[0] < self.reward_range[1]:
            raise ValueError(f"reward_range: needs low < high, got {list(self.reward_range)}")
        if (self.feedback is None) == (self.synthetic is None):
            raise ValueError("give exactly one of 'feedback' (a file) or 'synthetic'")
        from harness.metrics.ope_evaluate import make_estimator

        built = [make_estimator(e) for e in self.estimators]
        needs_model = [e.key for e in built if e.needs_reward_model]
        if needs_model and self.reward_model is None:
            raise ValueError(f"{needs_model} need a reward_model (logistic, ridge or xgboost)")
        keys = [e.key for e in built]
        twice = sorted({k for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"estimators: {twice} appear more than once; give each copy "
                             "its own label, e.g. {name: ips, lambda_: 20, label: ips_clip20}")
        if self.policy == "softmax" and self.epsilon:
            raise ValueError("epsilon applies to epsilon_greedy and top_k policies, not softmax (use temperature)")
        if self.policy != "softmax" and "temperature" in self.model_fields_set:
            raise ValueError(f"temperature applies to the softmax policy, not {self.policy} (use epsilon)")
        return self

    @property
    def estimator_names(self) -> list[str]:
        """The estimates' names in results: each estimator's ``label``, else its name."""
        from harness.metrics.ope_evaluate import make_estimator

        return [make_estimator(e).key for e in self.estimators]

    def compared_metrics(self) -> list[str]:
        return self.estimator_names

    def dataset_problem(self, dataset_kind: str) -> str | None:
        if self.synthetic is not None and dataset_kind != "synthetic":
            return "synthetic logs need the synthetic dataset"
        return None


class SlateFeedbackFile(_Strict):
    """Logged slates in a Parquet/CSV file, one row per slot, in the data's own ids.

    ``propensity`` is the logging policy's probability of the slot's item given the
    items above it (the cascade factor); the slate's joint propensity is their product.
    """

    path: str
    columns: dict[Literal["slate", "context", "action", "position", "reward", "propensity"], str] = Field(
        default_factory=lambda: {"slate": "slate_id", "context": "user_id", "action": "item_id",
                                 "position": "position", "reward": "reward", "propensity": "propensity"})


class SlateOffPolicyEval(FamilySpec):
    """Slate off-policy estimates: each model as a Plackett-Luce slate policy over its
    scores (``temperature``), from logged slates. ``sips`` weights every slot by the
    whole slate's propensity ratio, ``rips`` by the ratio down to the slot (cascade)."""

    feedback: SlateFeedbackFile
    estimators: list[Literal["sips", "rips"]] = Field(default_factory=lambda: ["sips", "rips"], min_length=1)
    temperature: float = Field(1.0, gt=0)

    def compared_metrics(self) -> list[str]:
        return [f"slate_{e}" for e in self.estimators]


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

    def reported_metrics(self) -> list[str]:
        return list(self.metrics)
