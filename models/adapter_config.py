"""Building adapters from config parameters (used by ``harness.adapters.registry`` factories).

Candidate-scoring adapters named in a config take: ``candidates`` (a nested
``{kind, params}`` model that retrieves the pool), ``n_candidates``, and ``features``:
``"interaction"`` (the default: :func:`~harness.models.features.interaction_features`
on the dataset's training split, the set the LambdaMART baseline trains on) or
``"none"``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from harness.errors import ConfigError

from .features import interaction_features

BuildModel = Callable[[str, str, dict[str, Any], Any, int], Any]
FEATURE_SETS = ("interaction", "none")


def _nested(spec: Any, where: str, dataset: Any, seed: int, build_model: BuildModel) -> Any:
    if not isinstance(spec, dict) or "kind" not in spec or set(spec) - {"kind", "params"}:
        raise ConfigError(f"{where}: expected {{kind: ..., params: {{...}}}}, got {spec!r}")
    return build_model(where, spec["kind"], dict(spec.get("params") or {}), dataset, seed)


def candidate_scorer_params(params: dict[str, Any], dataset: Any, seed: int,
                            build_model: BuildModel) -> dict[str, Any]:
    """Replace ``candidates`` and ``features`` specs in ``params`` by the objects they name."""
    out = dict(params)
    if "candidates" in out:
        out["candidates"] = _nested(out["candidates"], "candidates", dataset, seed, build_model)
    feature_set = out.pop("features", "interaction")
    if feature_set not in FEATURE_SETS:
        raise ConfigError(f"features: unknown feature set {feature_set!r}; use one of {list(FEATURE_SETS)}")
    if feature_set == "interaction":
        svd_dim = out.pop("svd_dim", 16)
        out["features"] = interaction_features(dataset.train, dataset.n_users, dataset.n_items,
                                               svd_dim=svd_dim, seed=seed)
    return out


def load_pickled_estimator(path: str | Path, *, trusted: bool = True) -> Any:
    """A fitted estimator from a skops file, or a ``joblib.dump``/``pickle.dump`` file.

    Kept for the engine's current ``sklearn`` factory, which has no ``trusted`` option
    and so reads pickles as before (``trusted=True``); the engine should call
    ``harness.models.safe_load.load_estimator(path, trusted=params.pop("trusted", False))``
    instead, which refuses pickles unless the config trusts them.
    """
    from .safe_load import load_estimator

    return load_estimator(path, trusted=trusted)


def pipeline_stages(stages: Any, dataset: Any, seed: int, build_model: BuildModel) -> list[tuple[str, Any, int]]:
    """``[{name, k, kind, params}, ...]`` -> ``[(name, model, k), ...]``."""
    if not isinstance(stages, list) or not stages:
        raise ConfigError("pipeline: params.stages must be a non-empty list of {name, k, kind, params}")
    out = []
    for i, spec in enumerate(stages):
        if not isinstance(spec, dict) or not {"name", "k", "kind"} <= set(spec) or \
                set(spec) - {"name", "k", "kind", "params"}:
            raise ConfigError(f"pipeline: stages[{i}] must have name, k, kind (and optional params), got {spec!r}")
        model = _nested({"kind": spec["kind"], "params": spec.get("params") or {}},
                        f"stages[{i}]", dataset, seed, build_model)
        out.append((spec["name"], model, spec["k"]))
    return out


def interaction_mmr(dataset: Any, seed: int, *, lambda_: float = 0.5, dim: int = 16) -> Any:
    """An MMR re-ranker (a pipeline's last stage) whose item similarity is the cosine of
    the items' rank-``dim`` SVD factors of the training interactions."""
    from .features import interaction_matrix, truncated_svd_factors
    from .rerank import MMR

    X = interaction_matrix(dataset.train, dataset.n_users, dataset.n_items)
    _, item_vectors = truncated_svd_factors(X, dim, seed=seed)
    return MMR(item_vectors, lambda_=lambda_)
