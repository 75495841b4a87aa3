"""The ``cv`` suite: RMSE and ranking metrics of rating models by k-fold cross-validation.

P1's ``kfold``: each user's ratings dealt into ``folds`` folds with the seed; every fold is held out
once, the model (default settings unless ``--set``) trains on the rest for its fixed number of
epochs (no validation set inside CV). This is what ``fusionrec cv --folds 5`` computes
(:func:`fusionrec.jobs.cross_validate`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_MODELS = ("mf", "ratingformer")


def cross_validation(dataset: str, model: str, data_dir: str | Path | None, sets: list[str], *, folds: int = 5,
                     seed: int = 0, on_fold: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, Any]:
    """The metrics of one row: each metric's mean and std over the folds, and the per-fold values."""
    from fusionrec.data import load
    from fusionrec.jobs import cross_validate, model_settings

    settings = {"seed": seed, **model_settings(model, None, sets)}
    data = load(dataset, data_dir)
    res = cross_validate(data, model, settings, folds=folds, seed=seed, on_fold=on_fold)
    row: dict[str, Any] = {"model": model, "settings": settings, "protocol": f"{folds}-fold by user, seed {seed}",
                           "folds": folds}
    for name, (mean, std, values) in res.items():
        row[name] = mean
        row[f"{name} std over folds"] = std
        row[f"{name} per fold"] = [round(float(v), 6) for v in values]
    return row
