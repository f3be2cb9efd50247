"""Adapter kinds that a config's ``models.<name>.kind`` may name, and how to build them."""

from __future__ import annotations

from typing import Any, Callable

from harness.errors import AdapterError, ConfigError, DataValidationError, for_model
from harness.types import Dataset

# kind -> factory(params, dataset, seed) -> adapter; imports stay inside factories so
# that reading a config never imports torch or xgboost.
Factory = Callable[[dict[str, Any], Dataset, int], object]


def _random(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models import RandomRetriever

    return RandomRetriever(seed=params.pop("seed", seed), **params)


def _popularity(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models import PopularityRetriever

    return PopularityRetriever(**params)


def _oracle(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models import OracleRetriever

    if "true_scores" not in dataset.truth:
        raise ConfigError("model kind 'oracle' needs a synthetic dataset with known true scores")
    return OracleRetriever(dataset.truth["true_scores"], seed=params.pop("seed", seed), **params)


def _oracle_clicks(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.oracle_clicks import OracleClickModel

    if "true_scores" not in dataset.truth:
        raise ConfigError("model kind 'oracle_clicks' needs a synthetic dataset with known true scores")
    return OracleClickModel(dataset.truth["true_scores"], **params)


def _item_knn(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.knn import ItemKNN

    return ItemKNN(**params)


def _bpr_mf(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.mf import BPRMF

    return BPRMF(seed=params.pop("seed", seed), **params)


def _require(params: dict[str, Any], kind: str, key: str, what: str) -> None:
    """Refuse a model whose required parameter is absent, naming the ones given (a
    misspelt key is then in plain view, with a "did you mean" when it is close)."""
    if key in params:
        return
    import difflib

    close = [k for k in params if difflib.get_close_matches(k, [key], n=1)]
    given = f"; got params: {', '.join(map(str, params))}" if params else ""
    hint = f"; did you mean {key!r} (not {close[0]!r})?" if close else ""
    raise ConfigError(f"model kind {kind!r} needs params.{key} ({what}){given}{hint}")


def _feature_columns(params: dict[str, Any], kind: str) -> None:
    """A model of feature columns cannot take ``features: none`` (the raw ids, which only
    an ``mlflow`` model's own signature reads)."""
    if params.get("features") == "none":
        raise ConfigError(f"model kind {kind!r} scores feature columns: features: none (raw ids) is for mlflow "
                          "models; use features: interaction (the columns of "
                          "harness.models.features.interaction_features, which the model must be trained on)")


def _two_tower(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.two_tower import TwoTower

    return TwoTower(seed=params.pop("seed", seed), **params)


def _lambdamart(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.lambdamart import LambdaMART

    return LambdaMART(seed=params.pop("seed", seed), **params)


def _torch_retriever(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.torch_retriever import TorchRetriever

    _require(params, "torch_retriever", "checkpoint", "a saved nn.Module")
    return TorchRetriever(**params)


def _xgboost_ranker(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.adapter_config import candidate_scorer_params
    from harness.models.xgboost_ranker import XGBoostRanker

    _require(params, "xgboost_ranker", "path", "a saved XGBoost ranking model")
    _feature_columns(params, "xgboost_ranker")
    path = params.pop("path")
    return XGBoostRanker(path, **candidate_scorer_params(params, dataset, seed, build_model))


def _sklearn(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.adapter_config import candidate_scorer_params
    from harness.models.safe_load import load_estimator
    from harness.models.sklearn_pointwise import SklearnPointwise

    _require(params, "sklearn", "path", "a skops file of a fitted estimator, or a joblib/pickle file with trusted: true")
    _feature_columns(params, "sklearn")
    estimator = load_estimator(params.pop("path"), trusted=bool(params.pop("trusted", False)))
    return SklearnPointwise(estimator, **candidate_scorer_params(params, dataset, seed, build_model))


def _mlflow(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.adapter_config import candidate_scorer_params
    from harness.models.mlflow_pyfunc import MLflowPyfunc

    _require(params, "mlflow", "uri", "models:/NAME@alias, models:/NAME/VERSION, runs:/...")
    uri = params.pop("uri")
    features = params.pop("features", None)
    out = candidate_scorer_params({**params, "features": features or "none"}, dataset, seed, build_model)
    return MLflowPyfunc(uri, **out)


def _precomputed(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.precomputed import load_precomputed

    _require(params, "precomputed", "path",
             "Parquet/CSV: query_id, item_id, score[, rank][, p], in the data's own ids; or a TREC run file")
    return load_precomputed(params.pop("path"), dataset=dataset, **params)


def _pipeline(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.adapter_config import pipeline_stages
    from harness.adapters.pipeline import Pipeline

    return Pipeline(pipeline_stages(params.pop("stages", None), dataset, seed, build_model), **params)


def _mmr(params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    from harness.models.adapter_config import interaction_mmr

    return interaction_mmr(dataset, seed, **params)


MODEL_KINDS: dict[str, Factory] = {
    "random": _random,
    "popularity": _popularity,
    "oracle": _oracle,
    "oracle_clicks": _oracle_clicks,
    "item_knn": _item_knn,
    "bpr_mf": _bpr_mf,
    "two_tower": _two_tower,
    "lambdamart": _lambdamart,
    "torch_retriever": _torch_retriever,
    "xgboost_ranker": _xgboost_ranker,
    "sklearn": _sklearn,
    "mlflow": _mlflow,
    "precomputed": _precomputed,
    "pipeline": _pipeline,
    "mmr": _mmr,
}


def build_model(name: str, kind: str, params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    """Instantiate the adapter for ``kind``; bad parameters become ``ConfigError``."""
    try:
        factory = MODEL_KINDS[kind]
    except KeyError:
        raise ConfigError(f"models.{name}.kind: unknown adapter kind {kind!r}") from None
    try:
        return factory(dict(params), dataset, seed)
    except TypeError as exc:
        raise ConfigError(f"models.{name}.params: {_unknown_parameter(str(exc), kind)}") from None


def build_config_model(name: str, kind: str, params: dict[str, Any], dataset: Dataset, seed: int) -> object:
    """:func:`build_model` of the config's model ``name``: a file, parameter or data error
    names the model (``model 'prod': ...``), where the adapter's own message names only
    its file or class. (Nested builds, a pipeline's stages, are named by their owner.)"""
    try:
        return build_model(name, kind, params, dataset, seed)
    except (ConfigError, DataValidationError, AdapterError) as exc:
        raise for_model(exc, name) from None


def _unknown_parameter(message: str, kind: str) -> str:
    """``unknown parameter 'n_neighbors' of kind 'item_knn'; did you mean 'n_neighbours'?
    (parameters: ...)`` for Python's ``Cls.__init__() got an unexpected keyword argument
    'n_neighbors'`` (the message as it is for any other TypeError)."""
    import difflib
    import inspect
    import re
    import sys

    match = re.search(r"(\w+)(?:\.__init__)?\(\) got an unexpected keyword argument '(\w+)'", message)
    # the class or function the factory called, in the harness.models module it imported
    cls = next((vars(module)[match.group(1)] for key, module in list(sys.modules.items())
                if key.startswith("harness.models.") and match.group(1) in vars(module)), None) if match else None
    if cls is None:
        return message
    # a file's ``source`` is the config's ``path`` (each factory passes it on as such)
    known = ["path" if p == "source" else p for p in inspect.signature(cls).parameters
             if p not in ("self", "args", "kwargs", "dataset")]
    close = difflib.get_close_matches(match.group(2), known, n=1)
    return (f"unknown parameter {match.group(2)!r} of kind {kind!r}" + (f"; did you mean {close[0]!r}?" if close else "")
            + f" (parameters: {', '.join(known)})")


def check_model_kinds(models: dict[str, str]) -> None:
    """Refuse unknown adapter kinds (``{model name: kind}``) before anything runs."""
    import difflib

    for name, kind in models.items():
        if kind not in MODEL_KINDS:
            close = difflib.get_close_matches(kind, MODEL_KINDS, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"models.{name}.kind: unknown adapter kind {kind!r}{hint} "
                              f"(known: {', '.join(sorted(MODEL_KINDS))})")
