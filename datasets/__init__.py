"""Loaders, schema checks, splits and synthetic generators with known ground truth."""

from .base import InteractionDataset, fingerprint_tables
from .synthetic import make_synthetic
from .candidates import restrict_to_candidates, with_candidates
from .interactions import build_dataset, dataset_from_spec, load_interactions
from .movielens import load_movielens_dataset, read_movielens
from .multistage import MultiStageWorld, make_multistage
from .schema import Column, Schema, validate_table

__all__ = ["InteractionDataset", "fingerprint_tables", "make_synthetic"]
__all__ += ["Column", "MultiStageWorld", "Schema", "build_dataset", "dataset_from_spec", "load_interactions",
            "load_movielens_dataset", "make_multistage", "read_movielens", "restrict_to_candidates",
            "validate_table", "with_candidates"]
from .bandit import LoggedFeedback, load_open_bandit_dataset, read_logged_feedback, write_logged_feedback
from .synthetic_bandit import SyntheticBandit, make_synthetic_bandit

__all__ += ["LoggedFeedback", "SyntheticBandit", "load_open_bandit_dataset", "make_synthetic_bandit",
            "read_logged_feedback", "write_logged_feedback"]
from .synthetic_clicks import click_probabilities, make_click_log

__all__ += ["click_probabilities", "make_click_log"]
