"""Evaluation: full-ranking metrics, beyond-accuracy metrics, rating errors, cross-validation."""

from fusionrec.evaluation.evaluate import EvalResult, evaluate, evaluate_ratings, score_recommendations

__all__ = ["EvalResult", "evaluate", "evaluate_ratings", "score_recommendations"]
