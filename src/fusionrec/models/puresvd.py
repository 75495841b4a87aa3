"""PureSVD: truncated SVD of the user x item matrix (Cremonesi, Koren & Turrin, RecSys 2010).

``X ~ U Sigma V^T`` with the top ``factors`` singular triplets of the binary matrix (missing
entries read as zeros). Scores are ``X_u V V^T``: the user's history projected onto the item
factor space and back, so history given at inference time (and new users) fold in exactly,
without retraining.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.models.base import BaseConfig, Recommender


@dataclass(frozen=True)
class PureSVDConfig(BaseConfig):
    factors: int = 64  # singular triplets kept; must be < min(n_users, n_items)

    def __post_init__(self) -> None:
        if self.factors < 1:
            raise ValueError(f"PureSVDConfig.factors must be >= 1, got {self.factors}")


class PureSVD(Recommender):
    """Truncated SVD folding-in model (scores = history @ V @ V.T).

    Examples
    --------
    >>> import pandas as pd
    >>> from fusionrec.data.schema import Dataset
    >>> df = pd.DataFrame({"user": [0, 0, 1, 1, 2, 3], "item": ["a", "b", "a", "b", "a", "c"]})
    >>> m = PureSVD(PureSVDConfig(factors=1)).fit(Dataset.from_frames(df))
    >>> m.item_factors_.shape
    (3, 1)
    """

    name = "puresvd"
    Config = PureSVDConfig
    search_space = {"factors": [16, 32, 64, 128]}

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        x = self.train_matrix_.astype(np.float64)
        k = self.config.factors
        limit = min(x.shape)
        if k >= limit:
            raise ConfigError(f"puresvd.factors={k} must be < min(n_users, n_items)={limit}; "
                              f"set factors to at most {limit - 1}.")
        v0 = np.random.default_rng(self.config.seed).uniform(-1.0, 1.0, size=limit)  # ARPACK start vector
        _, sigma, vt = svds(x, k=k, v0=v0)  # vt: (k, n_items)
        order = np.argsort(-sigma)
        self.singular_values_ = sigma[order].astype(np.float32)  # (k,)
        self.item_factors_ = np.ascontiguousarray(vt[order].T, dtype=np.float32)  # (n_items, k)

    def _factors(self, users: np.ndarray, history: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, None]:
        v = self.item_factors_
        return np.asarray(history @ v), v, None  # (b, k), (n_items, k): scores = X_u V V^T

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors_, "singular_values": self.singular_values_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.item_factors_ = state["item_factors"]
        self.singular_values_ = state["singular_values"]
