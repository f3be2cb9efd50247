"""Model adapters and reference baselines."""

from .baselines import OracleRetriever, PopularityRetriever, RandomRetriever

__all__ = ["OracleRetriever", "PopularityRetriever", "RandomRetriever"]
