"""A dot-product model over given factors: scores = user_factors @ item_factors.T.

Used to evaluate factors trained elsewhere (and by the ranking benchmark).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.models.base import BaseConfig, Recommender


@dataclass(frozen=True)
class FactorConfig(BaseConfig):
    """No hyper-parameters: the factors are given."""


class FactorModel(Recommender):
    """Fixed user and item factors; new users get zero vectors (popularity fallback)."""

    name = "factors"
    Config = FactorConfig

    @classmethod
    def from_factors(cls, user_factors: np.ndarray, item_factors: np.ndarray, train: sp.csr_matrix) -> FactorModel:
        if user_factors.shape[1] != item_factors.shape[1]:
            raise ConfigError(f"factor sizes differ: users {user_factors.shape}, items {item_factors.shape}")
        m = cls()
        m.user_factors_ = np.ascontiguousarray(user_factors, dtype=np.float32)
        m.item_factors_ = np.ascontiguousarray(item_factors, dtype=np.float32)
        m.train_matrix_ = sp.csr_matrix(train, dtype=np.float32)
        m.n_users_, m.n_items_ = user_factors.shape[0], item_factors.shape[0]
        m.item_popularity_ = np.asarray(m.train_matrix_.sum(axis=0)).ravel().astype(np.float32)
        return m

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        raise ConfigError("FactorModel is built from given factors with FactorModel.from_factors")

    def _factors(self, users: np.ndarray, history: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, None]:
        known = users < self.user_factors_.shape[0]
        u = np.zeros((len(users), self.item_factors_.shape[1]), dtype=np.float32)
        u[known] = self.user_factors_[users[known]]
        return u, self.item_factors_, None

    def _state(self) -> dict[str, np.ndarray]:
        return {"user_factors": self.user_factors_, "item_factors": self.item_factors_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.user_factors_, self.item_factors_ = state["user_factors"], state["item_factors"]
