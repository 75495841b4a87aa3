"""EASE: Embarrassingly Shallow Autoencoders (Steck, WWW 2019).

A closed-form item-item model: ``B = I - P / diag(P)`` with ``P = (X^T X + lambda I)^-1`` and a
zero diagonal, so ``scores = X_u B``. It uses the user's current history directly, so events
given at inference time count without retraining. Memory is O(n_items^2): for catalogues beyond
``max_items`` use ALS, PureSVD or ItemKNN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch

from fusionrec.data.schema import Dataset
from fusionrec.errors import ConfigError
from fusionrec.models.base import BaseConfig, Recommender


def closed_form(x: sp.spmatrix, l2: float) -> torch.Tensor:
    """EASE's (n_items, n_items) float32 weights ``B = I - P / diag(P)``, ``P = (X^T X + l2 I)^-1``, zero diagonal."""
    g = torch.from_numpy((x.T @ x).toarray().astype(np.float64))  # Gram
    g.diagonal().add_(l2)
    p = torch.cholesky_inverse(torch.linalg.cholesky(g))  # g is symmetric positive definite: half LU's work
    del g
    b = -p / p.diagonal()  # column j divided by P_jj
    del p
    b.diagonal().zero_()
    return b.to(torch.float32)


@dataclass(frozen=True)
class EASEConfig(BaseConfig):
    l2: float = 200.0  # lambda; larger for denser data (Steck: 200-1000 on ML-20M/Netflix)
    max_items: int = 40_000  # a dense n_items^2 matrix beyond this needs > 6 GB

    def __post_init__(self) -> None:
        if self.l2 <= 0:
            raise ValueError(f"EASEConfig.l2 must be > 0, got {self.l2}")
        if self.max_items < 1:
            raise ValueError(f"EASEConfig.max_items must be >= 1, got {self.max_items}")


class EASE(Recommender):
    """Closed-form item-item autoencoder (scores = history @ B)."""

    name = "ease"
    Config = EASEConfig
    search_space = {"l2": [20.0, 50.0, 100.0, 200.0, 500.0, 1000.0]}

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        n = self.n_items_
        if n > self.config.max_items:
            raise ConfigError(f"EASE needs an n_items^2 matrix; {n} items exceed max_items="
                              f"{self.config.max_items}. Use 'als' or 'itemknn', or raise ease.max_items.")
        self.weights_ = closed_form(self.train_matrix_, self.config.l2).numpy()  # (n_items, n_items)

    def _score(self, users: np.ndarray, history: sp.csr_matrix) -> np.ndarray:
        return np.asarray(history @ self.weights_)  # (b, n_items)

    def _state(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights_}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.weights_ = state["weights"]
