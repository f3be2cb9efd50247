"""Model adapters and reference baselines."""

from .baselines import OracleRetriever, PopularityRetriever, RandomRetriever

__all__ = ["OracleRetriever", "PopularityRetriever", "RandomRetriever"]

# Adapters that need torch, xgboost or mlflow load on first use, so that importing
# harness.models stays light: name -> submodule.
_LAZY = {
    "ItemKNN": "knn", "BPRMF": "mf", "TwoTower": "two_tower", "LambdaMART": "lambdamart",
    "TorchRetriever": "torch_retriever", "XGBoostRanker": "xgboost_ranker",
    "SklearnPointwise": "sklearn_pointwise", "MLflowPyfunc": "mlflow_pyfunc",
    "Precomputed": "precomputed", "FeatureBuilder": "features", "MMR": "rerank",
}
_LAZY.update({  # off-policy evaluation policies and the cross-fitted reward model
    "TopKPolicy": "policies", "EpsilonGreedyPolicy": "policies", "SoftmaxPolicy": "policies",
    "ProbabilityTablePolicy": "policies", "PlackettLucePolicy": "policies", "fit_reward_model": "reward_model",
})
_LAZY["OracleClickModel"] = "oracle_clicks"  # true click probabilities of the synthetic world
__all__ += list(_LAZY)


def __getattr__(name: str) -> object:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
