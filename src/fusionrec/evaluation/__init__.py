"""Evaluation: full-ranking metrics, beyond-accuracy metrics, rating errors, cross-validation, significance."""

from fusionrec.evaluation.evaluate import (
    EvalResult,
    evaluate,
    evaluate_ratings,
    evaluate_run,
    score_recommendations,
)
from fusionrec.evaluation.significance import BootstrapResult, paired_bootstrap

__all__ = ["BootstrapResult", "EvalResult", "evaluate", "evaluate_ratings", "evaluate_run", "paired_bootstrap",
           "score_recommendations"]
