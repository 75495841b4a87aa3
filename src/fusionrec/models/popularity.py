"""Most-popular items: the baseline every model must beat."""

from __future__ import annotations

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

    _live: np.ndarray | None = None

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        pass  # item_popularity_ is set by Recommender.fit

    def recommend(self, users: Any, k: int = 10, *, extra_history: sp.csr_matrix | None = None,
                  **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
        """As :meth:`Recommender.recommend`; events in ``extra_history`` also count as popularity."""
        self._check_fitted()
        self._live = None
        if extra_history is not None and extra_history.nnz:
            self._live = self.item_popularity_ + np.asarray((extra_history > 0).sum(axis=0)).ravel()[: self.n_items_]
        try:
            return super().recommend(users, k, extra_history=extra_history, **kwargs)
        finally:
            self._live = None

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        pop = self.item_popularity_ if self._live is None else self._live
        return np.broadcast_to(pop, (len(users), self.n_items_)).astype(np.float32)  # (b, n_items)
