"""The off-policy family: what each model would earn, estimated from logged feedback.

Units are logged rows. A model (a Retriever) becomes the epsilon-greedy policy of its
top-ranked item for each logged user: ``pi_e(a | u) = (1 - eps) [a = top(u)] + eps /
n_items``. The per-row values are each estimator's influence values (their mean is
the estimate), so candidate and baseline are compared row by row on the same logs.
An estimate with too little overlap with the logs (low effective sample size, a heavy
Pareto tail of the weights, thin actions; see ``harness.metrics.ope_diagnostics``) is
capped: its comparisons can FAIL but never PASS.
"""

from __future__ import annotations

import sys
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import AdapterError, ConfigError
from harness.evaluate.family import Family, FamilyResult, MetricValue, ModelOutput
from harness.evaluate.model_view import ModelView
from harness.spec.families import OffPolicyEval
from harness.types import Dataset

_REWARD_MODELS = {
    "logistic": ("sklearn.linear_model", "LogisticRegression", {"max_iter": 500}),
    "ridge": ("sklearn.linear_model", "Ridge", {"alpha": 1.0}),
    "xgboost": ("xgboost", "XGBClassifier", {"n_estimators": 50, "max_depth": 3, "n_jobs": 1}),
}


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_feedback(spec: OffPolicyEval, dataset: Dataset, seed: int) -> tuple[Any, Any]:
    """``(LoggedFeedback, SyntheticLogs or None)`` for the ``evaluate.off_policy`` section."""
    if spec.synthetic is not None:
        from harness.datasets.synthetic_logs import make_logged_feedback

        logs = make_logged_feedback(dataset, n_rounds=spec.synthetic.n_rounds, temperature=spec.synthetic.temperature,
                                    noise=spec.synthetic.noise, seed=seed + 2)
        return logs.feedback, logs
    if not isinstance(spec.feedback, str):  # a file in the data's own ids
        from harness.datasets.bandit import load_logged_feedback

        f = spec.feedback
        feedback = load_logged_feedback(f.path, columns=f.columns, dataset=dataset, context_features=f.context_features)
        return feedback, None
    from harness.datasets.bandit import read_logged_feedback

    feedback = read_logged_feedback(spec.feedback, n_actions=dataset.n_items)
    if feedback.context_id is None:
        raise ConfigError(f"evaluate.off_policy.feedback {spec.feedback}: needs a context_id column (the user id)")
    unknown = feedback.context_id >= dataset.n_users
    if unknown.any():
        raise ConfigError(f"evaluate.off_policy.feedback: {int(unknown.sum())} rows have a context_id "
                          f"(user) the dataset does not know (n_users={dataset.n_users})")
    return feedback, None


class OffPolicyFamily(Family[OffPolicyEval]):
    key = "off_policy"
    unit = "logged_row"
    spec_type = OffPolicyEval

    def __init__(self, spec: OffPolicyEval, dataset: Dataset, *, seed: int, confidence: float) -> None:
        super().__init__(spec, dataset, seed=seed, confidence=confidence)
        self.feedback, self.logs = load_feedback(spec, dataset, seed)
        # every user of a synthetic world (its exact value averages over all of them)
        self.users = (np.arange(dataset.n_users) if self.logs is not None
                      else np.unique(self.feedback.context_id))
        self.unit_ids = pd.Index(pd.RangeIndex(len(self.feedback)).astype(str), name="unit_id")
        self.true_values: dict[str, float] = {}

    def compared(self) -> list[str]:
        return self.spec.estimator_names

    @cached_property
    def reward_fit(self) -> Any:
        """The cross-fitted reward model (None without ``reward_model``), fitted on first use."""
        return self._fit_reward_model() if self.spec.reward_model else None

    def _fit_reward_model(self) -> Any:
        import importlib

        from harness.models.reward_model import fit_reward_model

        module, cls, params = _REWARD_MODELS[self.spec.reward_model]
        model = getattr(importlib.import_module(module), cls)(**params)
        _say(f"off-policy: cross-fitting a {self.spec.reward_model} reward model on {len(self.feedback)} rows")
        return fit_reward_model(self.feedback, model, n_folds=self.spec.n_folds, seed=self.seed,
                                max_bytes=self.spec.reward_max_bytes, design=self.spec.reward_design)

    def _v_hat(self, top: np.ndarray, eps: float) -> np.ndarray:
        """v_hat[i] = sum_a pi_e(a | x_i) q_hat(x_i, a) of the epsilon-greedy top-1 policy,
        in blocks of (rows x actions) under the reward model's memory budget."""
        from harness.models.policies import EpsilonGreedyPolicy

        n_actions = self.feedback.n_actions

        def one_hot(contexts: np.ndarray) -> np.ndarray:  # the model's top item as the only score
            scores = np.zeros((len(contexts), n_actions))
            scores[np.arange(len(contexts)), top[contexts]] = 1.0
            return scores

        batch = max(1, self.spec.reward_max_bytes // (8 * 4 * n_actions))
        return self.reward_fit.expected_reward(EpsilonGreedyPolicy(one_hot, epsilon=eps, batch_size=batch),
                                               contexts=self.feedback.context_id, batch_size=batch)

    def measure(self, view: ModelView) -> ModelOutput | None:
        """Turn the model into a policy and estimate its value on the logged rows."""
        from harness.metrics import OPEInputs, evaluate_off_policy

        if not view.is_retriever:
            _say(f"off-policy: {view.name} has no retrieve(); skipped")
            return None
        ranking = view.retrieve(self.users, 1)
        top = np.full(int(self.users.max()) + 1, -1, dtype=np.int64)
        top[self.users] = ranking.items[:, 0]
        fb, eps = self.feedback, self.spec.epsilon
        top_of_row = top[fb.context_id]
        if (top_of_row < 0).any():
            raise AdapterError(f"model {view.name!r} recommends nothing to {int((top_of_row < 0).sum())} "
                               "logged rows' users")
        pi_e = (1 - eps) * (top_of_row == fb.action) + eps / fb.n_actions
        data = OPEInputs(reward=fb.reward, pscore=fb.pscore, pi_e=pi_e, action=fb.action,
                         q_hat=self.reward_fit.q_hat if self.reward_fit else None,
                         v_hat=self._v_hat(top, eps) if self.reward_fit else None)
        s = self.spec
        result = evaluate_off_policy(data, s.estimators, method=s.method, n_bootstrap=s.n_bootstrap,
                                     seed=self.seed, min_ess=s.min_ess, min_ess_ratio=s.min_ess_ratio)
        if self.logs is not None:
            self.true_values[view.name] = self._true_value(top, eps)
        caps = {m: f"too little overlap with the logs: {d.overlap_reason}"
                for m, d in result.diagnostics.items() if d.low_overlap}
        values = [MetricValue(r["estimator"], r["value"], r["ci_low"], r["ci_high"], r["n_units"])
                  for r in result.rows]
        return ModelOutput(per_unit=pd.DataFrame(result.per_unit, index=self.unit_ids), values=values,
                           caps=caps, info={"estimates": result.rows})

    def _true_value(self, top: np.ndarray, eps: float) -> float:
        """Exact value of the epsilon-greedy top-1 policy: the synthetic logs draw users
        uniformly, so V = mean_u [(1 - eps) q(u, top(u)) + eps mean_a q(u, a)]."""
        q = self.logs.click_prob
        users = np.arange(q.shape[0])
        shown = np.where(top[users] >= 0, q[users, np.maximum(top[users], 0)], 0.0)  # nothing shown earns 0
        return float(((1 - eps) * shown + eps * q.mean(axis=1)).mean())

    def finish(self, outputs: dict[str, ModelOutput], skipped: list[str]) -> FamilyResult:
        """Extras for ``results.json["off_policy"]``: rows with diagnostics, true values."""
        result = super().finish(outputs, skipped)
        result.extra = {"n_rows": len(self.feedback), "skipped_models": skipped,
                        "estimates": {m: o.info["estimates"] for m, o in outputs.items()},
                        **({"true_values": self.true_values} if self.logs is not None else {})}
        for output in outputs.values():
            output.info = {}  # the estimates live in the family's section, not per model
        return result
