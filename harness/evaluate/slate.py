"""The slate off-policy family: what each model's slates would earn, from logged slates.

Units are logged slates. A model becomes a Plackett-Luce policy over its scores (the
next slot's item drawn with probability proportional to exp(score / temperature)
among the items not yet placed; ``harness.models.policies.PlackettLucePolicy``).
Each slate's value is the sum over its slots of ``w r``: SIPS weighs every slot by the
slate's joint propensity ratio, RIPS by the ratio down to the slot (cascade), as
``harness.metrics.slate`` defines them; the estimate is the mean over slates, so the
per-slate values pair candidate and baseline slate by slate.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.datasets.ids import id_maps
from harness.errors import DataValidationError
from harness.evaluate.family import Family, ModelOutput, mean_values
from harness.evaluate.model_view import ModelView
from harness.metrics.slate import SlateInputs, SlateRewardInteractionIPS, SlateStandardIPS
from harness.spec.families import SlateOffPolicyEval
from harness.types import PAD_ITEM, Dataset

ESTIMATORS = {"sips": SlateStandardIPS, "rips": SlateRewardInteractionIPS}
# logit of an item a model does not rank (e.g. one the user has seen): below every ranked one
UNRANKED_GAP = 30.0


class SlateOffPolicyFamily(Family[SlateOffPolicyEval]):
    key = "slate_off_policy"
    unit = "slate"
    spec_type = SlateOffPolicyEval

    def __init__(self, spec: SlateOffPolicyEval, dataset: Dataset, *, seed: int, confidence: float) -> None:
        from harness.datasets.tables import read_table

        super().__init__(spec, dataset, seed=seed, confidence=confidence)
        f = spec.feedback
        table = read_table(f.path)
        missing = [c for c in f.columns.values() if c not in table.columns]
        if missing:
            raise DataValidationError(f"{f.path}: missing column(s) {missing}; has {list(table.columns)}")
        users, items = id_maps(dataset)
        slots = pd.DataFrame({"slate": table[f.columns["slate"]].astype(str),
                              "context": users.encode(table[f.columns["context"]], source=f.path,
                                                      column=f.columns["context"]),
                              "action": items.encode(table[f.columns["action"]], source=f.path,
                                                     column=f.columns["action"]),
                              "position": pd.to_numeric(table[f.columns["position"]], errors="coerce"),
                              "reward": pd.to_numeric(table[f.columns["reward"]], errors="coerce"),
                              "propensity": pd.to_numeric(table[f.columns["propensity"]], errors="coerce")})
        for column in ("position", "reward", "propensity"):
            bad = slots[column].isna()
            if bad.any():
                raise DataValidationError(f"{f.path}: column {f.columns[column]!r}: {int(bad.sum())} of "
                                          f"{len(slots)} rows are missing or not numeric")
        self.slots = slots.sort_values(["slate", "position"], kind="stable").reset_index(drop=True)
        sizes = self.slots.groupby("slate", sort=False)["position"].agg(["size", "nunique"])
        self.len_list = int(sizes["size"].max())
        short = sizes[(sizes["size"] != self.len_list) | (sizes["nunique"] != sizes["size"])]
        if len(short):
            raise DataValidationError(f"{f.path}: {len(short)} slates do not have {self.len_list} distinct positions "
                                      f"(e.g. slate {short.index[0]!r}); every logged slate needs all its slots")
        # logging propensities: the cascade products down to each slot, and the whole slate's
        cascade = self.slots.groupby("slate", sort=False)["propensity"].cumprod().to_numpy()
        self.pscore = {"rips": cascade, "sips": np.repeat(cascade[self.len_list - 1 :: self.len_list], self.len_list)}
        self.unit_ids = pd.Index(self.slots["slate"].iloc[:: self.len_list].to_numpy(), name="unit_id")

    def cannot_measure(self, view: ModelView) -> str | None:
        return None if view.is_retriever else "has no retrieve()"

    def measure(self, view: ModelView) -> ModelOutput | None:
        from harness.models.policies import PlackettLucePolicy

        if self.cannot_measure(view) is not None:  # the engine says so and lists it as skipped
            return None
        k = self.len_list
        contexts = self.slots["context"].to_numpy()[::k]
        slates = self.slots["action"].to_numpy().reshape(-1, k)
        users = np.unique(contexts)
        ranking = view.retrieve(users, self.dataset.n_items)  # every item's score, best first
        logits = np.full((len(users), self.dataset.n_items), np.nan)
        rows = np.repeat(np.arange(len(users)), ranking.k)
        real = ranking.items.ravel() != PAD_ITEM
        logits[rows[real], ranking.items.ravel()[real]] = ranking.scores.ravel()[real]
        floor = np.nanmin(logits, axis=1, keepdims=True) - UNRANKED_GAP * self.spec.temperature
        logits = np.where(np.isnan(logits), floor, logits)
        position_of = np.full(self.dataset.n_users, -1)
        position_of[users] = np.arange(len(users))
        policy = PlackettLucePolicy(logits, temperature=self.spec.temperature, len_list=k)
        cascade, joint = policy.slate_propensities(position_of[contexts], slates)
        pi_e = {"rips": cascade.ravel(), "sips": joint.ravel()}
        slots = self.slots
        per_slate = {}
        for name in self.spec.estimators:
            data = SlateInputs(slate_id=slots["slate"].to_numpy(), position=slots["position"].to_numpy(),
                               reward=slots["reward"].to_numpy(), pscore=self.pscore[name], pi_e=pi_e[name],
                               len_list=None)
            per_slate[f"slate_{name}"] = data.per_slate_sum(ESTIMATORS[name]().per_slot_contributions(data))
        table = pd.DataFrame(per_slate, index=self.unit_ids)
        return ModelOutput(per_unit=table, values=mean_values(table, self.confidence))
