from .ranking import SparkRankingResult, evaluate_ranking
