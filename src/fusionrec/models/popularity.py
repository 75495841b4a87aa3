"""Most-popular items: the baseline every model must beat."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.models.base import BaseConfig, Recommender


@dataclass(frozen=True)
class PopularityConfig(BaseConfig):
    """No hyper-parameters: items are ranked by their number of training users."""


class Popularity(Recommender):
    """Scores every item by how many training users interacted with it.

    Ties (and items never seen) are ordered by the seeded tie-break, never by id.
    """

    name = "pop"
    Config = PopularityConfig

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        pass  # item_popularity_ is set by Recommender.fit

    def recommend(self, users: Any, k: int = 10, *, extra_history: sp.csr_matrix | None = None,
                  **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`Recommender.recommend`; events in ``extra_history`` also count as popularity.

        The counts of this call live on a shallow copy (nothing is written on the shared model)."""
        self._check_fitted()
        model = self
        if extra_history is not None and extra_history.nnz:
            model = copy.copy(self)
            model.item_popularity_ = self.item_popularity_ + np.asarray(
                (extra_history > 0).sum(axis=0)).ravel()[: self.n_items_].astype(np.float32)
        return Recommender.recommend(model, users, k, extra_history=extra_history, **kwargs)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.item_popularity_, (len(users), self.n_items_)).astype(np.float32)  # (b, n_items)
