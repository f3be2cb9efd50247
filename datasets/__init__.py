"""Loaders, schema checks, splits and synthetic generators with known ground truth.

Names load on first use (:mod:`harness.lazy`): reading an id column does not load the
synthetic generators.
"""

from harness.lazy import lazy_exports

# module -> the public names it defines
_MODULES = {
    "base": ["InteractionDataset", "fingerprint_tables"],
    "synthetic": ["make_synthetic"],
    "candidates": ["restrict_to_candidates", "with_candidates"],
    "interactions": ["build_dataset", "dataset_from_spec", "load_interactions"],
    "movielens": ["load_movielens_dataset", "read_movielens"],
    "multistage": ["MultiStageWorld", "make_multistage"],
    "schema": ["Column", "Schema", "validate_table"],
    "bandit": ["LoggedFeedback", "load_open_bandit_dataset", "read_logged_feedback", "write_logged_feedback"],
    "synthetic_bandit": ["SyntheticBandit", "make_synthetic_bandit"],
    "synthetic_clicks": ["click_probabilities", "make_click_log"],
}
_EXPORTS = {name: f"{__name__}.{module}" for module, names in _MODULES.items() for name in names}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
