"""ALS for implicit feedback (Hu, Koren & Volinsky, ICDM 2008) through the ``implicit`` library.

Confidence ``c_ui = 1 + alpha * w_ui`` on observed items, where ``w`` is the binary history or,
with ``weighting = "bm25"``, BM25-weighted counts (a common, strong choice for implicit data).
User vectors are always recomputed from the user's current history with one exact ALS half-step,
so events given at inference time count without retraining, and new users need no refit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fusionrec.data.schema import Dataset
from fusionrec.models.base import BaseConfig, Recommender
from fusionrec.models.implicit_compat import single_threaded_blas


@dataclass(frozen=True)
class ALSConfig(BaseConfig):
    factors: int = 64
    regularization: float = 0.1
    alpha: float = 10.0
    iterations: int = 15
    weighting: str = "none"  # "none" (binary) or "bm25"
    bm25_k1: float = 1.2
    bm25_b: float = 0.75
    threads: int = 0  # 0 = all cores

    def __post_init__(self) -> None:
        if self.factors < 1:
            raise ValueError(f"ALSConfig.factors must be >= 1, got {self.factors}")
        if self.regularization < 0:
            raise ValueError(f"ALSConfig.regularization must be >= 0, got {self.regularization}")
        if self.alpha <= 0:
            raise ValueError(f"ALSConfig.alpha must be > 0, got {self.alpha}")
        if self.iterations < 1:
            raise ValueError(f"ALSConfig.iterations must be >= 1, got {self.iterations}")
        if self.weighting not in ("none", "bm25"):
            raise ValueError(f"ALSConfig.weighting must be 'none' or 'bm25', got {self.weighting!r}")


def bm25_weight(x: sp.csr_matrix, idf: np.ndarray, avg_len: float, k1: float, b: float) -> sp.csr_matrix:
    """BM25 weights of a (users, items) matrix, with item idf and document length from training."""
    x = sp.csr_matrix(x, dtype=np.float32, copy=True)
    lengths = np.diff(x.indptr).astype(np.float32)
    norm = (1.0 - b) + b * lengths / max(avg_len, 1e-9)  # (users,)
    row = np.repeat(np.arange(x.shape[0]), np.diff(x.indptr))
    x.data = x.data * (k1 + 1.0) / (k1 * norm[row] + x.data) * idf[x.indices]
    return x


class ALS(Recommender):
    """Weighted matrix factorisation by alternating least squares (``implicit``'s CPU solver)."""

    name = "als"
    Config = ALSConfig
    search_space = {"factors": [32, 64, 128], "regularization": [0.01, 0.1, 1.0], "alpha": [1.0, 10.0], "weighting": ["none", "bm25"]}

    def _model(self):  # type: ignore[no-untyped-def]
        from implicit.cpu.als import AlternatingLeastSquares

        c = self.config
        return AlternatingLeastSquares(factors=c.factors, regularization=c.regularization, alpha=c.alpha,
                                       iterations=c.iterations, random_state=c.seed, num_threads=c.threads,
                                       calculate_training_loss=False)

    def _weights(self, x: sp.csr_matrix) -> sp.csr_matrix:
        if self.config.weighting == "bm25":
            return bm25_weight(x, self.idf_, float(self.avg_len_), self.config.bm25_k1, self.config.bm25_b)
        return x

    def _fit(self, train: Dataset, valid: Dataset | None) -> None:
        x = self.train_matrix_
        n_users = max(1, x.shape[0])
        df = np.asarray((x > 0).sum(axis=0)).ravel()
        self.idf_ = np.log(n_users / (1.0 + df)).clip(min=0.0).astype(np.float32)  # (n_items,)
        self.avg_len_ = np.float32(x.nnz / n_users)
        with single_threaded_blas():  # implicit's own threads do the work
            model = self._model()
            model.fit(self._weights(x).tocsr(), show_progress=False)
        self.item_factors_ = np.asarray(model.item_factors, dtype=np.float32)  # (n_items, f)
        self._solver = model

    def _user_factors(self, history: sp.csr_matrix) -> np.ndarray:
        with single_threaded_blas():
            return self._solver.recalculate_user(np.arange(history.shape[0]), self._weights(history).tocsr())

    def _factors(self, users: np.ndarray, history: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, None]:
        return self._user_factors(history), self.item_factors_, None  # (b, f), (n_items, f)

    def _state(self) -> dict[str, np.ndarray]:
        return {"item_factors": self.item_factors_, "idf": self.idf_,
                "avg_len": np.asarray([self.avg_len_], dtype=np.float32)}

    def _load_state(self, state: dict[str, np.ndarray]) -> None:
        self.item_factors_ = state["item_factors"]
        self.idf_ = state["idf"]
        self.avg_len_ = np.float32(state["avg_len"][0])
        self._solver = self._model()  # built here, once: scoring calls only read it
        self._solver.item_factors = self.item_factors_
