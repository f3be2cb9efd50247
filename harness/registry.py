"""Adapter kinds that a config's ``models.<name>.kind`` may name, and how to build them."""

from __future__ import annotations

from typing import Any, Callable

from harness.errors import ConfigError

# kind -> factory(params, dataset, seed) -> adapter; imports stay inside factories so
# that reading a config never imports torch or xgboost.
Factory = Callable[[dict[str, Any], Any, int], Any]


def _random(params: dict[str, Any], dataset: Any, seed: int) -> Any:
    from harness.models import RandomRetriever

    return RandomRetriever(seed=params.pop("seed", seed), **params)


def _popularity(params: dict[str, Any], dataset: Any, seed: int) -> Any:
    from harness.models import PopularityRetriever

    return PopularityRetriever(**params)


def _oracle(params: dict[str, Any], dataset: Any, seed: int) -> Any:
    from harness.models import OracleRetriever

    if "true_scores" not in dataset.truth:
        raise ConfigError("model kind 'oracle' needs a synthetic dataset with known true scores")
    return OracleRetriever(dataset.truth["true_scores"], seed=params.pop("seed", seed), **params)


MODEL_KINDS: dict[str, Factory] = {
    "random": _random,
    "popularity": _popularity,
    "oracle": _oracle,
}


def build_model(name: str, kind: str, params: dict[str, Any], dataset: Any, seed: int) -> Any:
    """Instantiate the adapter for ``kind``; bad parameters become ``ConfigError``."""
    try:
        factory = MODEL_KINDS[kind]
    except KeyError:
        raise ConfigError(f"models.{name}.kind: unknown adapter kind {kind!r}") from None
    try:
        return factory(dict(params), dataset, seed)
    except TypeError as exc:
        raise ConfigError(f"models.{name}.params: {exc}") from None
