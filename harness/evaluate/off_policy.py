"""The off-policy family: what each model would earn, estimated from logged feedback.

Units are logged rows. A model (a Retriever) becomes an evaluation policy over the
logged users (``evaluate.off_policy.policy``): epsilon-greedy on its top item, its top-k
list filling the logged positions, or a softmax of its scores. The per-row values are each estimator's influence values (their mean is
the estimate), so candidate and baseline are compared row by row on the same logs.
An estimate with too little overlap with the logs (low effective sample size, a heavy
Pareto tail of the weights, thin actions; see ``harness.metrics.ope_diagnostics``) is
capped: its comparisons can FAIL but never PASS.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import AdapterError, ConfigError, DataValidationError, describe_examples, for_model, say
from harness.evaluate.family import Family, FamilyResult, MetricValue, ModelOutput
from harness.evaluate.model_view import ModelView
from harness.spec.families import OffPolicyEval
from harness.types import Dataset

_REWARD_MODELS = {
    "logistic": ("sklearn.linear_model", "LogisticRegression", {"max_iter": 500}),
    "ridge": ("sklearn.linear_model", "Ridge", {"alpha": 1.0}),
    "xgboost": ("xgboost", "XGBClassifier", {"n_estimators": 50, "max_depth": 3, "n_jobs": 1}),
}


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
        if spec.reward_range is not None:
            low, high = spec.reward_range
            outside = (self.feedback.reward < low) | (self.feedback.reward > high)
            if outside.any():
                raise DataValidationError(
                    f"evaluate.off_policy: {int(outside.sum())} of {len(outside)} logged rewards lie outside "
                    f"reward_range [{low}, {high}] ({describe_examples(self.feedback.reward[outside])})")
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
        say(f"off-policy: cross-fitting a {self.spec.reward_model} reward model on {len(self.feedback)} rows")
        return fit_reward_model(self.feedback, model, n_folds=self.spec.n_folds, seed=self.seed,
                                max_bytes=self.spec.reward_max_bytes, design=self.spec.reward_design)

    def policy(self, view: ModelView) -> tuple[Any, np.ndarray]:
        """The model as a policy over user codes (``harness.models.policies``, scored in
        blocks of users under ``reward_max_bytes``) and its ``pi_e`` of each logged row."""
        from harness.models.policies import EpsilonGreedyPolicy, SoftmaxPolicy

        s, fb = self.spec, self.feedback
        n_actions = fb.n_actions
        batch = max(1, s.reward_max_bytes // (8 * 4 * n_actions))
        if s.policy == "softmax":
            policy = SoftmaxPolicy(self._softmax_scores(view), temperature=s.temperature, batch_size=batch)
            return policy, policy.action_probabilities(fb.context_id, fb.action)
        # epsilon_greedy reads the top item at every position, top_k the p-th item at position p
        depth = fb.len_list if s.policy == "top_k" else 1
        top = self._top_items(view, depth)
        slot = fb.positions if s.policy == "top_k" else 0
        pi_e = (1 - s.epsilon) * (top[fb.context_id, slot] == fb.action) + s.epsilon / n_actions

        def ranks_as_scores(users: np.ndarray) -> np.ndarray:  # the model's order, nothing else
            scores = np.full((len(users), n_actions), -np.inf)
            scores[np.arange(len(users))[:, None], top[users]] = np.arange(depth, 0, -1, dtype=np.float64)
            return scores

        return EpsilonGreedyPolicy(ranks_as_scores, epsilon=s.epsilon, len_list=depth, batch_size=batch), pi_e

    def _top_items(self, view: ModelView, depth: int) -> np.ndarray:
        """``top[u, p]``: the model's (p+1)-th item for each logged user code ``u``."""
        ranking = view.retrieve(self.users, depth)
        short = (ranking.items < 0).any(axis=1)
        if short.any():
            raise AdapterError(f"model {view.name!r} ranks fewer than {depth} items for {int(short.sum())} of "
                               f"{len(self.users)} logged users (policy {self.spec.policy!r} needs {depth})")
        top = np.zeros((int(self.users.max()) + 1, depth), dtype=np.int64)
        top[self.users] = ranking.items
        return top

    def _softmax_scores(self, view: ModelView) -> Any:
        """``scores(users) -> (batch, n_actions)``: the model's scores of every item it
        returns for those users; items it does not return get ``-inf`` (probability 0)."""
        n_actions = self.feedback.n_actions

        def scores(users: np.ndarray) -> np.ndarray:
            distinct, where = np.unique(users, return_inverse=True)
            ranking = view.retrieve(distinct, n_actions)
            table = np.full((len(distinct), n_actions), -np.inf)
            rows, cols = np.nonzero(ranking.items >= 0)
            table[rows, ranking.items[rows, cols]] = ranking.scores[rows, cols]
            if not np.isfinite(table.max(axis=1)).all():
                raise AdapterError(f"model {view.name!r} returns no finite score for some logged users; "
                                   "a softmax policy needs at least one")
            return table[where]

        return scores

    def cannot_measure(self, view: ModelView) -> str | None:
        return None if view.is_retriever else "has no retrieve()"

    def measure(self, view: ModelView) -> ModelOutput | None:
        """Turn the model into a policy and estimate its value on the logged rows."""
        from harness.metrics import OPEInputs, evaluate_off_policy

        if self.cannot_measure(view) is not None:  # the engine says so and lists it as skipped
            return None
        fb = self.feedback
        policy, pi_e = self.policy(view)
        v_hat = (self.reward_fit.expected_reward(_AtPositions(policy), contexts=fb.context_id,
                                                 batch_size=policy.batch_size)
                 if self.reward_fit else None)
        # the data's own item ids, so that a thin action is named as the user knows it
        actions = fb.action if self.dataset.item_ids is None else self.dataset.item_ids[fb.action]
        data = OPEInputs(reward=fb.reward, pscore=fb.pscore, pi_e=pi_e, action=actions,
                         q_hat=self.reward_fit.q_hat if self.reward_fit else None, v_hat=v_hat)
        s = self.spec
        try:
            result = evaluate_off_policy(data, s.estimators, method=s.method, n_bootstrap=s.n_bootstrap, seed=self.seed,
                                         resampling=s.resampling, min_ess=s.min_ess, min_ess_ratio=s.min_ess_ratio,
                                         bounds=s.reward_range, estimate=self.backend.estimate_intervals)
        except DataValidationError as exc:  # an estimator names itself, not the model whose policy it estimates
            raise for_model(exc, view.name) from None
        if self.logs is not None:
            self.true_values[view.name] = self._true_value(policy)
        caps = {m: f"too little overlap with the logs: {d.overlap_reason}"
                for m, d in result.diagnostics.items() if d.low_overlap}
        values = [MetricValue(r["estimator"], r["value"], r["ci_low"], r["ci_high"], r["n_units"])
                  for r in result.rows]
        return ModelOutput(per_unit=pd.DataFrame(result.per_unit, index=self.unit_ids), values=values,
                           caps=caps, info={"estimates": result.rows})

    def _true_value(self, policy: Any) -> float:
        """Exact value of the policy on the synthetic world: the logs draw users uniformly,
        so ``V = mean_u sum_a pi_e(a | u) q(u, a)`` with the true click probabilities q."""
        users = np.arange(self.logs.click_prob.shape[0])
        return float(policy.expected_reward(users, self.logs.click_prob).mean())

    def finish(self, outputs: dict[str, ModelOutput], skipped: list[str]) -> FamilyResult:
        """Extras for ``results.json["off_policy"]``: rows with diagnostics, true values."""
        result = super().finish(outputs, skipped)
        if self.spec.reward_range is not None:
            result.ranges = {m: self.spec.reward_range for m in result.compared}
        for model, output in outputs.items():  # low overlap: the estimates are shown, so say so
            if output.caps:
                reason = next(iter(output.caps.values()))
                result.notices.append(f"off-policy: {model}: {', '.join(output.caps)} capped, {reason}; "
                                      "a gate on them can FAIL but not PASS")
        result.extra = {"n_rows": len(self.feedback), "skipped_models": skipped,
                        "estimates": {m: o.info["estimates"] for m, o in outputs.items()},
                        **({"true_values": self.true_values} if self.logs is not None else {})}
        for output in outputs.values():
            output.info = {}  # the estimates live in the family's section, not per model
        return result


class _AtPositions:
    """A policy whose positions beyond its list read position 0: ``epsilon_greedy`` and
    ``softmax`` are the same at every position, so logs with more positions than the
    policy's list reuse its first."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def distribution_at(self, contexts: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return self.policy.distribution_at(contexts, np.minimum(positions, self.policy.len_list - 1))
